//! A revisioned key-value store with etcd's data model.
//!
//! Backends: [`SqliteStore`] (embedded default), [`EtcdStore`] (HA) and [`MemoryStore`]
//! (tests). [`conformance`] holds the checks all of them pass; [`testing::EtcdServer`]
//! runs a throwaway etcd for tests; [`spawn_compactor`] keeps history bounded.
//!
//! Invariants every backend upholds (the conformance suite in `tests/` checks them):
//! - one global revision, bumped by exactly one on every successful write;
//! - a write is acknowledged only once it is durable;
//! - `watch(prefix, from)` delivers every change with revision >= `from`, in revision order,
//!   with no gaps, or fails with [`StoreError::Compacted`] when `from` is older than the
//!   compaction point.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub mod conformance;
pub mod etcd;
pub mod memory;
pub mod sqlite;
pub mod testing;
mod watch_log;

pub use etcd::EtcdStore;
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// A global, strictly increasing store revision (etcd's `mod_revision`).
pub type Revision = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision at which the key was (last) created.
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A create or an update; `prev` is the value before, when there was one.
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A delete at `revision`; `prev` is the last value before deletion.
    Delete { prev: KeyValue, revision: Revision },
}

impl Event {
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    /// Key-values in key order.
    pub kvs: Vec<KeyValue>,
    /// The store revision the range was read at.
    pub revision: Revision,
    /// True when `limit` cut the result short.
    pub more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    #[error("key {0:?} not found")]
    NotFound(String),
    /// The key exists but its mod_revision is not the expected one.
    #[error("key {key:?} was modified (current revision {current})")]
    Conflict { key: String, current: Revision },
    /// The requested revision is older than the compaction point.
    #[error("revision {requested} has been compacted (oldest available {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is newer than the current revision.
    #[error("revision {0} is in the future")]
    FutureRevision(Revision),
    #[error("store backend: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of watch events in revision order; an `Err` ends the stream.
pub type WatchStream = BoxStream<'static, Result<Event>>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current (latest) revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Reads one key at the latest revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Reads keys starting with `prefix` whose key is > `start_after` (when given), in key
    /// order, at `revision` (0 = latest), at most `limit` of them (0 = no limit).
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
        limit: usize,
    ) -> Result<RangeResult>;

    /// Creates `key` if absent; returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision>;

    /// Replaces `key` if its mod_revision equals `expected`; returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision>;

    /// Deletes `key` if present and, when `expected` is given, its mod_revision equals it.
    /// Returns the deletion revision and the last value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Streams every change to keys under `prefix` with revision >= `from`.
    /// `from` = 0 means "changes after now".
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream>;

    /// Discards history older than `revision` (the latest value of each key stays).
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The oldest revision still available to `range` and `watch`.
    async fn compacted_revision(&self) -> Result<Revision>;
}

/// The smallest key greater than every key starting with `prefix` (etcd's "range end").
/// `None` means "no upper bound" (empty prefix, or a prefix made only of 0xff bytes).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The inclusive lower bound of a range over `prefix` that skips keys <= `start_after`.
pub(crate) fn range_start(prefix: &str, start_after: Option<&str>) -> Vec<u8> {
    match start_after {
        // The smallest key strictly greater than `after` is `after` followed by a NUL byte.
        Some(after) if after.as_bytes() >= prefix.as_bytes() => {
            let mut start = after.as_bytes().to_vec();
            start.push(0);
            start
        }
        _ => prefix.as_bytes().to_vec(),
    }
}

/// Compacts `store` every `interval` down to `current - retain` revisions of history,
/// as the Kubernetes API server does against etcd (upstream: every 5 minutes).
/// Errors are logged and retried at the next tick; the task runs until aborted.
pub fn spawn_compactor(
    store: Arc<dyn Store>,
    interval: Duration,
    retain: i64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        // The first tick fires immediately; a freshly started server has nothing to compact.
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(err) = compact_once(store.as_ref(), retain).await {
                tracing::warn!(error = %err, "store compaction failed");
            }
        }
    })
}

/// Compacts `store` to `current - retain` when that moves the compaction point forward.
/// Returns the revision compacted to, if any.
pub async fn compact_once(store: &dyn Store, retain: i64) -> Result<Option<Revision>> {
    let target = store.current_revision().await? - retain.max(0);
    if target <= 0 || target <= store.compacted_revision().await? {
        return Ok(None);
    }
    store.compact(target).await?;
    tracing::debug!(revision = target, "store compacted");
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(
            prefix_end(b"/registry/pods/"),
            Some(b"/registry/pods0".to_vec())
        );
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn range_start_skips_start_after() {
        assert_eq!(range_start("/a/", None), b"/a/".to_vec());
        assert_eq!(range_start("/a/", Some("/a/x")), b"/a/x\0".to_vec());
        // A start_after before the prefix does not widen the range.
        assert_eq!(range_start("/b/", Some("/a/x")), b"/b/".to_vec());
    }
}
