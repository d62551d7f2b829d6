//! An in-memory backend with full history and watch, for fast tests of the API server.
//! Nothing is persisted: a write is "durable" once the lock is released.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::watch_log::{self, Batch, History, HistoryPage};
use crate::{Event, KeyValue, RangeResult, Result, Revision, Store, StoreError, WatchStream};

/// Live batches buffered per watcher before it counts as lagging (it then re-reads history).
const BROADCAST_CAPACITY: usize = 1024;

/// One write to a key.
#[derive(Debug, Clone)]
struct Version {
    revision: Revision,
    create_revision: Revision,
    /// For a tombstone: the value that was deleted.
    value: Vec<u8>,
    deleted: bool,
}

#[derive(Default)]
struct State {
    current: Revision,
    compacted: Revision,
    /// Every key's versions, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
    /// Which key each revision wrote (for watch replay), from the compaction point on.
    log: BTreeMap<Revision, String>,
}

/// In-memory [`Store`].
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<Batch>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        MemoryStore {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                events,
            }),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // breaks invariants (each write mutates after all checks), so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a version under the lock and publishes its event while still holding it, so
    /// broadcast order equals revision order.
    fn append(&self, state: &mut State, key: &str, version: Version, event: Event) -> Revision {
        let revision = version.revision;
        state.current = revision;
        state.keys.entry(key.to_string()).or_default().push(version);
        state.log.insert(revision, key.to_string());
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(Arc::new(vec![event]));
        revision
    }
}

fn to_kv(key: &str, version: &Version) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: version.value.clone(),
        create_revision: version.create_revision,
        mod_revision: version.revision,
    }
}

/// The newest version of `versions` at or before `revision`.
fn version_at(versions: &[Version], revision: Revision) -> Option<&Version> {
    let end = versions.partition_point(|v| v.revision <= revision);
    end.checked_sub(1).map(|i| &versions[i])
}

fn live_version(versions: Option<&Vec<Version>>) -> Option<&Version> {
    versions.and_then(|v| v.last()).filter(|v| !v.deleted)
}

impl State {
    fn event_at(&self, revision: Revision) -> Option<Event> {
        let key = self.log.get(&revision)?;
        let versions = self.keys.get(key)?;
        let index = versions.iter().rposition(|v| v.revision == revision)?;
        let version = &versions[index];
        let prev = index.checked_sub(1).map(|i| &versions[i]);
        Some(if version.deleted {
            Event::Delete {
                prev: KeyValue {
                    key: key.clone(),
                    value: version.value.clone(),
                    create_revision: version.create_revision,
                    mod_revision: prev.map_or(0, |p| p.revision),
                },
                revision,
            }
        } else {
            Event::Put {
                kv: to_kv(key, version),
                prev: prev.filter(|p| !p.deleted).map(|p| to_kv(key, p)),
            }
        })
    }

    fn check_readable(&self, revision: Revision) -> Result<()> {
        if revision < self.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        if revision > self.current {
            return Err(StoreError::FutureRevision(revision));
        }
        Ok(())
    }
}

#[async_trait]
impl History for Shared {
    async fn read_events(&self, prefix: &str, from: Revision, max: usize) -> Result<HistoryPage> {
        let state = self.lock();
        if from < state.compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted: state.compacted,
            });
        }
        let mut events = Vec::new();
        for (&revision, key) in state.log.range(from..) {
            if !key.starts_with(prefix) {
                continue;
            }
            if let Some(event) = state.event_at(revision) {
                events.push(event);
                if events.len() == max {
                    return Ok(HistoryPage {
                        events,
                        through: revision,
                    });
                }
            }
        }
        Ok(HistoryPage {
            events,
            through: state.current,
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.lock().current)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let state = self.shared.lock();
        Ok(live_version(state.keys.get(key)).map(|v| to_kv(key, v)))
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
        limit: usize,
    ) -> Result<RangeResult> {
        let state = self.shared.lock();
        let at = if revision == 0 {
            state.current
        } else {
            revision
        };
        state.check_readable(at)?;
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut kvs = Vec::new();
        let mut more = false;
        let candidates = state
            .keys
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        for (key, versions) in candidates {
            let Some(version) = version_at(versions, at).filter(|v| !v.deleted) else {
                continue;
            };
            if limit > 0 && kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(to_kv(key, version));
        }
        Ok(RangeResult {
            kvs,
            revision: at,
            more,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if live_version(state.keys.get(key)).is_some() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let revision = state.current + 1;
        let version = Version {
            revision,
            create_revision: revision,
            value,
            deleted: false,
        };
        let event = Event::Put {
            kv: to_kv(key, &version),
            prev: None,
        };
        Ok(shared.append(&mut state, key, version, event))
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let Some(prev) = live_version(state.keys.get(key)).cloned() else {
            return Err(StoreError::NotFound(key.to_string()));
        };
        if prev.revision != expected {
            return Err(StoreError::Conflict {
                key: key.to_string(),
                current: prev.revision,
            });
        }
        let version = Version {
            revision: state.current + 1,
            create_revision: prev.create_revision,
            value,
            deleted: false,
        };
        let event = Event::Put {
            kv: to_kv(key, &version),
            prev: Some(to_kv(key, &prev)),
        };
        Ok(shared.append(&mut state, key, version, event))
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let Some(prev) = live_version(state.keys.get(key)).cloned() else {
            return Err(StoreError::NotFound(key.to_string()));
        };
        if expected.is_some_and(|expected| expected != prev.revision) {
            return Err(StoreError::Conflict {
                key: key.to_string(),
                current: prev.revision,
            });
        }
        let revision = state.current + 1;
        let prev_kv = to_kv(key, &prev);
        let tombstone = Version {
            revision,
            create_revision: prev.create_revision,
            value: prev.value,
            deleted: true,
        };
        let event = Event::Delete {
            prev: prev_kv.clone(),
            revision,
        };
        shared.append(&mut state, key, tombstone, event);
        Ok((revision, prev_kv))
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        // Subscribe before reading the state so nothing committed afterwards is missed.
        let live = self.shared.events.subscribe();
        let from = {
            let state = self.shared.lock();
            if from != 0 && from < state.compacted {
                return Err(StoreError::Compacted {
                    requested: from,
                    compacted: state.compacted,
                });
            }
            if from == 0 { state.current + 1 } else { from }
        };
        Ok(watch_log::watch_stream(
            self.shared.clone(),
            live,
            prefix.to_string(),
            from,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.shared.lock();
        if revision > state.current {
            return Err(StoreError::FutureRevision(revision));
        }
        if revision <= state.compacted {
            return Ok(());
        }
        state.keys.retain(|_, versions| {
            // Keep the newest version before `revision` (what a read at `revision` sees and
            // the `prev` of the next write) unless it is a tombstone, and everything after.
            let below = versions.partition_point(|v| v.revision < revision);
            let keep_from = match below.checked_sub(1) {
                Some(newest_below) if !versions[newest_below].deleted => newest_below,
                _ => below,
            };
            versions.drain(..keep_from);
            !versions.is_empty()
        });
        state.log = state.log.split_off(&revision);
        state.compacted = revision;
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.lock().compacted)
    }
}
