//! The watch cache: every object of the store in memory, fed by one store watch.
//!
//! Lists, gets and watches are served from here, never by re-reading the database.
//! Invariants:
//! - `revision` is the store revision of the last event applied; objects reflect exactly it;
//! - `history` holds the most recent events in revision order; a watch from a revision older
//!   than what history covers is answered 410 Expired;
//! - an event is added to history and sent to live watchers under the same write lock, so a
//!   watcher that subscribes and copies history under the read lock sees every event once.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value};
use timonel_store::{Event, Revision, Store, StoreError};
use tokio::sync::{broadcast, watch};

/// How many past events a watch can resume from.
const HISTORY_LIMIT: usize = 50_000;
/// Live events buffered per watcher before it is cut off as too slow.
const BROADCAST_CAPACITY: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One object as the cache keeps it: its JSON bytes (resourceVersion stamped), ready to be
/// spliced into responses without re-serializing, plus the few fields lookups need.
#[derive(Debug, Clone)]
pub struct CachedObject {
    pub raw: Bytes,
    pub mod_revision: Revision,
    pub api_version: Arc<str>,
    pub labels: Arc<Map<String, Value>>,
}

impl CachedObject {
    fn new(obj: &Value, mod_revision: Revision) -> CachedObject {
        CachedObject {
            raw: Bytes::from(serde_json::to_vec(obj).expect("JSON serializes")),
            mod_revision,
            api_version: Arc::from(obj["apiVersion"].as_str().unwrap_or_default()),
            labels: Arc::new(
                obj["metadata"]["labels"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        }
    }

    /// The parsed object (the cache only holds bytes it produced itself, so this cannot fail).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.raw).expect("cached objects are valid JSON")
    }
}

#[derive(Debug)]
pub struct WatchEvent {
    pub kind: EventType,
    pub key: String,
    /// The object after the change (the last state for deletions), resourceVersion set.
    pub object: CachedObject,
    /// The object before the change, for watchers whose selector it used to match.
    pub prev: Option<CachedObject>,
    pub revision: Revision,
}

struct Inner {
    objects: BTreeMap<String, CachedObject>,
    history: VecDeque<Arc<WatchEvent>>,
    revision: Revision,
    /// Oldest revision a watch may start after: events after it are all in history.
    horizon: Revision,
}

pub struct Cache {
    inner: RwLock<Inner>,
    live: broadcast::Sender<Arc<WatchEvent>>,
    revision_tx: watch::Sender<Revision>,
}

/// Parses a stored value and stamps its resourceVersion.
fn decode(value: &[u8], revision: Revision) -> Option<Value> {
    let mut obj: Value = serde_json::from_slice(value).ok()?;
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
    Some(obj)
}

pub enum WatchStart {
    /// Events after this revision follow.
    Events(
        Vec<Arc<WatchEvent>>,
        broadcast::Receiver<Arc<WatchEvent>>,
        Revision,
    ),
}

impl Cache {
    /// Loads every object and starts following the store.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Cache>, StoreError> {
        let (objects, revision) = load_all(store.as_ref()).await?;
        let (live, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (revision_tx, _) = watch::channel(revision);
        let cache = Arc::new(Cache {
            inner: RwLock::new(Inner {
                objects,
                history: VecDeque::new(),
                revision,
                horizon: revision,
            }),
            live,
            revision_tx,
        });
        let follower = cache.clone();
        tokio::spawn(async move { follower.follow(store, revision).await });
        Ok(cache)
    }

    async fn follow(self: Arc<Self>, store: Arc<dyn Store>, mut revision: Revision) {
        loop {
            match store.watch("/registry/", revision + 1).await {
                Ok(mut stream) => {
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(event) => {
                                revision = event.revision();
                                self.apply(event);
                            }
                            Err(err) => {
                                tracing::warn!("store watch ended: {err}");
                                break;
                            }
                        }
                    }
                }
                Err(StoreError::Compacted { .. }) => {
                    // We fell behind compaction: reload everything; watchers must relist.
                    match load_all(store.as_ref()).await {
                        Ok((objects, rev)) => {
                            self.reset(objects, rev);
                            revision = rev;
                        }
                        Err(err) => tracing::error!("cache reload failed: {err}"),
                    }
                }
                Err(err) => tracing::warn!("store watch failed: {err}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    fn reset(&self, objects: BTreeMap<String, CachedObject>, revision: Revision) {
        let mut inner = self.inner.write().expect("cache lock");
        inner.objects = objects;
        inner.history.clear();
        inner.revision = revision;
        inner.horizon = revision;
        drop(inner);
        self.revision_tx.send_replace(revision);
    }

    fn apply(&self, event: Event) {
        let mut inner = self.inner.write().expect("cache lock");
        let watch_event = match event {
            Event::Put { kv, .. } => {
                let Some(obj) = decode(&kv.value, kv.mod_revision) else {
                    tracing::error!("undecodable object at {}", kv.key);
                    inner.revision = kv.mod_revision;
                    return;
                };
                let cached = CachedObject::new(&obj, kv.mod_revision);
                let prev = inner.objects.insert(kv.key.clone(), cached.clone());
                WatchEvent {
                    kind: if prev.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    },
                    key: kv.key,
                    object: cached,
                    prev,
                    revision: kv.mod_revision,
                }
            }
            Event::Delete { prev, revision } => {
                let last = inner.objects.remove(&prev.key);
                // A DELETED event carries the last state with the deletion's revision.
                let last_value = match &last {
                    Some(last) => Some(last.value()),
                    None => decode(&prev.value, revision),
                };
                let Some(mut obj) = last_value else {
                    inner.revision = revision;
                    return;
                };
                if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert(
                        "resourceVersion".into(),
                        Value::String(revision.to_string()),
                    );
                }
                let object = CachedObject::new(&obj, revision);
                WatchEvent {
                    kind: EventType::Deleted,
                    key: prev.key,
                    prev: Some(last.unwrap_or_else(|| object.clone())),
                    object,
                    revision,
                }
            }
        };
        let revision = watch_event.revision;
        let watch_event = Arc::new(watch_event);
        inner.history.push_back(watch_event.clone());
        while inner.history.len() > HISTORY_LIMIT {
            if let Some(old) = inner.history.pop_front() {
                inner.horizon = old.revision;
            }
        }
        inner.revision = revision;
        // No receivers is fine: nobody watches.
        let _ = self.live.send(watch_event);
        drop(inner);
        self.revision_tx.send_replace(revision);
    }

    pub fn revision(&self) -> Revision {
        self.inner.read().expect("cache lock").revision
    }

    /// Waits until the cache has applied `revision` (read-your-writes after a store write).
    pub async fn wait_for(&self, revision: Revision) {
        let mut rx = self.revision_tx.subscribe();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            rx.wait_for(|r| *r >= revision),
        )
        .await;
    }

    pub fn get(&self, key: &str) -> Option<CachedObject> {
        self.inner
            .read()
            .expect("cache lock")
            .objects
            .get(key)
            .cloned()
    }

    /// Objects under `prefix` with key > `start_after`, in key order, with the cache revision.
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        mut keep: impl FnMut(&CachedObject) -> bool,
        limit: usize,
    ) -> (Vec<(String, CachedObject)>, Revision, bool) {
        let inner = self.inner.read().expect("cache lock");
        let start = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut out = Vec::new();
        let mut more = false;
        for (key, obj) in inner.objects.range((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if !keep(obj) {
                continue;
            }
            if limit > 0 && out.len() == limit {
                more = true;
                break;
            }
            out.push((key.clone(), obj.clone()));
        }
        (out, inner.revision, more)
    }

    /// True when any object lives under `prefix`.
    pub fn any_under(&self, prefix: &str) -> bool {
        let inner = self.inner.read().expect("cache lock");
        inner
            .objects
            .range(prefix.to_string()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(prefix))
    }

    /// Starts a watch after `from` (`None`: after the current revision).
    /// Returns Err(oldest) when `from` is older than history.
    pub fn watch_from(&self, from: Option<Revision>) -> Result<WatchStart, Revision> {
        let inner = self.inner.read().expect("cache lock");
        let rx = self.live.subscribe();
        let from = from.unwrap_or(inner.revision);
        if from < inner.horizon {
            return Err(inner.horizon);
        }
        let past: Vec<Arc<WatchEvent>> = inner
            .history
            .iter()
            .filter(|e| e.revision > from)
            .cloned()
            .collect();
        Ok(WatchStart::Events(past, rx, inner.revision))
    }

    /// A consistent snapshot of objects under `prefix` plus a live receiver starting right after
    /// it: used for watches with initial events.
    pub fn snapshot_and_subscribe(
        &self,
        prefix: &str,
    ) -> (
        Vec<CachedObject>,
        broadcast::Receiver<Arc<WatchEvent>>,
        Revision,
    ) {
        let inner = self.inner.read().expect("cache lock");
        let rx = self.live.subscribe();
        let objects = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o.clone())
            .collect();
        (objects, rx, inner.revision)
    }
}

async fn load_all(
    store: &dyn Store,
) -> Result<(BTreeMap<String, CachedObject>, Revision), StoreError> {
    let range = store.range("/registry/", None, 0, 0).await?;
    let mut objects = BTreeMap::new();
    for kv in range.kvs {
        match decode(&kv.value, kv.mod_revision) {
            Some(obj) => {
                objects.insert(kv.key, CachedObject::new(&obj, kv.mod_revision));
            }
            None => tracing::error!("skipping undecodable object at {}", kv.key),
        }
    }
    Ok((objects, range.revision))
}
