use super::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// (inode, mtime) of every file under `server/`, to detect rewrites.
fn snapshot(data_dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    for dir in [data_dir.join("server"), data_dir.join("server/tls")] {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_file() {
                out.insert(entry.path(), (meta.ino(), meta.modified().unwrap()));
            }
        }
    }
    out
}

fn cert_der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn first_start_creates_everything_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &["192.0.2.7".into()]).unwrap();
    let server = dir.path().join("server");
    let tls = server.join("tls");
    assert_eq!(mode(&server), 0o700);
    assert_eq!(mode(&tls), 0o700);
    for key in [
        "server-ca.key",
        "client-ca.key",
        "serving-kube-apiserver.key",
        "client-admin.key",
        "service-account.key",
    ] {
        assert_eq!(mode(&tls.join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&server.join("node-token")), 0o600);
    assert_eq!(mode(&server.join("admin-token")), 0o600);
    assert_eq!(
        fs::read_to_string(tls.join("server-ca.crt")).unwrap(),
        pki.ca_pem()
    );

    let ca = cert_facts(&cert_der_of(pki.ca_pem())).unwrap();
    assert!(ca.common_name.unwrap().starts_with("timonel-server-ca@"));
    let client_ca = cert_facts(&cert_der_of(pki.client_ca_pem())).unwrap();
    assert!(
        client_ca
            .common_name
            .unwrap()
            .starts_with("timonel-client-ca@")
    );
    assert!(ca.not_after_unix > unix_now() + 9 * 365 * 86_400);

    let expected_prefix = format!("K10{}::server:", ca_hash_hex(pki.ca_pem()));
    let secret = pki.node_token().strip_prefix(&expected_prefix).unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(pki.node_token_secret(), secret);
    assert_eq!(
        fs::read_to_string(server.join("node-token"))
            .unwrap()
            .trim(),
        pki.node_token()
    );
    assert_eq!(pki.admin_token().len(), 64);
    assert_ne!(pki.admin_token(), secret);

    let serving = cert_facts(&cert_der_of(pki.serving_cert_pem())).unwrap();
    let mut expected: Vec<SanEntry> = DEFAULT_SANS
        .iter()
        .map(|s| SanEntry::parse(s).unwrap().unwrap())
        .collect();
    expected.push(SanEntry::Ip("192.0.2.7".parse().unwrap()));
    if let Some(host) = machine_hostname() {
        expected.push(SanEntry::Dns(host));
    }
    for san in &expected {
        assert!(serving.sans.contains(san), "missing {san:?}");
    }
    assert!(signed_by(
        &cert_der_of(pki.serving_cert_pem()),
        &cert_der_of(pki.ca_pem())
    ));
    let (admin_cert, _) = pki.admin_client_cert();
    assert!(signed_by(
        &cert_der_of(admin_cert),
        &cert_der_of(pki.client_ca_pem())
    ));
}

#[test]
fn later_starts_reuse_everything_without_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    let sans = vec!["10.0.0.5".to_string()];
    let first = ClusterPki::load_or_create(dir.path(), &sans).unwrap();
    let before = snapshot(dir.path());
    let second = ClusterPki::load_or_create(dir.path(), &sans).unwrap();
    assert_eq!(snapshot(dir.path()), before);
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_eq!(first.client_ca_pem(), second.client_ca_pem());
    assert_eq!(first.serving_cert_pem(), second.serving_cert_pem());
    assert_eq!(first.admin_client_cert(), second.admin_client_cert());
    assert_eq!(first.admin_token(), second.admin_token());
    assert_eq!(first.node_token(), second.node_token());
    assert_eq!(first.service_account_key(), second.service_account_key());
}

#[test]
fn missing_san_reissues_only_the_serving_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let before = snapshot(dir.path());
    let extra = vec!["192.0.2.10".to_string(), "API.example.com".to_string()];
    let second = ClusterPki::load_or_create(dir.path(), &extra).unwrap();
    let after = snapshot(dir.path());

    let serving_crt = dir.path().join("server/tls/serving-kube-apiserver.crt");
    for (path, stamp) in &before {
        if path == &serving_crt {
            assert_ne!(after[path], *stamp, "serving certificate not rewritten");
        } else {
            assert_eq!(after[path], *stamp, "{} rewritten", path.display());
        }
    }
    assert_ne!(first.serving_cert_pem(), second.serving_cert_pem());
    assert_eq!(first.ca_pem(), second.ca_pem());

    let serving = cert_facts(&cert_der_of(second.serving_cert_pem())).unwrap();
    assert!(
        serving
            .sans
            .contains(&SanEntry::Ip("192.0.2.10".parse().unwrap()))
    );
    assert!(
        serving
            .sans
            .contains(&SanEntry::Dns("api.example.com".into()))
    );
    assert!(
        serving
            .sans
            .contains(&SanEntry::Dns("kubernetes.default.svc".into()))
    );

    // Names from earlier starts are kept, so going back does not reissue again.
    let third = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    assert_eq!(third.serving_cert_pem(), second.serving_cert_pem());
    assert_eq!(snapshot(dir.path()), after);
}

#[test]
fn replaced_ca_reissues_serving_cert_and_node_token_hash() {
    let dir = tempfile::tempdir().unwrap();
    let first = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let tls = dir.path().join("server/tls");
    fs::remove_file(tls.join("server-ca.crt")).unwrap();
    fs::remove_file(tls.join("server-ca.key")).unwrap();
    let second = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    assert_ne!(first.ca_pem(), second.ca_pem());
    assert!(signed_by(
        &cert_der_of(second.serving_cert_pem()),
        &cert_der_of(second.ca_pem())
    ));
    assert_eq!(first.node_token_secret(), second.node_token_secret());
    assert!(
        second
            .node_token()
            .starts_with(&format!("K10{}::", ca_hash_hex(second.ca_pem())))
    );
    // The client CA did not change, so neither did the admin certificate.
    assert_eq!(first.admin_client_cert(), second.admin_client_cert());
}

#[test]
fn corrupt_key_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let key = dir.path().join("server/tls/client-admin.key");
    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = ClusterPki::load_or_create(dir.path(), &[]).unwrap_err();
    assert!(matches!(err, PkiError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&key.display().to_string()), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn corrupt_ca_certificate_is_reported_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let cert = dir.path().join("server/tls/server-ca.crt");
    fs::write(&cert, "garbage").unwrap();
    let err = ClusterPki::load_or_create(dir.path(), &[]).unwrap_err();
    assert!(
        err.to_string().contains(&cert.display().to_string()),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&cert).unwrap(), "garbage");
}

#[test]
fn ca_certificate_without_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let key = dir.path().join("server/tls/client-ca.key");
    fs::remove_file(&key).unwrap();
    let err = ClusterPki::load_or_create(dir.path(), &[]).unwrap_err();
    assert!(matches!(err, PkiError::Incomplete { .. }), "{err:?}");
    assert!(err.to_string().contains(&key.display().to_string()));
}

#[test]
fn uncreatable_data_dir_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, "").unwrap();
    let err = ClusterPki::load_or_create(&not_a_dir, &[]).unwrap_err();
    let expected = format!("cannot create {}: ", not_a_dir.join("server/tls").display());
    assert!(err.to_string().starts_with(&expected), "{err}");
}

#[test]
fn invalid_extra_san_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err = ClusterPki::load_or_create(dir.path(), &["host:6443".into()]).unwrap_err();
    assert!(matches!(err, PkiError::InvalidSan { .. }), "{err:?}");
}

#[test]
fn san_parsing_normalizes_and_skips_wildcard_addresses() {
    assert_eq!(SanEntry::parse("0.0.0.0").unwrap(), None);
    assert_eq!(SanEntry::parse("::").unwrap(), None);
    assert_eq!(
        SanEntry::parse("[0:0::1]").unwrap(),
        Some(SanEntry::Ip("::1".parse().unwrap()))
    );
    assert_eq!(
        SanEntry::parse(" Node-1.Example ").unwrap(),
        Some(SanEntry::Dns("node-1.example".into()))
    );
    assert!(SanEntry::parse("bad/name").is_err());
    assert!(SanEntry::parse("bücher.example").is_err());
}

#[test]
fn kubeconfig_has_what_kubectl_needs() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let path = dir.path().join("kube/config.yaml");
    pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    let yaml = fs::read_to_string(&path).unwrap();
    assert_eq!(yaml, pki.kubeconfig_yaml("https://127.0.0.1:6443"));

    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let decode = |v: &serde_yaml::Value| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(doc["apiVersion"].as_str(), Some("v1"));
    assert_eq!(doc["kind"].as_str(), Some("Config"));
    assert_eq!(doc["current-context"].as_str(), Some("default"));
    let cluster = &doc["clusters"][0];
    assert_eq!(cluster["name"].as_str(), Some("default"));
    assert_eq!(
        cluster["cluster"]["server"].as_str(),
        Some("https://127.0.0.1:6443")
    );
    assert_eq!(
        decode(&cluster["cluster"]["certificate-authority-data"]),
        pki.ca_pem()
    );
    let user = &doc["users"][0];
    assert_eq!(user["name"].as_str(), Some("default"));
    let cert_pem = decode(&user["user"]["client-certificate-data"]);
    let key_pem = decode(&user["user"]["client-key-data"]);
    assert_eq!(
        identity_from_cert(&cert_der_of(&cert_pem)),
        Some((ADMIN_USER.to_string(), vec![ADMIN_GROUP.to_string()]))
    );
    let key = KeyPair::from_pem(&key_pem).unwrap();
    assert_eq!(
        cert_facts(&cert_der_of(&cert_pem)).unwrap().public_key,
        key.public_key_raw()
    );
    let context = &doc["contexts"][0];
    assert_eq!(context["name"].as_str(), Some("default"));
    assert_eq!(context["context"]["cluster"].as_str(), Some("default"));
    assert_eq!(context["context"]["user"].as_str(), Some("default"));
}

#[test]
fn issued_node_certificate_carries_the_node_identity() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let (cert, key) = pki
        .issue_client_cert("system:node:worker-1", &["system:nodes"], 30)
        .unwrap();
    let der = cert_der_of(&cert);
    assert_eq!(
        identity_from_cert(&der),
        Some((
            "system:node:worker-1".to_string(),
            vec!["system:nodes".to_string()]
        ))
    );
    assert!(signed_by(&der, &cert_der_of(pki.client_ca_pem())));
    assert!(!signed_by(&der, &cert_der_of(pki.ca_pem())));
    let facts = cert_facts(&der).unwrap();
    assert!(facts.not_after_unix <= unix_now() + 30 * 86_400 + 60);
    assert_eq!(
        facts.public_key,
        KeyPair::from_pem(&key).unwrap().public_key_raw()
    );

    assert!(matches!(
        pki.issue_client_cert("", &[], 30),
        Err(PkiError::InvalidRequest(_))
    ));
    assert!(matches!(
        pki.issue_client_cert("x", &[], 0),
        Err(PkiError::InvalidRequest(_))
    ));
}

#[test]
fn identity_from_garbage_is_none() {
    assert_eq!(identity_from_cert(b"not a certificate"), None);
}

/// What the server saw of an accepted connection.
struct ServerView {
    /// The verified client certificate, or `None` for an anonymous client.
    peer_cert: Option<Vec<u8>>,
    alpn: Option<Vec<u8>>,
}

/// What each side of a handshake observed.
struct HandshakeOutcome {
    server: Result<ServerView, String>,
    /// What the client read back from the server.
    client: Result<Vec<u8>, String>,
}

async fn handshake(
    pki: &ClusterPki,
    trusted_ca_pem: &str,
    client_cert: Option<(String, String)>,
    server_name: &str,
) -> HandshakeOutcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(pki.server_config().unwrap());

    let server = async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let peer = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.to_vec());
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(ServerView {
            peer_cert: peer,
            alpn,
        })
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(trusted_ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(server_name.to_string()).unwrap();

    let client = async move {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut received = Vec::new();
        tls.read_to_end(&mut received)
            .await
            .map_err(|e| e.to_string())?;
        Ok(received)
    };

    let (server, client) = tokio::join!(server, client);
    HandshakeOutcome { server, client }
}

#[tokio::test]
async fn admin_certificate_authenticates_as_system_admin() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let (cert, key) = pki.admin_client_cert();
    let outcome = handshake(
        &pki,
        pki.ca_pem(),
        Some((cert.to_string(), key.to_string())),
        "127.0.0.1",
    )
    .await;
    assert_eq!(outcome.client.unwrap(), b"ok");
    let view = outcome.server.unwrap();
    assert_eq!(view.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(
        identity_from_cert(&view.peer_cert.expect("server saw the client certificate")),
        Some((ADMIN_USER.to_string(), vec![ADMIN_GROUP.to_string()]))
    );
}

#[tokio::test]
async fn anonymous_client_completes_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let outcome = handshake(&pki, pki.ca_pem(), None, "kubernetes.default.svc").await;
    assert_eq!(outcome.client.unwrap(), b"ok");
    assert_eq!(outcome.server.unwrap().peer_cert, None);
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let other = ClusterPki::load_or_create(other_dir.path(), &[]).unwrap();
    let foreign = other
        .issue_client_cert(ADMIN_USER, &[ADMIN_GROUP], 1)
        .unwrap();
    let outcome = handshake(&pki, pki.ca_pem(), Some(foreign), "localhost").await;
    assert!(outcome.server.is_err());
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn server_name_outside_the_sans_is_refused_by_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let outcome = handshake(&pki, pki.ca_pem(), None, "not-a-san.example").await;
    let error = outcome.client.unwrap_err();
    assert!(error.contains("not valid for name"), "{error}");
}

#[test]
fn issued_kubelet_serving_certificate_has_the_node_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let addresses = vec!["10.0.0.5".to_string(), "n1".to_string(), "::1".to_string()];
    let (cert, key) = pki
        .issue_serving_cert("system:node:n1", &addresses, 30)
        .unwrap();
    let der = cert_der_of(&cert);
    assert!(signed_by(&der, &cert_der_of(pki.ca_pem())));
    let facts = cert_facts(&der).unwrap();
    assert_eq!(facts.common_name.as_deref(), Some("system:node:n1"));
    assert_eq!(
        facts.sans,
        vec![
            SanEntry::Ip("10.0.0.5".parse().unwrap()),
            SanEntry::Dns("n1".into()),
            SanEntry::Ip("::1".parse().unwrap()),
        ]
    );
    assert_eq!(
        facts.public_key,
        KeyPair::from_pem(&key).unwrap().public_key_raw()
    );
    assert!(pki.issue_serving_cert("x", &[], 30).is_err());
    assert!(
        pki.issue_serving_cert("x", &["bad name!".into()], 30)
            .is_err()
    );
}

#[test]
fn kubelet_client_certificate_is_stored_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let (cert, _) = pki.kubelet_client_cert();
    let der = cert_der_of(cert);
    assert_eq!(
        identity_from_cert(&der),
        Some((
            KUBELET_CLIENT_CN.to_string(),
            vec!["system:masters".to_string()]
        ))
    );
    assert!(signed_by(&der, &cert_der_of(pki.client_ca_pem())));
    let tls = dir.path().join("server/tls");
    assert_eq!(mode(&tls.join("client-kube-apiserver-kubelet.key")), 0o600);
    let again = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    assert_eq!(again.kubelet_client_cert().0, cert);
}
