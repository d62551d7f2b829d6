//! k3s's `registries.yaml` (in the agent data dir): registry mirrors, repository rewrites,
//! and per-host auth and TLS settings, resolved to the ordered list of endpoints a pull
//! tries, as k3s configures containerd:
//!
//! ```yaml
//! mirrors:
//!   "docker.io": { endpoint: ["http://127.0.0.1:5000"] }
//!   "*": { endpoint: ["https://mirror.internal"] }
//! configs:
//!   "127.0.0.1:5000": { auth: {username: u, password: p}, tls: {insecure_skip_verify: true} }
//! ```
//!
//! For a registry `R`: the endpoints of `mirrors[R]` (or of the `*` mirror when `R` has no
//! entry), in order, then `R`'s own endpoint (`https://R`; `https://registry-1.docker.io` for
//! `docker.io`). `http://` endpoints are spoken to in plain HTTP; an endpoint without a
//! scheme is HTTPS. A mirror's `rewrite` rules (Go-style regexes with `$1` references)
//! change the repository path sent to its endpoints, never to the registry itself (unless
//! the registry lists its own host as a mirror, which is how k3s marks a registry plain HTTP:
//! that endpoint then replaces the default one).
//! `configs` are keyed by the host an endpoint names (`configs[R]` also covers `R`'s own
//! endpoint), `*` being the fallback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::error::{ImageError, Result};

/// The docker.io registry's own endpoint: `docker.io` is a name, not a host that serves the
/// registry API.
pub const DOCKER_HUB_ENDPOINT: &str = "https://registry-1.docker.io";

/// A parsed `registries.yaml`. An empty value (the default) means "every registry directly,
/// over HTTPS, anonymously".
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// `mirrors.<registry>`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Mirror {
    /// `http://host:port` or `https://host[:port]`, tried in order.
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Regex → replacement applied to the repository path for this mirror's endpoints; the
    /// first pattern (in key order) that matches wins.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// `configs.<host>`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegistryConfig {
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`, used when `username` is empty.
    #[serde(default)]
    pub auth: String,
    /// Accepted for compatibility; identity tokens are not used by pulls yet.
    #[serde(default)]
    pub identity_token: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificates: accepted, not used by pulls yet.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One place to pull a repository from, as [`RegistriesConfig::endpoints`] resolves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` to speak the registry API to.
    pub host: String,
    /// `http://` endpoint: plain HTTP, no TLS.
    pub plain_http: bool,
    /// Repository path to ask this endpoint for (after a mirror's rewrite).
    pub repository: String,
    /// False for the registry's own endpoint.
    pub is_mirror: bool,
    /// `configs` auth for this host, as `(username, password)`.
    pub auth: Option<(String, String)>,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<PathBuf>,
}

impl Endpoint {
    /// `http://host` or `https://host`, for messages.
    pub fn url(&self) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }
}

impl RegistriesConfig {
    /// Reads `path`; a missing file is an empty config (no mirrors, registries used directly).
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ImageError::Io {
                context: format!("read {}", path.display()),
                source,
            }),
        }
    }

    /// Parses YAML text; `source` names it in errors. Rejects what a pull could not honour
    /// (bad regexes, endpoint schemes or paths), so mistakes surface at startup rather than
    /// as a confusing pull failure.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let invalid = |reason: String| ImageError::Config {
            file: source.to_string(),
            reason,
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        // serde_yaml's messages name the field path (`mirrors.docker.io.endpoint: …`).
        let config: RegistriesConfig =
            serde_yaml::from_str(text).map_err(|err| invalid(err.to_string()))?;
        for (registry, mirror) in &config.mirrors {
            for (i, endpoint) in mirror.endpoint.iter().enumerate() {
                parse_endpoint(endpoint).map_err(|reason| {
                    invalid(format!("mirrors.{registry}.endpoint[{i}]: {reason}"))
                })?;
            }
            for pattern in mirror.rewrite.keys() {
                regex::Regex::new(pattern).map_err(|err| {
                    invalid(format!("mirrors.{registry}.rewrite {pattern:?}: {err}"))
                })?;
            }
        }
        for (host, registry) in &config.configs {
            if let Some(auth) = &registry.auth {
                decode_auth_field(auth)
                    .map_err(|reason| invalid(format!("configs.{host}.auth.auth: {reason}")))?;
            }
        }
        Ok(config)
    }

    /// The endpoints to try, in order, for `repository` (e.g. `library/busybox`) of
    /// `registry` (a normalised domain, e.g. `docker.io`).
    pub fn endpoints(&self, registry: &str, repository: &str) -> Vec<Endpoint> {
        let mut endpoints = Vec::new();
        if let Some(mirror) = self.mirrors.get(registry).or_else(|| self.mirrors.get("*")) {
            let repository = rewrite(&mirror.rewrite, repository);
            for text in &mirror.endpoint {
                let Ok((host, plain_http)) = parse_endpoint(text) else {
                    continue; // rejected by `parse`; only reachable for hand-built configs
                };
                endpoints.push(self.endpoint(host, plain_http, &repository, true, &[]));
            }
        }
        let (host, plain_http) = if registry == "docker.io" {
            parse_endpoint(DOCKER_HUB_ENDPOINT).expect("valid constant")
        } else {
            (registry.to_string(), false)
        };
        // The registry's own host listed as one of its mirrors (how k3s marks a registry
        // plain HTTP, or rewrites its paths) stands in for the default endpoint.
        if !endpoints.iter().any(|e| e.host == host) {
            endpoints.push(self.endpoint(host, plain_http, repository, false, &[registry]));
        }
        endpoints
    }

    fn endpoint(
        &self,
        host: String,
        plain_http: bool,
        repository: &str,
        is_mirror: bool,
        aliases: &[&str],
    ) -> Endpoint {
        let config = aliases
            .iter()
            .copied()
            .chain([host.as_str(), "*"])
            .find_map(|key| self.configs.get(key));
        let auth = config
            .and_then(|c| c.auth.as_ref())
            .and_then(|auth| decode_auth_field(auth).ok().flatten());
        let tls = config.and_then(|c| c.tls.clone()).unwrap_or_default();
        Endpoint {
            host,
            plain_http,
            repository: repository.to_string(),
            is_mirror,
            auth,
            insecure_skip_verify: tls.insecure_skip_verify,
            ca_file: tls.ca_file,
        }
    }
}

/// `http://host:port` → `("host:port", true)`; `https://host` or `host` → `("host", false)`.
fn parse_endpoint(text: &str) -> std::result::Result<(String, bool), String> {
    let (rest, plain_http) = if let Some(rest) = text.strip_prefix("http://") {
        (rest, true)
    } else if let Some(rest) = text.strip_prefix("https://") {
        (rest, false)
    } else if text.contains("://") {
        return Err(format!(
            "{text:?}: only http:// and https:// endpoints are supported"
        ));
    } else {
        (text, false)
    };
    let (host, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(format!("{text:?}: no host"));
    }
    // containerd accepts a path prefix here; the pull client always asks for `/v2/…`.
    if !matches!(path, "" | "/" | "/v2" | "/v2/") {
        return Err(format!(
            "{text:?}: endpoint paths other than /v2 are not supported"
        ));
    }
    Ok((host.to_string(), plain_http))
}

/// The first rewrite rule that matches, applied once; the path unchanged without a match.
fn rewrite(rules: &BTreeMap<String, String>, repository: &str) -> String {
    for (pattern, replacement) in rules {
        let Ok(regex) = regex::Regex::new(pattern) else {
            continue;
        };
        if regex.is_match(repository) {
            return regex.replace(repository, replacement.as_str()).into_owned();
        }
    }
    repository.to_string()
}

/// `(username, password)` from `username`/`password`, else from base64 `auth`; `None` when
/// the entry holds neither.
fn decode_auth_field(auth: &AuthConfig) -> std::result::Result<Option<(String, String)>, String> {
    if !auth.username.is_empty() {
        return Ok(Some((auth.username.clone(), auth.password.clone())));
    }
    if auth.auth.is_empty() {
        return Ok(None);
    }
    decode_basic(&auth.auth).map(Some)
}

/// base64 `user:password` (the `auth` field of registries.yaml and docker configs).
pub(crate) fn decode_basic(encoded: &str) -> std::result::Result<(String, String), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|err| format!("not base64: {err}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| "expected base64 of username:password".to_string())?;
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
mirrors:
  "docker.io":
    endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com/v2"]
  "127.0.0.1:5000":
    endpoint: ["http://127.0.0.1:5000"]
    rewrite:
      "^library/(.*)": "mirror/$1"
configs:
  "127.0.0.1:5000":
    auth: {username: u, password: p}
    tls: {insecure_skip_verify: true, ca_file: /x}
  "mirror.example.com":
    auth: {auth: "YWxpY2U6czNjcjN0"}
"#;

    #[test]
    fn parses_the_k3s_example() {
        let config = RegistriesConfig::parse(EXAMPLE, "registries.yaml").unwrap();
        assert_eq!(config.mirrors.len(), 2);
        let local = &config.configs["127.0.0.1:5000"];
        assert!(local.tls.as_ref().unwrap().insecure_skip_verify);
        assert_eq!(
            local.tls.as_ref().unwrap().ca_file.as_deref(),
            Some(Path::new("/x"))
        );
    }

    #[test]
    fn docker_io_tries_mirrors_then_hub() {
        let config = RegistriesConfig::parse(EXAMPLE, "registries.yaml").unwrap();
        let endpoints = config.endpoints("docker.io", "library/busybox");
        let hosts: Vec<_> = endpoints.iter().map(|e| e.url()).collect();
        assert_eq!(
            hosts,
            [
                "http://127.0.0.1:5000",
                "https://mirror.example.com",
                "https://registry-1.docker.io"
            ]
        );
        assert!(endpoints[0].plain_http && endpoints[0].is_mirror);
        assert!(!endpoints[2].is_mirror && !endpoints[2].plain_http);
        // No rewrite on the docker.io mirror: the path is kept.
        assert!(endpoints.iter().all(|e| e.repository == "library/busybox"));
        // Auth by endpoint host: the local registry's config, the base64 form decoded.
        assert_eq!(endpoints[0].auth, Some(("u".into(), "p".into())));
        assert!(endpoints[0].insecure_skip_verify);
        assert_eq!(endpoints[1].auth, Some(("alice".into(), "s3cr3t".into())));
        assert_eq!(endpoints[2].auth, None);
    }

    #[test]
    fn a_registry_mirroring_itself_gets_rewrites_and_plain_http() {
        let config = RegistriesConfig::parse(EXAMPLE, "registries.yaml").unwrap();
        let endpoints = config.endpoints("127.0.0.1:5000", "library/busybox");
        assert_eq!(endpoints.len(), 1, "{endpoints:?}");
        assert_eq!(endpoints[0].url(), "http://127.0.0.1:5000");
        assert_eq!(endpoints[0].repository, "mirror/busybox");
        // Paths the rule does not match are unchanged.
        assert_eq!(
            config.endpoints("127.0.0.1:5000", "team/app")[0].repository,
            "team/app"
        );
    }

    #[test]
    fn wildcard_mirror_and_defaults() {
        let config = RegistriesConfig::parse(
            "mirrors:\n  \"*\":\n    endpoint: [\"mirror.local:8443\"]\n",
            "r.yaml",
        )
        .unwrap();
        let endpoints = config.endpoints("quay.io", "a/b");
        let urls: Vec<_> = endpoints.iter().map(|e| e.url()).collect();
        assert_eq!(urls, ["https://mirror.local:8443", "https://quay.io"]);

        let empty = RegistriesConfig::default();
        let urls: Vec<_> = empty
            .endpoints("docker.io", "library/x")
            .iter()
            .map(|e| e.url())
            .collect();
        assert_eq!(urls, ["https://registry-1.docker.io"]);
    }

    #[test]
    fn missing_file_is_empty_and_bad_files_name_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.yaml");
        let config = RegistriesConfig::load(&path).unwrap();
        assert!(config.mirrors.is_empty() && config.configs.is_empty());

        std::fs::write(&path, "mirrors:\n  docker.io:\n    endpoint: 5\n").unwrap();
        let message = RegistriesConfig::load(&path).unwrap_err().to_string();
        assert!(message.contains("registries.yaml"), "{message}");
        assert!(message.contains("endpoint"), "{message}");

        std::fs::write(
            &path,
            "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
        )
        .unwrap();
        let message = RegistriesConfig::load(&path).unwrap_err().to_string();
        assert!(
            message.contains("mirrors.docker.io.endpoint[0]"),
            "{message}"
        );

        std::fs::write(
            &path,
            "mirrors:\n  docker.io:\n    rewrite: {\"(\": \"x\"}\n",
        )
        .unwrap();
        let message = RegistriesConfig::load(&path).unwrap_err().to_string();
        assert!(message.contains("mirrors.docker.io.rewrite"), "{message}");

        std::fs::write(&path, "configs:\n  h:\n    auth: {auth: \"!!\"}\n").unwrap();
        let message = RegistriesConfig::load(&path).unwrap_err().to_string();
        assert!(message.contains("configs.h.auth.auth"), "{message}");
    }
}
