use std::path::PathBuf;

/// Why an image store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("image {reference:?} is in use by {holders:?}")]
    InUse {
        reference: String,
        holders: Vec<String>,
    },
    #[error("image {reference:?} is ambiguous: it matches {count} images")]
    Ambiguous { reference: String, count: usize },
    #[error("unsafe path in layer {layer}: {path:?} {reason}")]
    UnsafePath {
        layer: String,
        path: PathBuf,
        reason: &'static str,
    },
    #[error("invalid image archive: {0}")]
    Format(String),
    /// A configuration file (`registries.yaml`, a docker config) that cannot be used.
    #[error("{file}: {reason}")]
    Config { file: String, reason: String },
    /// A registry pull failed. `message` reads like kubelet's (`failed to pull image "X":
    /// …`), fit for a container's `waiting.message` under reason `ErrImagePull`.
    #[error("{message}")]
    Pull {
        reference: String,
        kind: PullErrorKind,
        message: String,
    },
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Why a pull failed, for callers that react differently (kubelet backs off the same way for
/// all, but a missing image is worth saying so, and unauthorized hints at imagePullSecrets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullErrorKind {
    /// The registry has no such repository, tag or digest (`manifest unknown`).
    NotFound,
    /// The registry refused the credentials (or wants some).
    Unauthorized,
    /// No endpoint could be reached (connection refused, DNS, TLS, timeouts).
    Network,
    /// Anything else: a malformed manifest, no manifest for this platform, a digest mismatch.
    Other,
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Adds a human context to I/O errors: `fs::rename(a, b).ctx(|| format!("rename {a:?}"))`.
pub(crate) trait IoContext<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| ImageError::Io {
            context: context().into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|errno| ImageError::Io {
            context: context().into(),
            source: errno.into(),
        })
    }
}
