//! Registry pulls against real registries: Debian's `docker-registry` (distribution 2.x)
//! on 127.0.0.1, filled with `skopeo copy` from the busybox OCI archive that
//! `scripts/build-busybox-image.sh` builds. These tests fail (never skip) without the Debian
//! packages `docker-registry`, `skopeo` and `busybox-static`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use timonel_runtime::image::{
    ImageError, ImageStore, PullErrorKind, PullProgress, RegistriesConfig, RegistryCredential, pull,
};

const PACKAGES: &str = "apt-get install docker-registry skopeo busybox-static";

fn require_tool(binary: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{binary} is missing: these tests need the Debian packages docker-registry, skopeo and \
         busybox-static ({PACKAGES})"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry` process on 127.0.0.1, stopped on drop or when the test binary exits.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Registry {
    /// `htpasswd`: `(user, password)` to require basic auth.
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  \
             filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if let Some((user, password)) = htpasswd {
            let hash = bcrypt::hash_with_result(password, 4)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoA);
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: timonel-test\n    path: {}\n",
                path.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        // Through a shell that stops the registry when its stdin closes: the shared
        // registry lives in a static, never dropped, and must not outlive the test binary.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"docker-registry serve "$1" & pid=$!; read -r _; kill "$pid"; wait "$pid""#)
            .arg("sh")
            .arg(&config_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}: {}",
                std::fs::read_to_string(registry._dir.path().join("registry.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy` of `archive` to `<host>/<path>`; returns the manifest digest.
    fn push(&self, archive: &Path, path: &str, creds: Option<(&str, &str)>) {
        require_tool("skopeo");
        let mut command = Command::new("skopeo");
        command
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{path}", self.host()));
        if let Some((user, password)) = creds {
            command.arg(format!("--dest-creds={user}:{password}"));
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The busybox OCI archive, built once per test binary.
fn busybox_archive() -> &'static Path {
    static ARCHIVE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &ARCHIVE
        .get_or_init(|| {
            assert!(
                Path::new("/bin/busybox").is_file(),
                "/bin/busybox is missing: these tests need the Debian packages docker-registry, \
                 skopeo and busybox-static ({PACKAGES})"
            );
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("busybox.tar");
            let script = manifest_dir().join("../../scripts/build-busybox-image.sh");
            let output = Command::new("bash")
                .arg(&script)
                .arg(&out)
                .arg("docker.io/library/busybox:1.36")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "build-busybox-image.sh failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            (dir, out)
        })
        .1
}

/// One registry with busybox pushed as `library/busybox:1.36`, shared by the tests.
fn shared_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Registry::start(None);
        registry.push(busybox_archive(), "library/busybox:1.36", None);
        registry
    })
}

fn plain_http(registry: &Registry) -> RegistriesConfig {
    let host = registry.host();
    RegistriesConfig::parse(
        &format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\n"),
        "test registries.yaml",
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

type Events = Arc<Mutex<Vec<PullProgress>>>;

fn recorder() -> (Events, impl Fn(PullProgress) + Send + Sync) {
    let events: Events = Arc::default();
    let sink = events.clone();
    (events, move |event| sink.lock().unwrap().push(event))
}

#[test]
fn pulls_busybox_through_a_docker_io_mirror() {
    common::require_root();
    let registry = shared_registry();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    // registries.yaml in the agent data dir, as k3s reads it.
    let yaml = data.path().join("registries.yaml");
    std::fs::write(
        &yaml,
        format!(
            "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
            registry.host()
        ),
    )
    .unwrap();
    let registries = RegistriesConfig::load(&yaml).unwrap();
    let (events, progress) = recorder();

    let outcome = runtime()
        .block_on(pull(&store, "busybox:1.36", &registries, &[], &progress))
        .unwrap();
    assert!(!outcome.already_present);
    let record = &outcome.record;
    assert_eq!(record.repo_tags, ["docker.io/library/busybox:1.36"]);
    assert_eq!(record.repo_digests.len(), 1);
    assert!(
        record.repo_digests[0].starts_with("docker.io/library/busybox@sha256:"),
        "{:?}",
        record.repo_digests
    );
    assert_eq!(record.config.cmd, ["sh"]);
    // Config and the one layer were downloaded.
    let blob_bytes: u64 = record.layers.iter().map(|l| l.size).sum();
    assert!(outcome.bytes_downloaded > blob_bytes, "{outcome:?}");
    // The layer is unpacked as imported layers are.
    let lower = store.lower_dirs(record);
    assert_eq!(lower.len(), 1);
    assert!(lower[0].join("bin/busybox").is_file());
    assert!(lower[0].join("bin/sh").is_symlink());
    assert_eq!(store.get("busybox:1.36").unwrap().id, record.id);

    let events = events.lock().unwrap();
    assert!(
        matches!(&events[0], PullProgress::Resolved { endpoint, manifest_digest, .. }
            if *endpoint == format!("http://{}", registry.host())
                && *manifest_digest == record.manifest_digest),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PullProgress::LayerStarted { .. }))
    );
    assert!(
        matches!(events.last(), Some(PullProgress::LayerDone { digest, .. }) if *digest == record.layers[0].digest)
    );
}

#[test]
fn pulls_directly_by_tag_then_by_digest_then_finds_it_present() {
    common::require_root();
    let registry = shared_registry();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let registries = plain_http(registry);
    let rt = runtime();
    let reference = format!("{}/library/busybox:1.36", registry.host());

    let first = rt
        .block_on(pull(&store, &reference, &registries, &[], &|_| {}))
        .unwrap();
    assert!(!first.already_present);
    assert!(first.bytes_downloaded > 0);
    assert_eq!(first.record.repo_tags, std::slice::from_ref(&reference));

    // Again: the tag is resolved, nothing is downloaded.
    let (events, progress) = recorder();
    let second = rt
        .block_on(pull(&store, &reference, &registries, &[], &progress))
        .unwrap();
    assert!(second.already_present);
    assert_eq!(second.bytes_downloaded, 0);
    assert_eq!(second.record.id, first.record.id);
    assert!(
        matches!(
            &events.lock().unwrap()[..],
            [PullProgress::Resolved {
                missing_bytes: 0,
                ..
            }]
        ),
        "{:?}",
        events.lock().unwrap()
    );

    // By digest: present already (the repo digest the tag pull recorded).
    let by_digest = first.record.repo_digests[0].clone();
    let third = rt
        .block_on(pull(&store, &by_digest, &registries, &[], &|_| {}))
        .unwrap();
    assert!(third.already_present && third.bytes_downloaded == 0);

    // By digest into an empty store: fetched, recorded under the digest, untagged.
    let other = tempfile::tempdir().unwrap();
    let fresh = ImageStore::open(other.path()).unwrap();
    let pulled = rt
        .block_on(pull(&fresh, &by_digest, &registries, &[], &|_| {}))
        .unwrap();
    assert!(!pulled.already_present);
    assert!(pulled.record.repo_tags.is_empty());
    assert_eq!(pulled.record.repo_digests, std::slice::from_ref(&by_digest));
    assert_eq!(fresh.get(&by_digest).unwrap().id, first.record.id);
}

/// A bare HTTP/1.1 exchange with the registry (no client library in the test): returns the
/// status code and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    assert!(!chunked, "unexpected chunked response: {head}");
    (status, response[split + 4..].to_vec())
}

#[test]
fn multi_arch_index_resolves_to_this_platform() {
    common::require_root();
    let registry = shared_registry();
    let port = registry.port;
    // The single-platform manifest skopeo pushed, wrapped in an index whose first entry is
    // another architecture.
    let (status, manifest) = http(
        port,
        "GET",
        "/v2/library/busybox/manifests/1.36",
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&manifest));
    let manifest_digest = timonel_runtime::image::Digest::of_bytes(&manifest);
    let arch = timonel_runtime::image::spec::host_architecture();
    let other = if arch == "s390x" { "amd64" } else { "s390x" };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest.to_string(),
             "size": manifest.len(), "platform": {"architecture": other, "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest.to_string(),
             "size": manifest.len(), "platform": {"architecture": arch, "os": "linux"}}
        ]
    });
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let index_digest = timonel_runtime::image::Digest::of_bytes(&index_bytes);
    let (status, body) = http(
        port,
        "PUT",
        "/v2/library/busybox/manifests/multi",
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        &index_bytes,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let registries = plain_http(registry);
    let rt = runtime();
    let reference = format!("{}/library/busybox:multi", registry.host());
    let (events, progress) = recorder();
    let outcome = rt
        .block_on(pull(&store, &reference, &registries, &[], &progress))
        .unwrap();
    assert_eq!(outcome.record.manifest_digest, manifest_digest);
    let repo_digest = format!("{}/library/busybox@{index_digest}", registry.host());
    assert_eq!(
        outcome.record.repo_digests,
        std::slice::from_ref(&repo_digest)
    );
    assert!(matches!(&events.lock().unwrap()[0],
        PullProgress::Resolved { digest, manifest_digest: m, .. } if *digest == index_digest && *m == manifest_digest));
    // The index digest finds the image again, without a registry.
    let again = rt
        .block_on(pull(
            &store,
            &repo_digest,
            &RegistriesConfig::default(),
            &[],
            &|_| {},
        ))
        .unwrap();
    assert!(again.already_present);
    assert_eq!(again.record.id, outcome.record.id);
}

#[test]
fn concurrent_pulls_download_once() {
    common::require_root();
    let registry = shared_registry();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let registries = plain_http(registry);
    let reference = format!("{}/library/busybox:1.36", registry.host());
    let outcomes = runtime().block_on(async {
        let a = pull(&store, &reference, &registries, &[], &|_| {});
        let b = pull(&store, &reference, &registries, &[], &|_| {});
        tokio::join!(a, b)
    });
    let (a, b) = (outcomes.0.unwrap(), outcomes.1.unwrap());
    assert_eq!(a.record.id, b.record.id);
    assert!(
        (a.bytes_downloaded == 0) != (b.bytes_downloaded == 0),
        "exactly one pull downloads: {} and {}",
        a.bytes_downloaded,
        b.bytes_downloaded
    );
    assert!(a.already_present != b.already_present);
}

#[test]
fn unknown_tag_and_unreachable_registry_errors() {
    common::require_root();
    let registry = shared_registry();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let registries = plain_http(registry);
    let rt = runtime();

    let reference = format!("{}/library/busybox:nope", registry.host());
    let err = rt
        .block_on(pull(&store, &reference, &registries, &[], &|_| {}))
        .unwrap_err();
    let ImageError::Pull { kind, message, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*kind, PullErrorKind::NotFound, "{message}");
    assert_eq!(
        message,
        &format!(
            "failed to pull image \"{reference}\": failed to resolve reference \"{reference}\": \
             {reference}: not found"
        )
    );

    let missing_repo = format!("{}/nobody/here:1", registry.host());
    let err = rt
        .block_on(pull(&store, &missing_repo, &registries, &[], &|_| {}))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ImageError::Pull {
                kind: PullErrorKind::NotFound,
                ..
            }
        ),
        "{err}"
    );

    // Nothing listens there: a network error naming the endpoint.
    let port = free_port();
    let dead = RegistriesConfig::parse(
        &format!(
            "mirrors:\n  \"127.0.0.1:{port}\":\n    endpoint: [\"http://127.0.0.1:{port}\"]\n"
        ),
        "test",
    )
    .unwrap();
    let err = rt
        .block_on(pull(
            &store,
            &format!("127.0.0.1:{port}/x:1"),
            &dead,
            &[],
            &|_| {},
        ))
        .unwrap_err();
    let ImageError::Pull { kind, message, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*kind, PullErrorKind::Network, "{message}");
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}")),
        "{message}"
    );
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn basic_auth_with_pull_secrets_and_registries_yaml() {
    common::require_root();
    let registry = Registry::start(Some(("puller", "s3cret")));
    registry.push(
        busybox_archive(),
        "library/busybox:1.36",
        Some(("puller", "s3cret")),
    );
    let host = registry.host();
    let reference = format!("{host}/library/busybox:1.36");
    let registries = plain_http(&registry);
    let rt = runtime();

    // Anonymous: unauthorized.
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let err = rt
        .block_on(pull(&store, &reference, &registries, &[], &|_| {}))
        .unwrap_err();
    let ImageError::Pull { kind, message, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*kind, PullErrorKind::Unauthorized, "{message}");
    assert!(
        message
            .contains("pull access denied, repository does not exist or may require authorization"),
        "{message}"
    );
    assert!(message.starts_with(&format!("failed to pull image \"{reference}\"")));

    // A wrong secret is not rescued by anything else.
    let wrong = [RegistryCredential {
        registry: host.clone(),
        username: "puller".into(),
        password: "wrong".into(),
    }];
    let err = rt
        .block_on(pull(&store, &reference, &registries, &wrong, &|_| {}))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ImageError::Pull {
                kind: PullErrorKind::Unauthorized,
                ..
            }
        ),
        "{err}"
    );

    // The imagePullSecret form (`auth` is base64 of user:password).
    let secret = format!(r#"{{"auths":{{"http://{host}":{{"auth":"cHVsbGVyOnMzY3JldA=="}}}}}}"#);
    let credentials =
        timonel_runtime::image::credentials_from_docker_config(secret.as_bytes()).unwrap();
    let outcome = rt
        .block_on(pull(&store, &reference, &registries, &credentials, &|_| {}))
        .unwrap();
    assert!(
        store.lower_dirs(&outcome.record)[0]
            .join("bin/busybox")
            .is_file()
    );

    // registries.yaml `configs` auth, in a fresh store.
    let other = tempfile::tempdir().unwrap();
    let fresh = ImageStore::open(other.path()).unwrap();
    let with_auth = RegistriesConfig::parse(
        &format!(
            "mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\nconfigs:\n  \"{host}\":\n    \
             auth:\n      username: puller\n      password: s3cret\n"
        ),
        "test",
    )
    .unwrap();
    let outcome = rt
        .block_on(pull(&fresh, &reference, &with_auth, &[], &|_| {}))
        .unwrap();
    assert!(!outcome.already_present);
    assert_eq!(outcome.record.repo_tags, [reference]);
}

#[test]
fn falls_back_past_an_unreachable_mirror() {
    common::require_root();
    let registry = shared_registry();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let dead = free_port();
    // A dead mirror first, then a live one; docker.io itself (last) is never reached.
    let registries = RegistriesConfig::parse(
        &format!(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:{dead}\", \"http://{}\"]\n",
            registry.host()
        ),
        "test",
    )
    .unwrap();
    let (events, progress) = recorder();
    let rt = runtime();
    let outcome = rt
        .block_on(pull(
            &store,
            "docker.io/library/busybox:1.36",
            &registries,
            &[],
            &progress,
        ))
        .unwrap();
    assert_eq!(outcome.record.repo_tags, ["docker.io/library/busybox:1.36"]);
    assert!(
        matches!(&events.lock().unwrap()[0], PullProgress::Resolved { endpoint, .. }
            if *endpoint == format!("http://{}", registry.host()))
    );

    // The live mirror's "not found" is what is reported, not the dead one's refusal (nor
    // whatever registry-1.docker.io answers, or not, from this machine).
    let err = rt
        .block_on(pull(
            &store,
            "busybox:does-not-exist",
            &registries,
            &[],
            &|_| {},
        ))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ImageError::Pull {
                kind: PullErrorKind::NotFound,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("docker.io/library/busybox:does-not-exist: not found"),
        "{err}"
    );
}

/// This package's directory, read at run time: cargo may reuse a test binary that another
/// checkout sharing the target dir built, and the path compiled into it may be gone.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
