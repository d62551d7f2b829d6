//! Registry credentials from imagePullSecrets: `kubernetes.io/dockerconfigjson` secrets
//! (`{"auths": {"<registry>": {…}}}`) and legacy `kubernetes.io/dockercfg` ones (the same map
//! without `auths`), matched to the host a pull talks to as kubelet's keyring does.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{ImageError, Result};
use super::registries::decode_basic;

/// A username and password for the registries `registry` names: a host (`quay.io`,
/// `127.0.0.1:5000`), a host with a path prefix (`quay.io/team`), a URL
/// (`https://index.docker.io/v1/`, which means docker.io), or a `*.example.com` wildcard.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredential {
    /// Never prints the password: credentials end up in logs through `{:?}` of their owners.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DockerConfigEntry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
}

/// Parses a secret's `.dockerconfigjson` (`{"auths": {…}}`) or `.dockercfg` (the bare map).
/// Entries with neither `username` nor `auth` (e.g. only an `email`) are skipped, as kubelet
/// skips them; an undecodable `auth` is an error naming the registry.
pub fn credentials_from_docker_config(json: &[u8]) -> Result<Vec<RegistryCredential>> {
    let invalid = |reason: String| ImageError::Config {
        file: "docker config".to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|err| invalid(err.to_string()))?;
    let map = match value.get("auths") {
        Some(auths) => auths.clone(),
        None => value,
    };
    let entries: BTreeMap<String, DockerConfigEntry> =
        serde_json::from_value(map).map_err(|err| invalid(err.to_string()))?;
    let mut credentials = Vec::new();
    for (registry, entry) in entries {
        let (username, password) = if !entry.auth.is_empty() && entry.username.is_empty() {
            decode_basic(&entry.auth)
                .map_err(|reason| invalid(format!("{registry}: auth: {reason}")))?
        } else if !entry.username.is_empty() {
            (entry.username, entry.password)
        } else {
            continue;
        };
        credentials.push(RegistryCredential {
            registry,
            username,
            password,
        });
    }
    Ok(credentials)
}

/// A credential key split into what kubelet compares: host labels, port and path prefix.
struct Key {
    host: String,
    port: Option<String>,
    path: String,
}

/// docker.io under every name it has gone by: `index.docker.io` (and its `/v1/` URL) in
/// docker configs, `registry-1.docker.io` as the API host.
fn canonical_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        other => other,
    }
}

fn parse_key(key: &str) -> Key {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], rest[slash..].trim_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.find(']') {
        // `[::1]:5000`
        Some(end) => (
            &authority[..=end],
            authority[end + 1..].strip_prefix(':').map(str::to_string),
        ),
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.to_string())),
            None => (authority, None),
        },
    };
    let host = canonical_host(&host.to_lowercase()).to_string();
    // `https://index.docker.io/v1/`: the API version, not a repository prefix.
    let path = if host == "docker.io" && matches!(path, "v1" | "v2") {
        String::new()
    } else {
        path.to_string()
    };
    Key { host, port, path }
}

/// `*.example.com` matches `a.example.com` (one label per `*`, same number of labels).
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let host: Vec<&str> = host.split('.').collect();
    pattern.len() == host.len() && pattern.iter().zip(&host).all(|(p, h)| glob_label(p, h))
}

/// A label with `*` inside (`registry-*`), as Go's `path.Match` allows.
fn glob_label(pattern: &str, label: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == label,
        Some((prefix, rest)) => label.strip_prefix(prefix).is_some_and(|tail| {
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob_label(rest, &tail[i..]))
        }),
    }
}

/// The credentials that apply to `repository` on `host` (`host[:port]`, docker.io under any
/// of its names), most specific first (longest host and path), as kubelet orders them. Pulls
/// try them in that order.
pub fn matching_credentials<'a>(
    credentials: &'a [RegistryCredential],
    host: &str,
    repository: &str,
) -> Vec<&'a RegistryCredential> {
    let target = parse_key(&format!("{host}/{repository}"));
    let mut hits: Vec<(usize, &RegistryCredential)> = credentials
        .iter()
        .filter_map(|credential| {
            let key = parse_key(&credential.registry);
            let matches = host_matches(&key.host, &target.host)
                && key.port == target.port
                && (key.path.is_empty()
                    || target.path == key.path
                    || target.path.starts_with(&format!("{}/", key.path)));
            matches.then_some((key.host.len() + key.path.len(), credential))
        })
        .collect();
    hits.sort_by_key(|hit| std::cmp::Reverse(hit.0));
    hits.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(registry: &str, user: &str) -> RegistryCredential {
        RegistryCredential {
            registry: registry.to_string(),
            username: user.to_string(),
            password: format!("{user}-pw"),
        }
    }

    #[test]
    fn parses_dockerconfigjson_and_dockercfg() {
        // "YWxpY2U6czNjcjN0" is base64("alice:s3cr3t").
        let json = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcjN0"},
            "127.0.0.1:5000": {"username": "bob", "password": "pw", "auth": "eDp5"},
            "only-email.example": {"email": "x@example.com"}
        }}"#;
        let parsed = credentials_from_docker_config(json).unwrap();
        assert_eq!(
            parsed,
            [
                RegistryCredential {
                    registry: "127.0.0.1:5000".into(),
                    username: "bob".into(),
                    password: "pw".into()
                },
                RegistryCredential {
                    registry: "https://index.docker.io/v1/".into(),
                    username: "alice".into(),
                    password: "s3cr3t".into()
                },
            ]
        );
        let legacy = br#"{"quay.io": {"auth": "YWxpY2U6czNjcjN0", "email": "a@b"}}"#;
        let parsed = credentials_from_docker_config(legacy).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].registry, "quay.io");
        assert_eq!(parsed[0].username, "alice");

        let message = credentials_from_docker_config(br#"{"auths":{"h":{"auth":"!!"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("h: auth"), "{message}");
        assert!(credentials_from_docker_config(b"[1]").is_err());
        assert!(!format!("{:?}", parsed[0]).contains("s3cr3t"));
    }

    #[test]
    fn matches_hosts_as_kubelet_does() {
        let all = [
            credential("https://index.docker.io/v1/", "hub"),
            credential("127.0.0.1:5000", "local"),
            credential("quay.io", "quay"),
            credential("quay.io/team", "team"),
            credential("*.example.com", "wild"),
        ];
        let users = |host: &str, repo: &str| -> Vec<String> {
            matching_credentials(&all, host, repo)
                .into_iter()
                .map(|c| c.username.clone())
                .collect()
        };
        assert_eq!(users("docker.io", "library/busybox"), ["hub"]);
        assert_eq!(users("registry-1.docker.io", "library/busybox"), ["hub"]);
        assert_eq!(users("127.0.0.1:5000", "library/busybox"), ["local"]);
        assert!(users("127.0.0.1:5001", "library/busybox").is_empty());
        assert!(users("127.0.0.1", "library/busybox").is_empty());
        assert_eq!(users("quay.io", "team/app"), ["team", "quay"]);
        assert_eq!(users("quay.io", "teammate/app"), ["quay"]);
        assert_eq!(users("r.example.com", "a"), ["wild"]);
        assert!(users("a.b.example.com", "a").is_empty());
        assert!(users("example.com", "a").is_empty());
    }

    #[test]
    fn label_globs() {
        assert!(glob_label("registry-*", "registry-eu"));
        assert!(glob_label("*-mirror", "eu-mirror"));
        assert!(!glob_label("registry-*", "mirror-eu"));
        assert!(glob_label("a*c", "abbbc"));
        assert!(!glob_label("a*c", "ab"));
    }
}
