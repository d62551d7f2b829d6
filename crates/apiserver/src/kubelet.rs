//! The API server's side of nodes: the join endpoints (`/cacerts`,
//! `/v1-timonel/node-credentials`) and the proxy of `pods/log`, `pods/exec`, `pods/attach`
//! and `pods/portforward` to the kubelet of the pod's node.
//!
//! Join contract (k3s-like):
//! - `GET /cacerts`, no credentials → `text/plain` PEM of the server CA. A join token is
//!   `K10<sha256 hex of exactly that PEM>::server:<secret>`, so a joining node verifies what it
//!   downloaded before trusting it.
//! - `POST /v1-timonel/node-credentials`, `Authorization: Bearer <join token or its secret>`,
//!   body `{"nodeName":"n1","addresses":["10.0.0.5","n1"]}` → 200
//!   `{"clientCertificate","clientKey","servingCertificate","servingKey","serverCA","clientCA"}`
//!   (PEM strings). The client certificate is `system:node:<nodeName>` in `system:nodes`; the
//!   serving certificate is signed by the server CA for the addresses (IPs as IP SANs, names
//!   as DNS SANs; the node name when none are given); `clientCA` is what the kubelet verifies
//!   the API server's client certificate with.
//!
//! Proxy: the pod must exist and be bound; the container is validated as upstream does; the
//! node's address is its InternalIP (else Hostname) and port
//! `status.daemonEndpoints.kubeletEndpoint.Port` (default 10250). The API server connects
//! with TLS, verifying the kubelet against the server CA and presenting the
//! `kube-apiserver-kubelet-client` certificate, forwards the request with the kubelet's path
//! and query, and splices upgraded connections both ways.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use timonel_api::status::{ApiError, Cause, Resource};
use timonel_pki::ClusterPki;

use crate::request::Query;
use crate::server::{Body, State, error_response};

/// Certificates issued to joining nodes are valid this long.
const NODE_CERT_DAYS: u32 = 365;
/// Join requests are small JSON documents.
const MAX_JOIN_BODY: usize = 64 * 1024;
/// kubelet's default port.
const DEFAULT_KUBELET_PORT: u16 = 10250;

/// What the server needs to admit nodes and reach kubelets.
pub struct KubeletAccess {
    pki: ClusterPki,
    client_tls: Arc<rustls::ClientConfig>,
}

impl KubeletAccess {
    /// Builds the kubelet client TLS configuration from the cluster PKI.
    pub fn new(pki: ClusterPki) -> anyhow::Result<KubeletAccess> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pki.ca_pem().as_bytes()) {
            roots.add(cert?)?;
        }
        let (cert_pem, key_pem) = pki.kubelet_client_cert();
        let chain =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletAccess {
            pki,
            client_tls: Arc::new(config),
        })
    }

    pub fn pki(&self) -> &ClusterPki {
        &self.pki
    }
}

fn text_response(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `GET /cacerts`.
pub fn cacerts(access: &KubeletAccess) -> Response<Body> {
    text_response(
        StatusCode::OK,
        "text/plain",
        access.pki.ca_pem().to_string(),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `authorization` carries the join token (whole, or just its secret).
fn join_token_ok(access: &KubeletAccess, authorization: Option<&str>) -> bool {
    let Some(token) = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return false;
    };
    let expected = access.pki.node_token_secret();
    if expected.is_empty() {
        return false;
    }
    let presented = match token.split_once("::") {
        Some(_) => {
            // A whole token must also name this CA.
            let full = access.pki.node_token();
            if !constant_time_eq(token.as_bytes(), full.as_bytes()) {
                return false;
            }
            expected
        }
        None => token,
    };
    constant_time_eq(presented.as_bytes(), expected.as_bytes())
}

fn invalid_field(field: &str, message: String) -> ApiError {
    ApiError::bad_request(format!("{field}: Invalid value: {message}")).with_causes(vec![Cause {
        reason: "FieldValueInvalid".into(),
        message,
        field: field.into(),
    }])
}

/// `POST /v1-timonel/node-credentials`.
pub async fn node_credentials<B>(
    access: &KubeletAccess,
    authorization: Option<&str>,
    body: B,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !join_token_ok(access, authorization) {
        return error_response(&ApiError::unauthorized());
    }
    let body = match Limited::new(body, MAX_JOIN_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return error_response(&ApiError::too_large(MAX_JOIN_BODY)),
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error_response(&ApiError::bad_request(
                "the request body must be a JSON object {\"nodeName\":…,\"addresses\":[…]}",
            ));
        }
    };
    let name = request["nodeName"].as_str().unwrap_or_default().to_string();
    let problems = timonel_api::validation::names::is_dns1123_subdomain(&name);
    if name.is_empty() || !problems.is_empty() {
        let why = if name.is_empty() {
            "Required value".to_string()
        } else {
            problems.join("; ")
        };
        return error_response(&invalid_field("nodeName", format!("{name:?}: {why}")));
    }
    let mut addresses = Vec::new();
    match &request["addresses"] {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(a) if !a.trim().is_empty() => addresses.push(a.trim().to_string()),
                    _ => {
                        return error_response(&invalid_field(
                            &format!("addresses[{i}]"),
                            format!("{item}: must be an IP address or a DNS name"),
                        ));
                    }
                }
            }
        }
        other => {
            return error_response(&invalid_field(
                "addresses",
                format!("{other}: must be a list of strings"),
            ));
        }
    }
    if addresses.is_empty() {
        addresses.push(name.clone());
    }
    let identity = format!("system:node:{name}");
    let client = access
        .pki
        .issue_client_cert(&identity, &["system:nodes"], NODE_CERT_DAYS);
    let serving = access
        .pki
        .issue_serving_cert(&identity, &addresses, NODE_CERT_DAYS);
    let ((client_cert, client_key), (serving_cert, serving_key)) = match (client, serving) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(e), _) => return error_response(&ApiError::internal(e.to_string())),
        (_, Err(timonel_pki::PkiError::InvalidSan { name, reason })) => {
            return error_response(&invalid_field("addresses", format!("{name:?}: {reason}")));
        }
        (_, Err(e)) => return error_response(&ApiError::bad_request(e.to_string())),
    };
    let reply = json!({
        "clientCertificate": client_cert,
        "clientKey": client_key,
        "servingCertificate": serving_cert,
        "servingKey": serving_key,
        "serverCA": access.pki.ca_pem(),
        "clientCA": access.pki.client_ca_pem(),
    });
    text_response(StatusCode::OK, "application/json", reply.to_string())
}

/// `(namespace, pod, subresource)` of a streaming pod subresource path.
pub fn streaming_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let mut parts = rest.split('/');
    let ns = parts.next()?;
    if parts.next()? != "pods" {
        return None;
    }
    let pod = parts.next()?;
    let sub = parts.next()?;
    if parts.next().is_some() || ns.is_empty() || pod.is_empty() {
        return None;
    }
    matches!(sub, "log" | "exec" | "attach" | "portforward").then_some((ns, pod, sub))
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request is for, validated as upstream's `LogLocation` (logs) and
/// `streamLocation` (exec, attach) do.
fn pick_container(
    pod: &Value,
    name: &str,
    requested: &str,
    logs: bool,
) -> Result<String, ApiError> {
    let spec = &pod["spec"];
    let containers = names(&spec["containers"]);
    let init = names(&spec["initContainers"]);
    let ephemeral = names(&spec["ephemeralContainers"]);
    if requested.is_empty() {
        return match containers.len() {
            1 => Ok(containers[0].clone()),
            0 => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            _ if logs => {
                let mut message = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                );
                if !init.is_empty() {
                    message.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(ApiError::bad_request(message))
            }
            _ => {
                let all: Vec<String> = containers
                    .iter()
                    .chain(&init)
                    .chain(&ephemeral)
                    .cloned()
                    .collect();
                Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all.join(" ")
                )))
            }
        };
    }
    if containers
        .iter()
        .chain(&init)
        .chain(&ephemeral)
        .any(|c| c == requested)
    {
        Ok(requested.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "container {requested} is not valid for pod {name}"
        )))
    }
}

/// The kubelet's host and port for `node`.
fn kubelet_location(node: &Value) -> Option<(String, u16)> {
    let addresses = node["status"]["addresses"].as_array()?;
    let find = |kind: &str| {
        addresses
            .iter()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    };
    let host = find("InternalIP").or_else(|| find("Hostname"))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| (1..=65535).contains(p))
        .map_or(DEFAULT_KUBELET_PORT, |p| p as u16);
    Some((host, port))
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The kubelet path and query for a subresource request.
fn kubelet_target(ns: &str, pod: &str, sub: &str, container: &str, query: &Query) -> String {
    let mut params: Vec<String> = Vec::new();
    let path = match sub {
        "log" => {
            for key in [
                "follow",
                "previous",
                "timestamps",
                "sinceSeconds",
                "sinceTime",
                "tailLines",
                "limitBytes",
                "stream",
            ] {
                if let Some(v) = query.get(key) {
                    params.push(format!("{key}={}", encode(v)));
                }
            }
            format!("/containerLogs/{ns}/{pod}/{container}")
        }
        "exec" | "attach" => {
            for command in query.all("command") {
                params.push(format!("command={}", encode(command)));
            }
            for (ours, theirs) in [
                ("stdin", "input"),
                ("stdout", "output"),
                ("stderr", "error"),
                ("tty", "tty"),
            ] {
                if query.flag(ours) {
                    params.push(format!("{theirs}=1"));
                }
            }
            format!("/{sub}/{ns}/{pod}/{container}")
        }
        _ => {
            for port in query.all("ports") {
                params.push(format!("port={}", encode(port)));
            }
            format!("/portForward/{ns}/{pod}")
        }
    };
    if params.is_empty() {
        path
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// Proxies a streaming pod subresource to the pod's kubelet.
pub async fn proxy(
    state: &Arc<State>,
    parts: hyper::http::request::Parts,
    on_upgrade: Option<OnUpgrade>,
    ns: &str,
    pod_name: &str,
    sub: &str,
) -> Response<Body> {
    match proxy_inner(state, parts, on_upgrade, ns, pod_name, sub).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

async fn proxy_inner(
    state: &Arc<State>,
    parts: hyper::http::request::Parts,
    on_upgrade: Option<OnUpgrade>,
    ns: &str,
    pod_name: &str,
    sub: &str,
) -> Result<Response<Body>, ApiError> {
    let allowed = match sub {
        "log" => parts.method == Method::GET,
        _ => parts.method == Method::GET || parts.method == Method::POST,
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(format!(
            "method {} is not allowed here",
            parts.method
        )));
    }
    let Some(access) = state.kubelet.get() else {
        return Err(ApiError::service_unavailable(
            "the server cannot reach kubelets (no kubelet client certificate)",
        ));
    };
    let query = Query::parse(parts.uri.query());
    let pods = Resource {
        group: "",
        plural: "pods",
    };
    let pod = state
        .cache
        .get(&format!("/registry/core/pods/{ns}/{pod_name}"))
        .ok_or_else(|| ApiError::not_found(pods, pod_name))?
        .value();
    let container = if sub == "portforward" {
        String::new()
    } else {
        pick_container(
            &pod,
            pod_name,
            query.get("container").unwrap_or_default(),
            sub == "log",
        )?
    };
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {pod_name} does not have a host assigned"
        )));
    }
    let target = kubelet_target(ns, pod_name, sub, &container, &query);
    forward(state, access, parts, on_upgrade, node_name, &target).await
}

/// `(node, path)` of a node proxy request, `/api/v1/nodes/{node}/proxy{/path}`.
pub fn node_proxy_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/nodes/")?;
    let (node, rest) = rest.split_once('/')?;
    let sub = rest.strip_prefix("proxy")?;
    (!node.is_empty() && (sub.is_empty() || sub.starts_with('/'))).then_some((node, sub))
}

/// Proxies `nodes/{node}/proxy/{path}` to the node's kubelet (`kubectl get --raw
/// /api/v1/nodes/N/proxy/stats/summary`), as upstream's node proxy does.
pub async fn proxy_node(
    state: &Arc<State>,
    parts: hyper::http::request::Parts,
    on_upgrade: Option<OnUpgrade>,
    node_name: &str,
    path: &str,
) -> Response<Body> {
    let Some(access) = state.kubelet.get() else {
        return error_response(&ApiError::service_unavailable(
            "the server cannot reach kubelets (no kubelet client certificate)",
        ));
    };
    let mut target = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    if let Some(query) = parts.uri.query() {
        target.push('?');
        target.push_str(query);
    }
    match forward(state, access, parts, on_upgrade, node_name, &target).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

/// Sends the request to `target` on the kubelet of `node_name` and streams (or splices, for
/// an upgrade) the answer back.
async fn forward(
    state: &Arc<State>,
    access: &KubeletAccess,
    parts: hyper::http::request::Parts,
    on_upgrade: Option<OnUpgrade>,
    node_name: &str,
    target: &str,
) -> Result<Response<Body>, ApiError> {
    let node = state
        .cache
        .get(&format!("/registry/core/nodes/{node_name}"))
        .ok_or_else(|| {
            ApiError::not_found(
                Resource {
                    group: "",
                    plural: "nodes",
                },
                node_name,
            )
        })?
        .value();
    let (host, port) = kubelet_location(&node).ok_or_else(|| {
        ApiError::internal(format!(
            "node {node_name} has no address to reach its kubelet"
        ))
    })?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let upgrade = parts.headers.contains_key(hyper::header::UPGRADE);
    let dial_error = |e: &dyn std::fmt::Display| {
        if upgrade {
            ApiError::internal(format!("error dialing backend: {e}"))
        } else {
            ApiError::internal(format!("Get \"https://{authority}{target}\": {e}"))
        }
    };
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| dial_error(&format!("dial tcp {authority}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|e| dial_error(&format!("invalid kubelet host {host:?}: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(access.client_tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| dial_error(&format!("tls: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| dial_error(&e))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut builder = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(target);
    for (name, value) in &parts.headers {
        let skip = name == HOST
            || name == hyper::header::AUTHORIZATION
            || name == hyper::header::CONTENT_LENGTH
            || name.as_str().starts_with("impersonate-");
        if !skip {
            builder = builder.header(name, value);
        }
    }
    builder = builder.header(HOST, authority.as_str());
    let request = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| dial_error(&e))?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = on_upgrade else {
            return Err(ApiError::internal(
                "the client connection cannot be upgraded",
            ));
        };
        let kubelet_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(client), Ok(kubelet)) = (client_upgrade.await, kubelet_upgrade.await) else {
                return;
            };
            let mut client = TokioIo::new(client);
            let mut kubelet = TokioIo::new(kubelet);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
        });
        let (head, _) = response.into_parts();
        return Ok(Response::from_parts(
            head,
            Empty::new().map_err(|e| match e {}).boxed(),
        ));
    }
    let (head, body) = response.into_parts();
    // Streamed as it arrives (`logs -f`); a broken kubelet connection ends the body.
    let frames = http_body_util::BodyStream::new(body)
        .take_while(|f| futures::future::ready(f.is_ok()))
        .filter_map(|f| {
            futures::future::ready(
                f.ok()
                    .and_then(|f| f.into_data().ok())
                    .map(|d| Ok::<_, Infallible>(hyper::body::Frame::data(d))),
            )
        });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    *resp.status_mut() = head.status;
    if let Some(ct) = head.headers.get(CONTENT_TYPE) {
        resp.headers_mut().insert(CONTENT_TYPE, ct.clone());
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_proxy_paths() {
        assert_eq!(
            node_proxy_path("/api/v1/nodes/n1/proxy/stats/summary"),
            Some(("n1", "/stats/summary"))
        );
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/proxy"), Some(("n1", "")));
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/status"), None);
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/proxyx"), None);
    }

    #[test]
    fn streaming_paths() {
        assert_eq!(
            streaming_path("/api/v1/namespaces/d/pods/p/exec"),
            Some(("d", "p", "exec"))
        );
        assert_eq!(streaming_path("/api/v1/namespaces/d/pods/p/status"), None);
        assert_eq!(streaming_path("/api/v1/namespaces/d/pods/p"), None);
    }

    #[test]
    fn container_choice_follows_upstream_messages() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}]}});
        let err = pick_container(&pod, "p", "", true).unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        let err = pick_container(&pod, "p", "", false).unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b i]"
        );
        assert_eq!(pick_container(&pod, "p", "i", false).unwrap(), "i");
        let err = pick_container(&pod, "p", "x", true).unwrap_err();
        assert_eq!(err.message, "container x is not valid for pod p");
        let single = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(pick_container(&single, "p", "", true).unwrap(), "only");
    }

    #[test]
    fn kubelet_query_translation() {
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo%20hi&container=c&stdin=true&stdout=true&tty=true",
        ));
        assert_eq!(
            kubelet_target("d", "p", "exec", "c", &q),
            "/exec/d/p/c?command=sh&command=%2Dc&command=echo%20hi&input=1&output=1&tty=1"
        );
        let q = Query::parse(Some("follow=true&tailLines=3"));
        assert_eq!(
            kubelet_target("d", "p", "log", "c", &q),
            "/containerLogs/d/p/c?follow=true&tailLines=3"
        );
    }
}
