//! Node join (`/cacerts`, `/v1-timonel/node-credentials`) and the validation in front of the
//! kubelet proxy (`pods/log|exec|attach|portforward`), in process.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use serde_json::{Value, json};
use sha2::Digest;
use timonel_apiserver::State;
use timonel_apiserver::kubelet::KubeletAccess;
use timonel_apiserver::server::handle;

mod support;
use support::{TOKEN, state};

async fn with_pki() -> (Arc<State>, timonel_pki::ClusterPki, tempfile::TempDir) {
    let s = state().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = timonel_pki::ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let _ = s
        .kubelet
        .set(Arc::new(KubeletAccess::new(pki.clone()).unwrap()));
    (s, pki, dir)
}

async fn call(
    s: &Arc<State>,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, String) {
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let content_type = if method == Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = handle(
        s.clone(),
        None,
        req.body(Full::new(Bytes::from(bytes))).unwrap(),
    )
    .await;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn subject(pem: &str) -> (String, Vec<String>, Vec<String>) {
    let der = rustls_pki_types::CertificateDer::from_pem_slice_compat(pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let orgs = cert
        .subject()
        .iter_organization()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    sans.push(format!("DNS:{dns}"))
                }
                x509_parser::extensions::GeneralName::IPAddress(ip) if ip.len() == 4 => {
                    let octets: [u8; 4] = (*ip).try_into().unwrap();
                    sans.push(format!("IP:{}", std::net::Ipv4Addr::from(octets)));
                }
                other => sans.push(format!("{other:?}")),
            }
        }
    }
    (cn, orgs, sans)
}

trait PemCompat {
    fn from_pem_slice_compat(pem: &str) -> Vec<u8>;
}

impl PemCompat for rustls_pki_types::CertificateDer<'_> {
    fn from_pem_slice_compat(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}

#[tokio::test]
async fn cacerts_is_public_and_matches_the_join_token_hash() {
    let (s, pki, _dir) = with_pki().await;
    let (code, content_type, body) = call(&s, Method::GET, "/cacerts", None, None).await;
    assert_eq!(code, 200);
    assert!(content_type.starts_with("text/plain"));
    assert_eq!(body, pki.ca_pem());
    let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    assert!(pki.node_token().starts_with(&format!("K10{hash}::server:")));
}

#[tokio::test]
async fn join_issues_node_credentials() {
    let (s, pki, _dir) = with_pki().await;
    let request = json!({"nodeName": "n1", "addresses": ["10.0.0.5", "n1"]});
    for token in [pki.node_token(), pki.node_token_secret()] {
        let (code, _, body) = call(
            &s,
            Method::POST,
            "/v1-timonel/node-credentials",
            Some(token),
            Some(request.clone()),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["serverCA"], pki.ca_pem());
        assert_eq!(reply["clientCA"], pki.client_ca_pem());
        assert!(reply["clientKey"].as_str().unwrap().contains("PRIVATE KEY"));
        assert!(
            reply["servingKey"]
                .as_str()
                .unwrap()
                .contains("PRIVATE KEY")
        );
        let (cn, orgs, _) = subject(reply["clientCertificate"].as_str().unwrap());
        assert_eq!(cn, "system:node:n1");
        assert_eq!(orgs, vec!["system:nodes"]);
        let (_, _, sans) = subject(reply["servingCertificate"].as_str().unwrap());
        assert_eq!(sans, vec!["IP:10.0.0.5", "DNS:n1"]);
    }
}

#[tokio::test]
async fn join_without_the_token_is_unauthorized() {
    let (s, pki, _dir) = with_pki().await;
    let request = json!({"nodeName": "n1", "addresses": ["10.0.0.5"]});
    let wrong_full = format!("{}x", pki.node_token());
    for token in [None, Some("nope"), Some(TOKEN), Some(wrong_full.as_str())] {
        let (code, _, body) = call(
            &s,
            Method::POST,
            "/v1-timonel/node-credentials",
            token,
            Some(request.clone()),
        )
        .await;
        assert_eq!(code, 401, "{token:?}: {body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["reason"], "Unauthorized");
    }
}

#[tokio::test]
async fn join_with_an_invalid_node_name_is_a_bad_request() {
    let (s, pki, _dir) = with_pki().await;
    for name in ["Not_Valid", ""] {
        let (code, _, body) = call(
            &s,
            Method::POST,
            "/v1-timonel/node-credentials",
            Some(pki.node_token()),
            Some(json!({"nodeName": name, "addresses": ["10.0.0.5"]})),
        )
        .await;
        assert_eq!(code, 400, "{body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["reason"], "BadRequest");
        assert_eq!(status["details"]["causes"][0]["field"], "nodeName");
    }
}

async fn create(s: &Arc<State>, path: &str, body: Value) {
    let (code, _, text) = call(s, Method::POST, path, Some(TOKEN), Some(body)).await;
    assert_eq!(code, 201, "{text}");
}

#[tokio::test]
async fn proxy_validates_pod_container_and_node() {
    let (s, _pki, _dir) = with_pki().await;
    let pods = "/api/v1/namespaces/default/pods";
    let get = |path: String| {
        let s = s.clone();
        async move {
            let (code, _, body) = call(&s, Method::GET, &path, Some(TOKEN), None).await;
            (
                code,
                serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };
    let (code, status) = get(format!("{pods}/missing/log")).await;
    assert_eq!(code, 404);
    assert_eq!(status["message"], "pods \"missing\" not found");

    create(&s, pods, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"},
        "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}})).await;
    let (code, status) = get(format!("{pods}/two/log")).await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "a container name must be specified for pod two, choose one of: [a b]"
    );
    let (code, status) = get(format!("{pods}/two/exec?command=true&container=zz")).await;
    assert_eq!(code, 400);
    assert_eq!(status["message"], "container zz is not valid for pod two");

    create(
        &s,
        pods,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
        "spec": {"containers": [{"name": "a", "image": "x"}]}}),
    )
    .await;
    let (code, status) = get(format!("{pods}/pending/log")).await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "pod pending does not have a host assigned"
    );

    // A node whose kubelet port is closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    create(
        &s,
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
    )
    .await;
    let (code, _, text) = call(
        &s,
        Method::PATCH,
        "/api/v1/nodes/n1/status",
        Some(TOKEN),
        Some(
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
        ),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let (code, status) = get(format!("{pods}/two/log?container=a")).await;
    assert_eq!(code, 500, "{status}");
    assert_eq!(status["reason"], "InternalError");
}
