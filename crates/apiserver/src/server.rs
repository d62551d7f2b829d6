//! Server state, request dispatch and the HTTPS listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use timonel_api::registry::{Registry, ResourceInfo};
use timonel_api::status::ApiError;
use timonel_store::{Revision, Store};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsAcceptor;

use crate::body::MAX_BODY_BYTES;
use crate::cache::Cache;
use crate::request::{Query, parse_resource_path, verb_for};
use crate::{discovery, rest};

pub type Body = BoxBody<Bytes, Infallible>;

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// What a handler answers.
pub enum Reply {
    Json {
        status: StatusCode,
        body: Value,
        content_type: &'static str,
        warnings: Vec<String>,
    },
    /// Pre-serialized JSON (objects spliced from the watch cache).
    Raw { status: StatusCode, body: Bytes },
    Stream {
        status: StatusCode,
        rx: mpsc::Receiver<Bytes>,
    },
}

impl Reply {
    pub fn json(status: StatusCode, body: Value) -> Reply {
        let content_type = if body["kind"] == "Table" {
            "application/json;as=Table;v=v1;g=meta.k8s.io"
        } else {
            "application/json"
        };
        Reply::Json {
            status,
            body,
            content_type,
            warnings: Vec::new(),
        }
    }

    pub fn typed(status: StatusCode, body: Value, content_type: &'static str) -> Reply {
        Reply::Json {
            status,
            body,
            content_type,
            warnings: Vec::new(),
        }
    }

    pub fn stream(status: StatusCode, rx: mpsc::Receiver<Bytes>) -> Reply {
        Reply::Stream { status, rx }
    }

    pub fn with_warnings(mut self, extra: Vec<String>) -> Reply {
        if let Reply::Json { warnings, .. } = &mut self {
            warnings.extend(extra);
        }
        self
    }

    fn into_response(self) -> Response<Body> {
        match self {
            Reply::Json {
                status,
                body,
                content_type,
                warnings,
            } => {
                let bytes = serde_json::to_vec(&body).expect("JSON serializes");
                let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed());
                *resp.status_mut() = status;
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                for w in warnings {
                    let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
                    if let Ok(v) = HeaderValue::from_str(&text) {
                        resp.headers_mut().append("Warning", v);
                    }
                }
                resp
            }
            Reply::Raw { status, body } => {
                let mut resp = Response::new(Full::new(body).boxed());
                *resp.status_mut() = status;
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
            Reply::Stream { status, rx } => {
                let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
                    .map(|b| Ok::<_, Infallible>(Frame::data(b)));
                let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
                *resp.status_mut() = status;
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/json;stream=watch"),
                );
                resp.headers_mut()
                    .insert("Transfer-Encoding", HeaderValue::from_static("chunked"));
                resp
            }
        }
    }
}

pub fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = Reply::json(
        StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        err.to_status(),
    )
    .into_response();
    // Upstream sends Retry-After only for a positive delay (clients retry at once on 0).
    if let Some(seconds) = err.retry_after_seconds.filter(|s| *s > 0) {
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from(seconds));
    }
    resp
}

/// Credentials the server accepts.
pub struct Authenticator {
    /// Static bearer tokens → user.
    pub tokens: Vec<(String, User)>,
}

impl Authenticator {
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<User> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.tokens
            .iter()
            .find(|(t, _)| constant_time_eq(t.as_bytes(), token.as_bytes()))
            .map(|(_, u)| u.clone())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub struct State {
    pub registry: Registry,
    pub store: Arc<dyn Store>,
    pub cache: Arc<Cache>,
    pub ready: AtomicBool,
    pub authenticator: Authenticator,
    /// Serializes ClusterIP / NodePort allocation.
    pub allocation_lock: Mutex<()>,
    /// OpenAPI v3 group-version documents by "group/version", with the hash they were built for.
    pub openapi_cache: std::sync::Mutex<std::collections::HashMap<String, (String, Arc<Value>)>>,
    /// Settings of the admission plugins.
    pub admission: crate::admission::AdmissionOptions,
    /// Node join and kubelet proxy credentials; set once at start (absent in tests that do
    /// not need nodes).
    pub kubelet: std::sync::OnceLock<Arc<crate::kubelet::KubeletAccess>>,
    /// Signs and checks service account tokens; set once at start (absent in tests that do
    /// not need them, where TokenRequest answers 404).
    pub token_signer: std::sync::OnceLock<Arc<crate::tokens::TokenSigner>>,
}

impl State {
    pub async fn new(
        store: Arc<dyn Store>,
        authenticator: Authenticator,
    ) -> anyhow::Result<Arc<State>> {
        Self::with_admission(store, authenticator, Default::default()).await
    }

    pub async fn with_admission(
        store: Arc<dyn Store>,
        authenticator: Authenticator,
        admission: crate::admission::AdmissionOptions,
    ) -> anyhow::Result<Arc<State>> {
        let cache = Cache::start(store.clone()).await?;
        let state = Arc::new(State {
            registry: Registry::new(),
            store,
            cache,
            ready: AtomicBool::new(false),
            authenticator,
            allocation_lock: Mutex::new(()),
            openapi_cache: Default::default(),
            admission,
            kubelet: std::sync::OnceLock::new(),
            token_signer: std::sync::OnceLock::new(),
        });
        crate::admission::load_crds(&state);
        Ok(state)
    }

    pub async fn store_revision(&self) -> Revision {
        self.store.current_revision().await.unwrap_or(0)
    }

    /// An object as this version of its resource presents it.
    pub fn convert_out(&self, info: &ResourceInfo, obj: &Value) -> Value {
        let mut obj = obj.clone();
        let api_version = info.api_version();
        if obj["apiVersion"] != json!(api_version) {
            obj["apiVersion"] = json!(api_version);
            obj["kind"] = json!(info.kind);
        }
        obj
    }

    /// A cached object's JSON as this version of its resource presents it; the stored bytes
    /// as they are when the versions agree (the common case: no parsing at all).
    pub fn raw_out(&self, info: &ResourceInfo, obj: &crate::cache::CachedObject) -> Bytes {
        if *obj.api_version == info.api_version() {
            return obj.raw.clone();
        }
        let converted = self.convert_out(info, &obj.value());
        Bytes::from(serde_json::to_vec(&converted).expect("JSON serializes"))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Serves one HTTP request.
pub async fn handle<B>(
    state: Arc<State>,
    cert_user: Option<User>,
    req: hyper::Request<B>,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (mut parts, incoming) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());

    // Health and version answer without credentials, as upstream's default RBAC allows.
    match path.as_str() {
        "/livez" | "/healthz" | "/livez/ping" | "/healthz/ping" => {
            return text(StatusCode::OK, "ok");
        }
        "/readyz" | "/readyz/ping" => {
            return if state.is_ready() {
                text(StatusCode::OK, "ok")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "[-]store not ready\nreadyz check failed",
                )
            };
        }
        "/version" => return Reply::json(StatusCode::OK, discovery::version()).into_response(),
        // Node join: the CA is public (the join token pins its hash) and the credentials
        // endpoint authenticates with the join token itself.
        "/cacerts" if parts.method == Method::GET => {
            if let Some(access) = state.kubelet.get() {
                return crate::kubelet::cacerts(access);
            }
        }
        "/v1-timonel/node-credentials" if parts.method == Method::POST => {
            if let Some(access) = state.kubelet.get() {
                return crate::kubelet::node_credentials(access, header("authorization"), incoming)
                    .await;
            }
        }
        _ => {}
    }
    let user = cert_user
        .or_else(|| state.authenticator.authenticate(header("authorization")))
        .or_else(|| crate::tokens::authenticate(&state, header("authorization")));
    let Some(user) = user else {
        return error_response(&ApiError::unauthorized());
    };
    // Streaming subresources go to the kubelet before any body is read: they are upgrades or
    // long-lived responses.
    if let Some((ns, pod, sub)) = crate::kubelet::streaming_path(&path) {
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let (ns, pod, sub) = (ns.to_string(), pod.to_string(), sub.to_string());
        return crate::kubelet::proxy(&state, parts, on_upgrade, &ns, &pod, &sub).await;
    }
    if let Some((node, rest)) = crate::kubelet::node_proxy_path(&path) {
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let (node, rest) = (node.to_string(), rest.to_string());
        return crate::kubelet::proxy_node(&state, parts, on_upgrade, &node, &rest).await;
    }
    let body = match Limited::new(incoming, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error_response(&ApiError::too_large(MAX_BODY_BYTES)),
    };
    let accept = header("accept");
    let result = if let Some(reply) = discovery::handle(&state, &parts.method, &path, accept) {
        reply
    } else if let Some(resource_path) = parse_resource_path(&path) {
        match verb_for(&parts.method, &resource_path, &query) {
            None => Err(ApiError::method_not_allowed(format!(
                "method {} is not allowed here",
                parts.method
            ))),
            Some(verb) => match resolve(&state, &resource_path) {
                Err(err) => Err(err),
                Ok(info) => {
                    let request = rest::Request {
                        info,
                        path: &resource_path,
                        query: &query,
                        user: &user,
                        content_type: header("content-type"),
                        accept,
                        user_agent: header("user-agent"),
                        body: &body,
                    };
                    rest::handle(&state, request, verb).await
                }
            },
        }
    } else {
        Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ))
    };
    let response = match result {
        Ok(reply) => reply.into_response(),
        Err(err) => error_response(&err),
    };
    if parts.method == Method::HEAD {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Full::new(Bytes::new()).boxed());
    }
    response
}

fn resolve(
    state: &State,
    path: &crate::request::ResourcePath,
) -> Result<Arc<ResourceInfo>, ApiError> {
    state
        .registry
        .lookup(&path.group, &path.version, &path.resource)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Accepts TLS connections and serves HTTP/1.1 on each until the listener is dropped.
pub async fn serve_tls(
    state: Arc<State>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    identify: fn(&[u8]) -> Option<User>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, _peer): (_, SocketAddr) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!("accept failed: {err}");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let cert_user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| identify(cert.as_ref()));
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let cert_user = cert_user.clone();
                async move { Ok::<_, Infallible>(handle(state, cert_user, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service)
                .with_upgrades()
                .await;
        });
    }
}
