//! The node side of Kubernetes' streaming API: what the kubelet serves on its HTTPS port
//! (10250) and the API server proxies `pods/log`, `pods/exec`, `pods/attach` and
//! `pods/portforward` to.
//!
//! - [`cri_log`]: the CRI container log file format (`<RFC3339Nano> <stream> <P|F> <text>`),
//!   a size-rotating synchronous writer and an async reader with kubelet's options.
//! - [`server`]: the HTTPS routes (`/containerLogs`, `/exec`, `/attach`, `/portForward`,
//!   `/healthz`), remote command over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`),
//!   port-forward over SPDY/3.1 (inside WebSocket or a plain `Upgrade: SPDY/3.1`).
//! - [`spdy`]: SPDY/3.1 framing with zlib-compressed header blocks.
//!
//! The node agent plugs its container runtime in through [`NodeBackend`].

pub mod cri_log;
pub mod fake;
pub mod server;
pub mod spdy;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

pub use server::serve;

/// A container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// What an exec or attach asks for; the streams are those the client requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub target: ContainerRef,
    /// Empty for attach.
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A terminal size as kubectl sends it on the resize channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// A running exec (or an attached container process).
///
/// The server closes `stdin` (drops it after `shutdown`) when the client signals EOF, pumps
/// `stdout`/`stderr` until EOF, then awaits `exit` for the status it reports on the error
/// channel.
pub struct ExecProcess {
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// `None` with a TTY (the terminal merges both streams into `stdout`).
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub resize: Option<tokio::sync::mpsc::Sender<TerminalSize>>,
    pub exit: futures::future::BoxFuture<'static, io::Result<i32>>,
}

/// A Status-like failure of the backend, reported to clients as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// HTTP status code, e.g. 404.
    pub code: u16,
    /// The Status reason, e.g. `NotFound`.
    pub reason: String,
    pub message: String,
}

impl BackendError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> BackendError {
        BackendError {
            code,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> BackendError {
        Self::new(404, "NotFound", message)
    }

    pub fn bad_request(message: impl Into<String>) -> BackendError {
        Self::new(400, "BadRequest", message)
    }

    pub fn internal(message: impl Into<String>) -> BackendError {
        Self::new(500, "InternalError", message)
    }

    /// The `metav1.Status` JSON of this error.
    pub fn to_status(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// What the node agent provides to the kubelet server.
#[async_trait::async_trait]
pub trait NodeBackend: Send + Sync + 'static {
    /// Log files of the container (oldest first) and a receiver that turns false when it
    /// stops running (a dropped sender counts as stopped). `previous` asks for the last
    /// terminated instance.
    async fn logs(
        &self,
        target: &ContainerRef,
        previous: bool,
    ) -> Result<(Vec<PathBuf>, tokio::sync::watch::Receiver<bool>), BackendError>;
    async fn exec(&self, req: ExecRequest) -> Result<ExecProcess, BackendError>;
    async fn attach(&self, req: ExecRequest) -> Result<ExecProcess, BackendError>;
    /// kubelet's `/stats/summary` (stats/v1alpha1 `Summary`): node and pod CPU and memory.
    async fn stats_summary(&self) -> Result<serde_json::Value, BackendError> {
        Err(BackendError::not_found("404 page not found"))
    }
    /// A connection to `port` inside the pod's network namespace.
    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, BackendError>;
}

/// Errors building the kubelet TLS configuration.
#[derive(Debug, thiserror::Error)]
#[error("kubelet TLS configuration: {0}")]
pub struct TlsConfigError(String);

/// The kubelet's rustls configuration: its serving certificate, and a REQUIRED client
/// certificate signed by the cluster client CA (the API server presents
/// `kube-apiserver-kubelet-client`); ALPN `http/1.1` only, since the streaming protocols are
/// HTTP/1.1 upgrades.
pub fn kubelet_tls_config(
    serving_cert_pem: &str,
    serving_key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let err = |what: &str, e: &dyn std::fmt::Display| TlsConfigError(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| err("client CA", &e))?;
        roots.add(cert).map_err(|e| err("client CA", &e))?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError("client CA: no certificate".into()));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| err("client verifier", &e))?;
    let chain = CertificateDer::pem_slice_iter(serving_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("serving certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(serving_key_pem.as_bytes())
        .map_err(|e| err("serving key", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("protocol versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| err("serving certificate", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
