//! Cluster PKI, k3s style: a server CA (signs the serving certificate), a client CA (signs client
//! certificates for admins and node agents), an admin bearer token, a node join token, the rustls
//! server configuration and the admin kubeconfig.
//!
//! Everything lives under `<data_dir>/server`, is created on first start and reused afterwards.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

const CA_LIFETIME_DAYS: i64 = 3650;
const LEAF_LIFETIME_DAYS: i64 = 365;
/// Leaf certificates are reissued on start when they expire within this many days (as k3s does).
const RENEW_BEFORE_DAYS: i64 = 90;
/// Tolerates clocks of peers that are slightly behind ours.
const BACKDATE: Duration = Duration::hours(1);

const ADMIN_USER: &str = "system:admin";
const ADMIN_GROUP: &str = "system:masters";
const SERVING_CN: &str = "kube-apiserver";
/// The identity the API server presents to kubelets (upstream's
/// `--kubelet-client-certificate` is usually issued the same way).
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

const MODE_DIR: u32 = 0o700;
const MODE_SECRET: u32 = 0o600;
const MODE_PUBLIC: u32 = 0o644;

/// Names every client may use to reach the API server, in or out of the cluster.
const DEFAULT_SANS: &[&str] = &[
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.43.0.1",
];

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("corrupt {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{} is missing but {} exists: restore it, or remove both to generate a new CA",
        missing.display(),
        present.display()
    )]
    Incomplete { missing: PathBuf, present: PathBuf },
    #[error("invalid subject alternative name {name:?}: {reason}")]
    InvalidSan { name: String, reason: &'static str },
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),
    #[error("cannot generate {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// A certificate with its private key, as stored on disk.
#[derive(Debug, Clone)]
struct KeyedCert {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
}

/// Where one certificate/key pair is stored.
struct PairPaths {
    cert: PathBuf,
    key: PathBuf,
}

impl PairPaths {
    fn new(dir: &Path, stem: &str) -> Self {
        PairPaths {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        }
    }
}

/// A subject alternative name in canonical form, so that "::1" and "0:0::1" compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SanEntry {
    Ip(IpAddr),
    Dns(String),
}

impl SanEntry {
    fn parse(raw: &str) -> Result<Option<SanEntry>, PkiError> {
        let trimmed = raw.trim();
        let unbracketed = trimmed
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(trimmed);
        if unbracketed.is_empty() {
            return Ok(None);
        }
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            // A wildcard bind address is not a name anyone can connect to.
            return Ok((!ip.is_unspecified()).then_some(SanEntry::Ip(ip)));
        }
        let invalid = |reason| PkiError::InvalidSan {
            name: raw.to_string(),
            reason,
        };
        if !unbracketed.is_ascii() {
            return Err(invalid("not an ASCII DNS name (use the punycode form)"));
        }
        if unbracketed
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*')))
        {
            return Err(invalid("neither an IP address nor a DNS name"));
        }
        Ok(Some(SanEntry::Dns(unbracketed.to_ascii_lowercase())))
    }

    fn to_rcgen(&self) -> Result<SanType, PkiError> {
        match self {
            SanEntry::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            SanEntry::Dns(name) => {
                name.clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| PkiError::InvalidSan {
                        name: name.clone(),
                        reason: "not an IA5 string",
                    })
            }
        }
    }
}

fn push_unique(list: &mut Vec<SanEntry>, entry: SanEntry) {
    if !list.contains(&entry) {
        list.push(entry);
    }
}

/// What we need to know about a stored certificate to decide whether to reuse it.
struct CertFacts {
    common_name: Option<String>,
    organizations: Vec<String>,
    sans: Vec<SanEntry>,
    not_after_unix: i64,
    public_key: Vec<u8>,
}

fn cert_facts(der: &[u8]) -> Result<CertFacts, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|attr| attr.as_str().ok())
        .map(str::to_string);
    let organizations = subject
        .iter_organization()
        .filter_map(|attr| attr.as_str().ok())
        .map(str::to_string)
        .collect();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => {
                    push_unique(&mut sans, SanEntry::Dns(dns.to_ascii_lowercase()))
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        push_unique(&mut sans, SanEntry::Ip(ip));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertFacts {
        common_name,
        organizations,
        sans,
        not_after_unix: cert.validity().not_after.timestamp(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// True when `der` carries a valid signature by the CA certificate `ca_der`.
fn signed_by(der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(der),
        x509_parser::parse_x509_certificate(ca_der),
    ) else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// Reads a file that may legitimately not exist yet; any other failure is an error.
fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| PkiError::Corrupt {
                path: path.to_path_buf(),
                reason: "not a text (PEM) file".into(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes through a temporary file and a rename so a crash never leaves a half-written file.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let write_err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` only applies when the file is created; a stale temp file keeps its old mode.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

fn create_dir(path: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(MODE_DIR)
        .create(path)
        .map_err(|source| PkiError::CreateDir {
            path: path.to_path_buf(),
            source,
        })
}

fn parse_cert_pem(path: &Path, pem: &str) -> Result<Vec<u8>, PkiError> {
    let corrupt = |reason: String| PkiError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| corrupt(format!("no PEM certificate: {e}")))?;
    x509_parser::parse_x509_certificate(&der)
        .map_err(|e| corrupt(format!("invalid X.509 certificate: {e}")))?;
    Ok(der.to_vec())
}

fn parse_key_pem(path: &Path, pem: &str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem).map_err(|e| PkiError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("invalid private key: {e}"),
    })
}

fn generate_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Generate {
        what: format!("{what} key"),
        source,
    })
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive, and a non-zero first byte keeps the DER INTEGER minimal at full length.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn base_params(common_name: &str, organizations: &[&str], lifetime_days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(lifetime_days);
    params.serial_number = Some(random_serial());
    params
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

/// Loads a CA pair, or creates a new one when neither file exists.
fn ensure_ca(paths: &PairPaths, cn_prefix: &str) -> Result<KeyedCert, PkiError> {
    let cert_pem = read_optional(&paths.cert)?;
    let key_pem = read_optional(&paths.key)?;
    match (cert_pem, key_pem) {
        (Some(cert_pem), Some(key_pem)) => {
            let cert_der = parse_cert_pem(&paths.cert, &cert_pem)?;
            let key = parse_key_pem(&paths.key, &key_pem)?;
            let facts = cert_facts(&cert_der).map_err(|reason| PkiError::Corrupt {
                path: paths.cert.clone(),
                reason,
            })?;
            if facts.public_key != key.public_key_raw() {
                return Err(PkiError::Corrupt {
                    path: paths.key.clone(),
                    reason: format!("does not match the certificate {}", paths.cert.display()),
                });
            }
            Ok(KeyedCert {
                cert_pem,
                cert_der,
                key_pem,
            })
        }
        (None, None) => {
            let key = generate_key(cn_prefix)?;
            let mut params = base_params(
                &format!("{cn_prefix}@{}", unix_now()),
                &[],
                CA_LIFETIME_DAYS,
            );
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
            let cert = params
                .self_signed(&key)
                .map_err(|source| PkiError::Generate {
                    what: format!("{cn_prefix} certificate"),
                    source,
                })?;
            let stored = KeyedCert {
                cert_pem: cert.pem(),
                cert_der: cert.der().to_vec(),
                key_pem: key.serialize_pem(),
            };
            write_file(&paths.key, stored.key_pem.as_bytes(), MODE_SECRET)?;
            write_file(&paths.cert, stored.cert_pem.as_bytes(), MODE_PUBLIC)?;
            Ok(stored)
        }
        (Some(_), None) => Err(PkiError::Incomplete {
            missing: paths.key.clone(),
            present: paths.cert.clone(),
        }),
        (None, Some(_)) => Err(PkiError::Incomplete {
            missing: paths.cert.clone(),
            present: paths.key.clone(),
        }),
    }
}

enum LeafUsage {
    Server,
    Client,
}

/// What a leaf certificate must look like.
struct LeafSpec<'a> {
    what: &'a str,
    common_name: &'a str,
    organizations: &'a [&'a str],
    sans: Vec<SanEntry>,
    usage: LeafUsage,
    lifetime_days: i64,
}

fn sign_leaf(spec: &LeafSpec, key: &KeyPair, ca: &KeyedCert) -> Result<KeyedCert, PkiError> {
    let generate_err = |source| PkiError::Generate {
        what: format!("{} certificate", spec.what),
        source,
    };
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(generate_err)?;
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(ca.cert_der.as_slice()), ca_key)
        .map_err(generate_err)?;
    let mut params = base_params(spec.common_name, spec.organizations, spec.lifetime_days);
    params.subject_alt_names = spec
        .sans
        .iter()
        .map(SanEntry::to_rcgen)
        .collect::<Result<_, _>>()?;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match spec.usage {
        LeafUsage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        LeafUsage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    let cert = params.signed_by(key, &issuer).map_err(generate_err)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
    })
}

/// Loads a leaf pair signed by `ca`, reissuing it (keeping a valid existing key) when it is
/// missing, signed by another CA, about to expire, or lacks a requested name.
fn ensure_leaf(paths: &PairPaths, ca: &KeyedCert, spec: LeafSpec) -> Result<KeyedCert, PkiError> {
    let cert_pem = read_optional(&paths.cert)?;
    let key_pem = read_optional(&paths.key)?;
    let key = key_pem
        .as_deref()
        .map(|pem| parse_key_pem(&paths.key, pem))
        .transpose()?;
    let existing = match &cert_pem {
        Some(pem) => {
            let der = parse_cert_pem(&paths.cert, pem)?;
            let facts = cert_facts(&der).map_err(|reason| PkiError::Corrupt {
                path: paths.cert.clone(),
                reason,
            })?;
            Some((der, facts))
        }
        None => None,
    };

    let mut spec = spec;
    if let (Some(key), Some(cert_pem), Some((der, facts))) = (&key, &cert_pem, &existing) {
        let renew_after = unix_now() + RENEW_BEFORE_DAYS * 86_400;
        let reusable = facts.public_key == key.public_key_raw()
            && facts.not_after_unix > renew_after
            && facts.common_name.as_deref() == Some(spec.common_name)
            && facts
                .organizations
                .iter()
                .map(String::as_str)
                .eq(spec.organizations.iter().copied())
            && spec.sans.iter().all(|san| facts.sans.contains(san))
            && signed_by(der, &ca.cert_der);
        if reusable {
            return Ok(KeyedCert {
                cert_pem: cert_pem.clone(),
                cert_der: der.clone(),
                key_pem: key_pem.clone().unwrap_or_default(),
            });
        }
    }
    // Names added by earlier starts (e.g. another bind address) stay valid for their clients.
    if let Some((_, facts)) = &existing {
        for san in &facts.sans {
            push_unique(&mut spec.sans, san.clone());
        }
    }
    let (key, key_is_new) = match key {
        Some(key) => (key, false),
        None => (generate_key(spec.what)?, true),
    };
    let stored = sign_leaf(&spec, &key, ca)?;
    if key_is_new {
        write_file(&paths.key, stored.key_pem.as_bytes(), MODE_SECRET)?;
    }
    write_file(&paths.cert, stored.cert_pem.as_bytes(), MODE_PUBLIC)?;
    Ok(stored)
}

/// The machine hostname, so that clients may use it to reach the server.
fn machine_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .map(|name| name.trim().to_ascii_lowercase())
        .find(|name| !name.is_empty())
}

fn requested_sans(extra_sans: &[String]) -> Result<Vec<SanEntry>, PkiError> {
    let mut sans = Vec::new();
    for name in DEFAULT_SANS {
        if let Some(entry) = SanEntry::parse(name)? {
            push_unique(&mut sans, entry);
        }
    }
    // An odd hostname must not prevent the server from starting; it just is not a SAN.
    if let Some(Ok(Some(entry))) = machine_hostname().map(|h| SanEntry::parse(&h)) {
        push_unique(&mut sans, entry);
    }
    for name in extra_sans {
        if let Some(entry) = SanEntry::parse(name)? {
            push_unique(&mut sans, entry);
        }
    }
    Ok(sans)
}

fn ca_hash_hex(ca_pem: &str) -> String {
    hex::encode(Sha256::digest(ca_pem.as_bytes()))
}

/// Loads the node join token `K10<sha256(CA PEM)>::server:<secret>`, creating it if missing and
/// updating the CA hash (keeping the secret) if the CA changed.
fn ensure_node_token(path: &Path, ca_pem: &str) -> Result<String, PkiError> {
    let expected_prefix = format!("K10{}", ca_hash_hex(ca_pem));
    let secret = match read_optional(path)? {
        Some(contents) => {
            let token = contents.trim();
            let (hash_part, credentials) =
                token.split_once("::").ok_or_else(|| PkiError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "expected K10<ca hash>::server:<secret>".into(),
                })?;
            let secret = credentials
                .strip_prefix("server:")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| PkiError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "expected K10<ca hash>::server:<secret>".into(),
                })?;
            if hash_part == expected_prefix {
                return Ok(token.to_string());
            }
            secret.to_string()
        }
        None => random_hex(16),
    };
    let token = format!("{expected_prefix}::server:{secret}");
    write_file(path, format!("{token}\n").as_bytes(), MODE_SECRET)?;
    Ok(token)
}

fn ensure_admin_token(path: &Path) -> Result<String, PkiError> {
    if let Some(contents) = read_optional(path)? {
        let token = contents.trim();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PkiError::Corrupt {
                path: path.to_path_buf(),
                reason: "expected a single bearer token".into(),
            });
        }
        return Ok(token.to_string());
    }
    let token = random_hex(32);
    write_file(path, format!("{token}\n").as_bytes(), MODE_SECRET)?;
    Ok(token)
}

/// The cluster's certificates, keys and tokens, loaded from (and persisted under)
/// `<data_dir>/server`.
#[derive(Debug, Clone)]
pub struct ClusterPki {
    tls_dir: PathBuf,
    server_ca: KeyedCert,
    client_ca: KeyedCert,
    serving: KeyedCert,
    admin: KeyedCert,
    kubelet_client: KeyedCert,
    admin_token: String,
    node_token: String,
    /// PKCS#8 DER of the ECDSA P-256 key that signs service account tokens.
    service_account_key: Vec<u8>,
}

/// Loads the service account signing key (`tls/service-account.key`), or creates it.
fn ensure_service_account_key(path: &Path) -> Result<Vec<u8>, PkiError> {
    if let Some(pem) = read_optional(path)? {
        return Ok(parse_key_pem(path, &pem)?.serialize_der());
    }
    let key = generate_key("service account signing")?;
    write_file(path, key.serialize_pem().as_bytes(), MODE_SECRET)?;
    Ok(key.serialize_der())
}

impl ClusterPki {
    /// Loads `<data_dir>/server/tls/*` and the tokens, creating whatever is missing:
    /// server CA, client CA, serving certificate (reissued when a requested SAN is missing),
    /// admin client certificate, admin bearer token (`server/admin-token`) and node join token
    /// (`server/node-token`). Keys and tokens are mode 0600, directories 0700.
    pub fn load_or_create(data_dir: &Path, extra_sans: &[String]) -> Result<ClusterPki, PkiError> {
        let sans = requested_sans(extra_sans)?;
        let server_dir = data_dir.join("server");
        let tls_dir = server_dir.join("tls");
        create_dir(&tls_dir)?;

        // Leaves signed by a replaced CA fail the signature check in ensure_leaf and are reissued.
        let server_ca = ensure_ca(&PairPaths::new(&tls_dir, "server-ca"), "timonel-server-ca")?;
        let client_ca = ensure_ca(&PairPaths::new(&tls_dir, "client-ca"), "timonel-client-ca")?;
        let serving = ensure_leaf(
            &PairPaths::new(&tls_dir, "serving-kube-apiserver"),
            &server_ca,
            LeafSpec {
                what: "serving",
                common_name: SERVING_CN,
                organizations: &[],
                sans,
                usage: LeafUsage::Server,
                lifetime_days: LEAF_LIFETIME_DAYS,
            },
        )?;
        let admin = ensure_leaf(
            &PairPaths::new(&tls_dir, "client-admin"),
            &client_ca,
            LeafSpec {
                what: "admin client",
                common_name: ADMIN_USER,
                organizations: &[ADMIN_GROUP],
                sans: Vec::new(),
                usage: LeafUsage::Client,
                lifetime_days: LEAF_LIFETIME_DAYS,
            },
        )?;
        // What the API server presents when it proxies logs, exec, attach and port-forward to
        // a node's kubelet; kubelets verify it against the client CA.
        let kubelet_client = ensure_leaf(
            &PairPaths::new(&tls_dir, "client-kube-apiserver-kubelet"),
            &client_ca,
            LeafSpec {
                what: "kubelet client",
                common_name: KUBELET_CLIENT_CN,
                organizations: &[ADMIN_GROUP],
                sans: Vec::new(),
                usage: LeafUsage::Client,
                lifetime_days: LEAF_LIFETIME_DAYS,
            },
        )?;
        let admin_token = ensure_admin_token(&server_dir.join("admin-token"))?;
        let node_token = ensure_node_token(&server_dir.join("node-token"), &server_ca.cert_pem)?;
        let service_account_key = ensure_service_account_key(&tls_dir.join("service-account.key"))?;
        Ok(ClusterPki {
            service_account_key,
            tls_dir,
            server_ca,
            client_ca,
            serving,
            admin,
            kubelet_client,
            admin_token,
            node_token,
        })
    }

    /// The rustls configuration for the API server: the serving certificate, ALPN `http/1.1`
    /// only (exec/attach/port-forward need HTTP/1.1 Upgrade) and optional client certificates,
    /// verified against the client CA when presented.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.client_ca.cert_der.clone()))
            .map_err(|e| PkiError::Tls(format!("client CA: {e}")))?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| PkiError::Tls(format!("client certificate verifier: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.serving.key_pem.as_bytes()).map_err(|e| {
            PkiError::Corrupt {
                path: self.tls_dir.join("serving-kube-apiserver.key"),
                reason: e.to_string(),
            }
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PkiError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(self.serving.cert_der.clone())],
                key,
            )
            .map_err(|e| PkiError::Tls(format!("serving certificate: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The bearer token that authenticates as `system:admin` (group `system:masters`).
    /// The service account token signing key (ECDSA P-256, PKCS#8 DER).
    pub fn service_account_key(&self) -> &[u8] {
        &self.service_account_key
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The node join token, `K10<sha256 of the CA PEM>::server:<secret>`.
    pub fn node_token(&self) -> &str {
        &self.node_token
    }

    /// The secret part of the node join token (after `::server:`), which the server compares
    /// against what a joining node presents.
    pub fn node_token_secret(&self) -> &str {
        self.node_token
            .split_once("::server:")
            .map_or("", |(_, secret)| secret)
    }

    /// The server CA certificate (PEM) that clients trust.
    pub fn ca_pem(&self) -> &str {
        &self.server_ca.cert_pem
    }

    /// The client CA certificate (PEM) that signs client certificates.
    pub fn client_ca_pem(&self) -> &str {
        &self.client_ca.cert_pem
    }

    /// The serving certificate (PEM).
    pub fn serving_cert_pem(&self) -> &str {
        &self.serving.cert_pem
    }

    /// The admin client certificate and key (PEM).
    pub fn admin_client_cert(&self) -> (&str, &str) {
        (&self.admin.cert_pem, &self.admin.key_pem)
    }

    /// The API server's client certificate and key for kubelets (PEM), stored as
    /// `tls/client-kube-apiserver-kubelet.{crt,key}`: CN `kube-apiserver-kubelet-client`,
    /// O `system:masters`, signed by the client CA.
    pub fn kubelet_client_cert(&self) -> (&str, &str) {
        (&self.kubelet_client.cert_pem, &self.kubelet_client.key_pem)
    }

    /// `<data_dir>/server/tls`.
    pub fn tls_dir(&self) -> &Path {
        &self.tls_dir
    }

    /// An admin kubeconfig for `server_url`, with every credential inline.
    pub fn kubeconfig_yaml(&self, server_url: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{
                "name": "default",
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": b64(&self.server_ca.cert_pem),
                },
            }],
            "users": [{
                "name": "default",
                "user": {
                    "client-certificate-data": b64(&self.admin.cert_pem),
                    "client-key-data": b64(&self.admin.key_pem),
                },
            }],
            "contexts": [{
                "name": "default",
                "context": { "cluster": "default", "user": "default" },
            }],
            "current-context": "default",
            "preferences": {},
        });
        // JSON is valid YAML, so it is a faithful fallback should YAML serialization ever fail.
        serde_yaml::to_string(&config).unwrap_or_else(|_| config.to_string())
    }

    /// Writes the admin kubeconfig to `path` (mode 0600), creating its directory if needed.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent)?;
        }
        write_file(
            path,
            self.kubeconfig_yaml(server_url).as_bytes(),
            MODE_SECRET,
        )
    }

    /// Issues a client certificate signed by the client CA, e.g. CN `system:node:NAME`,
    /// O `system:nodes` for a node agent. Returns `(certificate PEM, key PEM)`.
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
        days: u32,
    ) -> Result<(String, String), PkiError> {
        if common_name.trim().is_empty() {
            return Err(PkiError::InvalidRequest("empty common name".into()));
        }
        if days == 0 {
            return Err(PkiError::InvalidRequest(
                "validity must be at least one day".into(),
            ));
        }
        let key = generate_key("client")?;
        let issued = sign_leaf(
            &LeafSpec {
                what: "client",
                common_name,
                organizations,
                sans: Vec::new(),
                usage: LeafUsage::Client,
                lifetime_days: i64::from(days),
            },
            &key,
            &self.client_ca,
        )?;
        Ok((issued.cert_pem, issued.key_pem))
    }
}

impl ClusterPki {
    /// Issues a kubelet serving certificate signed by the server CA (so the API server, which
    /// trusts that CA, can verify the node), with `addresses` as its names: IP addresses
    /// become IP SANs, anything else DNS SANs. Returns `(certificate PEM, key PEM)`.
    pub fn issue_serving_cert(
        &self,
        common_name: &str,
        addresses: &[String],
        days: u32,
    ) -> Result<(String, String), PkiError> {
        if common_name.trim().is_empty() {
            return Err(PkiError::InvalidRequest("empty common name".into()));
        }
        if days == 0 {
            return Err(PkiError::InvalidRequest(
                "validity must be at least one day".into(),
            ));
        }
        let mut sans = Vec::new();
        for address in addresses {
            if let Some(entry) = SanEntry::parse(address)? {
                push_unique(&mut sans, entry);
            }
        }
        if sans.is_empty() {
            return Err(PkiError::InvalidRequest(
                "a serving certificate needs at least one address".into(),
            ));
        }
        let key = generate_key("kubelet serving")?;
        let issued = sign_leaf(
            &LeafSpec {
                what: "kubelet serving",
                common_name,
                organizations: &[],
                sans,
                usage: LeafUsage::Server,
                lifetime_days: i64::from(days),
            },
            &key,
            &self.server_ca,
        )?;
        Ok((issued.cert_pem, issued.key_pem))
    }
}

/// The user identity of a verified client certificate (DER): CN → username, O → groups.
/// `None` when the certificate cannot be parsed or has no common name.
pub fn identity_from_cert(der: &[u8]) -> Option<(String, Vec<String>)> {
    let facts = cert_facts(der).ok()?;
    let user = facts.common_name.filter(|cn| !cn.is_empty())?;
    Some((user, facts.organizations))
}

#[cfg(test)]
mod tests;
