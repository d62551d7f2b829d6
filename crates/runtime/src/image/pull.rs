//! Pulling images from OCI/Docker registries into the [`ImageStore`].
//!
//! The registry protocol (token and basic auth, manifests, blobs) is `oci-client`'s; this
//! module decides where to go (mirrors from `registries.yaml`, then the registry itself),
//! which credentials to offer, which manifest of an index fits this machine, and streams each
//! missing blob into [`ImageStore::blob_writer`], which verifies its digest and size before
//! publishing it. The image is then registered as an imported one is (layers unpacked once,
//! the index replaced under the store lock), so pulled and imported images are alike.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use oci_client::Client;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;

use super::credentials::{RegistryCredential, matching_credentials};
use super::digest::Digest;
use super::error::{ImageError, PullErrorKind, Result};
use super::reference::Reference;
use super::registries::{Endpoint, RegistriesConfig};
use super::spec::{self, Descriptor, Index, Manifest, Sniff};
use super::store::{ImageRecord, ImageStore};

/// What a pull reports while it runs, so the agent can emit kubelet's `Pulling`/`Pulled`
/// events and a CLI can show progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullProgress {
    /// The reference resolved to an image manifest for this platform.
    Resolved {
        /// The digest the registry resolved the reference to (an index's for multi-arch
        /// images): what the repo digest records.
        digest: Digest,
        /// The platform's image manifest.
        manifest_digest: Digest,
        /// Config and layer blobs, compressed, as the manifest lists them.
        total_bytes: u64,
        /// Of those, the bytes the store lacks and that will be downloaded.
        missing_bytes: u64,
        /// The endpoint used, e.g. `http://127.0.0.1:5000`.
        endpoint: String,
    },
    /// A layer blob download started.
    LayerStarted { digest: Digest, size: u64 },
    /// A layer blob is in the store, verified.
    LayerDone { digest: Digest, size: u64 },
}

/// The result of [`pull`].
#[derive(Clone, Debug)]
pub struct PullOutcome {
    pub record: ImageRecord,
    /// Bytes of config and layer blobs downloaded (manifests are not counted): 0 when the
    /// store already had everything.
    pub bytes_downloaded: u64,
    /// Time spent pulling, not counting the wait for a concurrent pull of the same reference.
    pub elapsed: Duration,
    /// The store already held this image (same manifest) before the pull.
    pub already_present: bool,
}

/// Media types asked for when resolving a reference: indexes first so that multi-arch
/// images come back as such.
const ACCEPTED_MANIFESTS: [&str; 4] = [
    spec::MEDIA_OCI_INDEX,
    spec::MEDIA_DOCKER_LIST,
    spec::MEDIA_OCI_MANIFEST,
    spec::MEDIA_DOCKER_MANIFEST,
];

/// Manifests and configs are read into memory; a registry sending more is broken or hostile.
const METADATA_LIMIT: u64 = 16 << 20;

/// One async mutex per (store, reference) being pulled: a second pull of the same image
/// waits for the first and then finds it present instead of downloading it again.
static IN_FLIGHT: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// Drops the reference's mutex from [`IN_FLIGHT`] when the last puller is done.
struct InFlight {
    key: String,
    mutex: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        // Ours plus the map's: nobody else is waiting.
        if Arc::strong_count(&self.mutex) == 2 {
            map.remove(&self.key);
        }
    }
}

/// Pulls `reference` (`busybox`, `busybox:1.36`, `127.0.0.1:5000/x@sha256:…`) into `store`.
///
/// Endpoints come from `registries` (mirrors in order, then the registry itself); the first
/// that serves the manifest is used for its blobs too. Credentials: those of `credentials`
/// (imagePullSecrets) matching the host contacted, tried most specific first; without any,
/// the `configs` auth of `registries.yaml`; else anonymous. A digest reference already in the
/// store is returned without contacting a registry; a tag is always resolved (that is what
/// "pull" means), then only missing blobs are fetched.
pub async fn pull(
    store: &ImageStore,
    reference: &str,
    registries: &RegistriesConfig,
    credentials: &[RegistryCredential],
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<PullOutcome> {
    let parsed = Reference::parse(reference)?;
    let key = format!("{}\0{parsed}", store.root().display());
    let in_flight = {
        let mut map = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        let mutex = map.entry(key.clone()).or_default().clone();
        InFlight { key, mutex }
    };
    let _guard = in_flight.mutex.lock().await;
    let started = Instant::now();
    let mut outcome = Puller {
        store,
        reference,
        parsed: &parsed,
        progress,
    }
    .run(registries, credentials)
    .await?;
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// kubelet's `Pulling` event message.
pub fn pulling_event_message(image: &str) -> String {
    format!("Pulling image {}", go_quote(image))
}

/// kubelet's `Pulled` event message: `Successfully pulled image "X" in 1.2s (1.3s including
/// waiting). Image size: 1234 bytes.` Durations are truncated to milliseconds and printed as
/// Go prints a `time.Duration`, as kubelet does.
pub fn pulled_event_message(
    image: &str,
    pull: Duration,
    including_waiting: Duration,
    image_size: u64,
) -> String {
    format!(
        "Successfully pulled image {} in {} ({} including waiting). Image size: {image_size} bytes.",
        go_quote(image),
        go_duration(pull),
        go_duration(including_waiting)
    )
}

/// Go's `%q` for the strings image references are made of (printable ASCII).
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `Duration.String()` of `duration.Truncate(time.Millisecond)`: `0s`, `313ms`,
/// `1.5s`, `2m3.004s`, `1h0m0s`.
fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis() as u64;
    if millis == 0 {
        return "0s".to_string();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let hours = millis / 3_600_000;
    let minutes = millis / 60_000 % 60;
    let seconds = millis / 1000 % 60;
    let fraction = millis % 1000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&seconds.to_string());
    if fraction > 0 {
        let digits = format!("{fraction:03}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// A failure on one endpoint, classified so the final error can say the right thing.
#[derive(Debug)]
struct Failure {
    kind: PullErrorKind,
    detail: String,
}

impl Failure {
    fn other(detail: impl Into<String>) -> Self {
        Failure {
            kind: PullErrorKind::Other,
            detail: detail.into(),
        }
    }

    fn from_store(err: ImageError) -> Self {
        Failure::other(err.to_string())
    }

    /// Classifies an `oci-client` error; `subject` is the reference or blob asked for.
    fn from_oci(err: OciDistributionError, endpoint: &Endpoint, subject: &str) -> Self {
        let not_found = || Failure {
            kind: PullErrorKind::NotFound,
            detail: format!("{subject}: not found"),
        };
        let unauthorized = |detail: String| Failure {
            kind: PullErrorKind::Unauthorized,
            detail: format!(
                "pull access denied, repository does not exist or may require authorization: {detail}"
            ),
        };
        match err {
            OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
            OciDistributionError::RegistryError { envelope, url } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    not_found()
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    unauthorized(format!("{} ({url})", messages(&envelope)))
                } else {
                    Failure::other(format!("{} ({url})", messages(&envelope)))
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => not_found(),
            OciDistributionError::ServerError {
                code: code @ (401 | 403),
                url,
                ..
            } => unauthorized(format!("{code} from {url}")),
            OciDistributionError::ServerError { code, url, message } => Failure::other(format!(
                "unexpected status {code} from {url}: {}",
                message.trim()
            )),
            OciDistributionError::UnauthorizedError { url } => {
                unauthorized(format!("401 Unauthorized from {url}"))
            }
            OciDistributionError::AuthenticationFailure(reason) => {
                unauthorized(format!("authentication failed: {}", reason.trim()))
            }
            OciDistributionError::RequestError(err) => Failure {
                kind: PullErrorKind::Network,
                detail: format!(
                    "failed to do request to {}: {}",
                    endpoint.url(),
                    chain(&err)
                ),
            },
            OciDistributionError::IoError(err) => Failure {
                kind: PullErrorKind::Network,
                detail: format!("reading from {}: {}", endpoint.url(), chain(&err)),
            },
            other => Failure::other(other.to_string()),
        }
    }
}

fn messages(envelope: &oci_client::errors::OciEnvelope) -> String {
    envelope
        .errors
        .iter()
        .map(|e| {
            if e.message.is_empty() {
                format!("{:?}", e.code)
            } else {
                e.message.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An error with its sources, `a: b: c`: reqwest's top-level message alone ("error sending
/// request") hides the cause (connection refused, certificate unknown).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// rustls wants one process-wide crypto provider; the workspace builds ring (not aws-lc).
/// Failing means another part of the process installed one first, which is as good.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client_for(endpoint: &Endpoint) -> std::result::Result<Client, Failure> {
    install_crypto_provider();
    let mut config = ClientConfig {
        protocol: if endpoint.plain_http {
            ClientProtocol::HttpsExcept(vec![endpoint.host.clone()])
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: endpoint.insecure_skip_verify,
        // Indexes are resolved here, to this machine's platform as imports do.
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(30)),
        // Between reads, not for a whole layer: big layers on slow links still finish.
        read_timeout: Some(Duration::from_secs(120)),
        ..ClientConfig::default()
    };
    if let Some(ca_file) = &endpoint.ca_file {
        let data = std::fs::read(ca_file)
            .map_err(|err| Failure::other(format!("read ca_file {}: {err}", ca_file.display())))?;
        config.extra_root_certificates.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        });
    }
    Client::try_from(config).map_err(|err| Failure::other(format!("HTTP client: {err}")))
}

/// A reference as `oci-client` sees it: the endpoint's host and (rewritten) repository.
fn oci_reference(endpoint: &Endpoint, parsed: &Reference) -> oci_client::Reference {
    let host = endpoint.host.clone();
    let repository = endpoint.repository.clone();
    match (&parsed.digest, &parsed.tag) {
        (Some(digest), _) => {
            oci_client::Reference::with_digest(host, repository, digest.to_string())
        }
        (None, Some(tag)) => oci_client::Reference::with_tag(host, repository, tag.clone()),
        (None, None) => oci_client::Reference::with_tag(host, repository, "latest".to_string()),
    }
}

/// A manifest resolved on one endpoint, with the client (and its tokens) that fetched it.
struct Resolved {
    client: Client,
    endpoint: Endpoint,
    oci_ref: oci_client::Reference,
    /// What the reference resolved to (an index's digest for multi-arch images).
    top_digest: Digest,
    manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    manifest: Manifest,
}

struct Puller<'a> {
    store: &'a ImageStore,
    /// As the caller wrote it, for messages (kubelet quotes `container.image`).
    reference: &'a str,
    parsed: &'a Reference,
    progress: &'a (dyn Fn(PullProgress) + Send + Sync),
}

impl Puller<'_> {
    fn error(&self, kind: PullErrorKind, detail: impl std::fmt::Display) -> ImageError {
        ImageError::Pull {
            reference: self.reference.to_string(),
            kind,
            message: format!(
                "failed to pull image {}: {detail}",
                go_quote(self.reference)
            ),
        }
    }

    async fn run(
        &self,
        registries: &RegistriesConfig,
        credentials: &[RegistryCredential],
    ) -> Result<PullOutcome> {
        if self.parsed.digest.is_some()
            && self.parsed.tag.is_none()
            && let Ok(record) = self.store.get(&self.parsed.to_string())
        {
            return Ok(PullOutcome {
                record,
                bytes_downloaded: 0,
                elapsed: Duration::ZERO,
                already_present: true,
            });
        }
        let resolved = self.resolve(registries, credentials).await?;
        let fail = |failure: Failure| self.error(failure.kind, failure.detail);

        let existing = self
            .store
            .list()?
            .into_iter()
            .find(|image| image.manifest_digest == resolved.manifest_digest);
        let manifest = &resolved.manifest;
        let blobs: Vec<&Descriptor> = std::iter::once(&manifest.config)
            .chain(manifest.layers.iter())
            .collect();
        let total_bytes = blobs.iter().map(|b| b.size).sum();
        // A layer listed twice (it happens) is downloaded once.
        let mut seen = std::collections::HashSet::new();
        let missing: Vec<&Descriptor> = blobs
            .iter()
            .copied()
            .filter(|b| !self.store.has_blob(&b.digest) && seen.insert(&b.digest))
            .collect();
        (self.progress)(PullProgress::Resolved {
            digest: resolved.top_digest.clone(),
            manifest_digest: resolved.manifest_digest.clone(),
            total_bytes,
            missing_bytes: missing.iter().map(|b| b.size).sum(),
            endpoint: resolved.endpoint.url(),
        });

        let mut bytes_downloaded = 0;
        for blob in &missing {
            let is_layer = blob.digest != manifest.config.digest;
            if is_layer {
                (self.progress)(PullProgress::LayerStarted {
                    digest: blob.digest.clone(),
                    size: blob.size,
                });
            }
            bytes_downloaded += self.download(&resolved, blob).await.map_err(|failure| {
                self.error(
                    failure.kind,
                    format!(
                        "failed to download blob {}: {}",
                        blob.digest, failure.detail
                    ),
                )
            })?;
            if is_layer {
                (self.progress)(PullProgress::LayerDone {
                    digest: blob.digest.clone(),
                    size: blob.size,
                });
            }
        }

        let repo_digest = format!("{}@{}", self.parsed.name(), resolved.top_digest);
        let tag = self.parsed.tag.as_ref().map(|_| {
            Reference {
                digest: None,
                ..self.parsed.clone()
            }
            .to_string()
        });
        if let Some(image) = &existing
            && image.repo_digests.contains(&repo_digest)
            && tag.as_ref().is_none_or(|t| image.repo_tags.contains(t))
        {
            return Ok(PullOutcome {
                record: image.clone(),
                bytes_downloaded,
                elapsed: Duration::ZERO,
                already_present: true,
            });
        }

        // Unpacking is blocking work: keep it off the async threads.
        let store = self.store.clone();
        let names = vec![self.parsed.clone()];
        let manifest_bytes = resolved.manifest_bytes.clone();
        let manifest_digest = resolved.manifest_digest.clone();
        let top_digest = resolved.top_digest.clone();
        let record = tokio::task::spawn_blocking(move || {
            store.write_blob(&manifest_bytes, Some(&manifest_digest))?;
            store.register_pulled(&manifest_digest, &names, &top_digest)
        })
        .await
        .map_err(|err| fail(Failure::other(format!("register task: {err}"))))?
        .map_err(|err| fail(Failure::from_store(err)))?;
        Ok(PullOutcome {
            record,
            bytes_downloaded,
            elapsed: Duration::ZERO,
            already_present: existing.is_some(),
        })
    }

    /// Tries each endpoint in order until one serves the manifest. When all fail, the error
    /// reported is the first one a registry answered with (not found, unauthorized) rather
    /// than an unreachable fallback's, which would hide it.
    async fn resolve(
        &self,
        registries: &RegistriesConfig,
        credentials: &[RegistryCredential],
    ) -> Result<Resolved> {
        let endpoints = registries.endpoints(&self.parsed.domain, &self.parsed.path);
        let mut failures: Vec<Failure> = Vec::new();
        for endpoint in endpoints {
            // Secrets go only to the host they name: a mirror's own host, or the registry's
            // name for its default endpoint (docker.io, not registry-1.docker.io).
            let host = if endpoint.is_mirror {
                endpoint.host.as_str()
            } else {
                self.parsed.domain.as_str()
            };
            let mut auths: Vec<RegistryAuth> =
                matching_credentials(credentials, host, &self.parsed.path)
                    .into_iter()
                    .map(|c| RegistryAuth::Basic(c.username.clone(), c.password.clone()))
                    .collect();
            if auths.is_empty() {
                auths.push(match &endpoint.auth {
                    Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
                    None => RegistryAuth::Anonymous,
                });
            }
            for auth in auths {
                match self.resolve_on(&endpoint, &auth).await {
                    Ok(resolved) => return Ok(resolved),
                    Err(failure) => {
                        let unauthorized = failure.kind == PullErrorKind::Unauthorized;
                        failures.push(failure);
                        if !unauthorized {
                            break; // other credentials would not change the answer
                        }
                    }
                }
            }
        }
        let chosen = failures
            .iter()
            .position(|f| f.kind != PullErrorKind::Network)
            .unwrap_or(0);
        let failure = failures
            .into_iter()
            .nth(chosen)
            .unwrap_or_else(|| Failure::other("no registry endpoint"));
        Err(self.error(
            failure.kind,
            format!(
                "failed to resolve reference {}: {}",
                go_quote(&self.parsed.to_string()),
                failure.detail
            ),
        ))
    }

    async fn resolve_on(
        &self,
        endpoint: &Endpoint,
        auth: &RegistryAuth,
    ) -> std::result::Result<Resolved, Failure> {
        let client = client_for(endpoint)?;
        let oci_ref = oci_reference(endpoint, self.parsed);
        let subject = self.parsed.to_string();
        let (bytes, _) = client
            .pull_manifest_raw(&oci_ref, auth, &ACCEPTED_MANIFESTS)
            .await
            .map_err(|err| Failure::from_oci(err, endpoint, &subject))?;
        let top_digest = Digest::of_bytes(&bytes);
        if let Some(expected) = &self.parsed.digest
            && *expected != top_digest
        {
            return Err(Failure::other(format!(
                "manifest digest mismatch: asked for {expected}, got {top_digest}"
            )));
        }
        let mut digest = top_digest.clone();
        let mut bytes = bytes.to_vec();
        // An index (at most two levels, as Docker's attestation lists nest) → this platform.
        for _ in 0..3 {
            if !is_index(&bytes) {
                break;
            }
            let index: Index = serde_json::from_slice(&bytes)
                .map_err(|err| Failure::other(format!("image index {digest}: {err}")))?;
            let chosen = spec::select_platform(&index).ok_or_else(|| {
                Failure::other(format!(
                    "no match for platform in manifest {digest}: linux/{} not found",
                    spec::host_architecture()
                ))
            })?;
            let child_ref = oci_client::Reference::with_digest(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                chosen.digest.to_string(),
            );
            let (child, _) = client
                .pull_manifest_raw(&child_ref, auth, &ACCEPTED_MANIFESTS)
                .await
                .map_err(|err| Failure::from_oci(err, endpoint, chosen.digest.as_str()))?;
            let actual = Digest::of_bytes(&child);
            if actual != chosen.digest || child.len() as u64 != chosen.size {
                return Err(Failure::other(format!(
                    "manifest {} does not match its index entry (got {actual}, {} bytes)",
                    chosen.digest,
                    child.len()
                )));
            }
            digest = actual;
            bytes = child.to_vec();
        }
        if is_index(&bytes) {
            return Err(Failure::other("image indexes nested too deep"));
        }
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|err| Failure::other(format!("image manifest {digest}: {err}")))?;
        if manifest.config.size > METADATA_LIMIT {
            return Err(Failure::other(format!(
                "image config of {} bytes is too large",
                manifest.config.size
            )));
        }
        Ok(Resolved {
            client,
            endpoint: endpoint.clone(),
            oci_ref,
            top_digest,
            manifest_digest: digest,
            manifest_bytes: bytes,
            manifest,
        })
    }

    /// Streams one blob into the store; returns the bytes received. The blob's bytes go
    /// through a bounded channel to a blocking task that writes (and at the end verifies,
    /// fsyncs and renames) the blob, so memory stays at a few chunks whatever the layer size.
    async fn download(
        &self,
        resolved: &Resolved,
        blob: &Descriptor,
    ) -> std::result::Result<u64, Failure> {
        let descriptor = OciDescriptor {
            media_type: blob.media_type.clone(),
            digest: blob.digest.to_string(),
            size: blob.size as i64,
            ..OciDescriptor::default()
        };
        let mut response = resolved
            .client
            .pull_blob_stream(&resolved.oci_ref, &descriptor)
            .await
            .map_err(|err| Failure::from_oci(err, &resolved.endpoint, blob.digest.as_str()))?;

        let mut writer = self.store.blob_writer().map_err(Failure::from_store)?;
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
        let expected = blob.digest.clone();
        let expected_size = blob.size;
        let write_task = tokio::task::spawn_blocking(move || -> Result<()> {
            while let Some(chunk) = receiver.blocking_recv() {
                writer.write_all(&chunk).map_err(|source| ImageError::Io {
                    context: format!("write blob {expected}"),
                    source,
                })?;
            }
            writer.commit(Some(&expected), Some(expected_size))?;
            Ok(())
        });

        let mut received: u64 = 0;
        let mut stream_error = None;
        while let Some(chunk) = response.stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    stream_error = Some(Failure {
                        kind: PullErrorKind::Network,
                        detail: format!(
                            "reading from {}: {}",
                            resolved.endpoint.url(),
                            chain(&err)
                        ),
                    });
                    break;
                }
            };
            received += chunk.len() as u64;
            if received > blob.size {
                stream_error = Some(Failure::other(format!(
                    "registry sent more than the {} bytes the manifest lists",
                    blob.size
                )));
                break;
            }
            if sender.send(chunk).await.is_err() {
                break; // the writer failed: its error is reported below
            }
        }
        drop(sender);
        let written = write_task
            .await
            .map_err(|err| Failure::other(format!("blob writer task: {err}")))?;
        if let Some(failure) = stream_error {
            return Err(failure); // the writer's partial blob is a dropped temp file
        }
        written.map_err(Failure::from_store)?;
        Ok(received)
    }
}

/// An index or manifest list, by media type or (media type being optional) by shape.
fn is_index(bytes: &[u8]) -> bool {
    let Ok(sniff) = serde_json::from_slice::<Sniff>(bytes) else {
        return false;
    };
    sniff.media_type == spec::MEDIA_OCI_INDEX
        || sniff.media_type == spec::MEDIA_DOCKER_LIST
        || (sniff.media_type.is_empty() && sniff.manifests.is_some() && sniff.config.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(Duration::from_micros(400)), "0s");
        assert_eq!(go_duration(ms(313)), "313ms");
        assert_eq!(go_duration(Duration::from_micros(313_999)), "313ms");
        assert_eq!(go_duration(ms(1000)), "1s");
        assert_eq!(go_duration(ms(1500)), "1.5s");
        assert_eq!(go_duration(ms(1661)), "1.661s");
        assert_eq!(go_duration(ms(1010)), "1.01s");
        assert_eq!(go_duration(ms(60_000)), "1m0s");
        assert_eq!(go_duration(ms(123_004)), "2m3.004s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
    }

    #[test]
    fn event_messages_match_kubelet() {
        assert_eq!(
            pulling_event_message("busybox"),
            r#"Pulling image "busybox""#
        );
        assert_eq!(
            pulled_event_message("busybox", ms(1661), ms(1700), 4269694),
            r#"Successfully pulled image "busybox" in 1.661s (1.7s including waiting). Image size: 4269694 bytes."#
        );
        fn ms(n: u64) -> Duration {
            Duration::from_millis(n)
        }
    }

    #[test]
    fn sniffs_indexes() {
        assert!(is_index(
            br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
        ));
        assert!(is_index(br#"{"manifests":[]}"#));
        assert!(!is_index(br#"{"schemaVersion":2,"config":{},"layers":[]}"#));
        assert!(!is_index(b"nope"));
    }
}
