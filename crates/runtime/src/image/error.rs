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
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
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
