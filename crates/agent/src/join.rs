//! Joining a cluster: the join token is exchanged for node credentials (k3s's scheme).
//!
//! The token is `K10<sha256 of the cluster CA PEM>::server:<secret>`. The agent fetches the
//! CA from `GET /cacerts` without trusting the server yet, checks its hash against the token,
//! then, trusting only that CA, posts the token to `POST /v1-timonel/node-credentials` and
//! receives a client certificate for `system:node:<name>` (group `system:nodes`) and a
//! serving certificate for its own HTTPS endpoint. Credentials are kept in
//! `<data dir>/credentials/` and reused on restart.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the server hands a joining node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCredentials {
    pub client_certificate: String,
    pub client_key: String,
    pub serving_certificate: String,
    pub serving_key: String,
    #[serde(rename = "serverCA")]
    pub server_ca: String,
    #[serde(rename = "clientCA")]
    pub client_ca: String,
}

/// The parts of a join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Hex sha256 of the CA PEM, when the token is in the full `K10…` form.
    pub ca_hash: Option<String>,
    pub secret: String,
    pub raw: String,
}

impl JoinToken {
    pub fn parse(text: &str) -> anyhow::Result<JoinToken> {
        let raw = text.trim().to_string();
        if raw.is_empty() {
            bail!("the join token is empty");
        }
        if let Some(rest) = raw.strip_prefix("K10") {
            let Some((hash, secret)) = rest.split_once("::") else {
                bail!("malformed join token: expected K10<hash>::<user>:<secret>");
            };
            let secret = secret
                .split_once(':')
                .map(|(_, s)| s)
                .unwrap_or(secret)
                .to_string();
            return Ok(JoinToken {
                ca_hash: Some(hash.to_ascii_lowercase()),
                secret,
                raw,
            });
        }
        Ok(JoinToken {
            ca_hash: None,
            secret: raw.clone(),
            raw,
        })
    }
}

fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials").join("node.json")
}

/// Loads saved credentials, if any.
pub fn load(data_dir: &Path) -> anyhow::Result<Option<NodeCredentials>> {
    let path = credentials_path(data_dir);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save(data_dir: &Path, credentials: &NodeCredentials) -> anyhow::Result<()> {
    let path = credentials_path(data_dir);
    let dir = path.parent().expect("has a parent");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(credentials)?)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, &path)?;
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn client_for(
    server: &str,
    root_ca_pem: Option<&str>,
    token: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::new(server.parse().context("the server URL")?);
    match root_ca_pem {
        Some(pem) => {
            config.root_cert = Some(pem_certificates(pem)?);
        }
        None => config.accept_invalid_certs = true,
    }
    if let Some(token) = token {
        config.auth_info.token = Some(token.to_string().into());
    }
    Ok(kube::Client::try_from(config)?)
}

/// DER certificates of a PEM bundle.
pub fn pem_certificates(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let body = current.take().unwrap_or_default();
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .context("a certificate in the CA bundle is not base64")?,
            );
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    if out.is_empty() {
        bail!("no certificate found in the CA bundle");
    }
    Ok(out)
}

/// Returns the node's credentials: the saved ones, or new ones obtained with `token`.
pub async fn credentials(
    data_dir: &Path,
    server: &str,
    token: &str,
    node_name: &str,
    addresses: &[String],
) -> anyhow::Result<NodeCredentials> {
    if let Some(saved) = load(data_dir)? {
        return Ok(saved);
    }
    let token = JoinToken::parse(token)?;
    let insecure = client_for(server, None, None).await?;
    let ca_pem = insecure
        .request_text(http::Request::get("/cacerts").body(Vec::new())?)
        .await
        .with_context(|| format!("fetching the cluster CA from {server}/cacerts"))?;
    if let Some(expected) = &token.ca_hash {
        let actual = sha256_hex(ca_pem.as_bytes());
        if &actual != expected {
            bail!(
                "the server's CA does not match the join token (token expects sha256 {expected}, \
                 server sent {actual}): wrong server or wrong token"
            );
        }
    }
    let client = client_for(server, Some(&ca_pem), Some(&token.raw)).await?;
    let body = serde_json::json!({ "nodeName": node_name, "addresses": addresses });
    let reply = client
        .request_text(
            http::Request::post("/v1-timonel/node-credentials")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body)?)?,
        )
        .await
        .context("exchanging the join token for node credentials")?;
    let credentials: NodeCredentials =
        serde_json::from_str(&reply).context("the server's node credentials reply")?;
    save(data_dir, &credentials)?;
    Ok(credentials)
}

/// A kube client authenticated as the node.
pub fn node_client(server: &str, credentials: &NodeCredentials) -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::new(server.parse().context("the server URL")?);
    config.root_cert = Some(pem_certificates(&credentials.server_ca)?);
    config.auth_info.client_certificate_data = Some(base64_encode(&credentials.client_certificate));
    config.auth_info.client_key_data = Some(base64_encode(&credentials.client_key).into());
    Ok(kube::Client::try_from(config)?)
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_bare_tokens_parse() {
        let t = JoinToken::parse("K10ABCdef::server:s3cret\n").unwrap();
        assert_eq!(t.ca_hash.as_deref(), Some("abcdef"));
        assert_eq!(t.secret, "s3cret");
        let bare = JoinToken::parse("s3cret").unwrap();
        assert_eq!(bare.ca_hash, None);
        assert_eq!(bare.secret, "s3cret");
        assert!(JoinToken::parse("  ").is_err());
        assert!(JoinToken::parse("K10abc").is_err());
    }

    #[test]
    fn credentials_round_trip_through_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let c = NodeCredentials {
            client_certificate: "c".into(),
            client_key: "k".into(),
            serving_certificate: "sc".into(),
            serving_key: "sk".into(),
            server_ca: "ca".into(),
            client_ca: "cca".into(),
        };
        save(dir.path(), &c).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(c));
        let mode = fs::metadata(credentials_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
