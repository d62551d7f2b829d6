//! Creations and deletions a controller issued but its pod cache has not shown yet, so a
//! lagging cache does not cause a second round of the same actions (upstream's
//! ControllerExpectations).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};

/// Upstream's `ExpectationsTimeout`: give up waiting for the cache after five minutes.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
struct Pending {
    creates: HashSet<String>,
    delete_uids: HashSet<String>,
    set_at: Option<Instant>,
}

/// Pending pod creations (by name) and deletions (by uid), per controller key.
#[derive(Debug, Default)]
pub struct PodExpectations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl PodExpectations {
    /// Whether the cache shows every action issued for `key` (or they are too old to wait for).
    pub fn satisfied(&self, key: &str, pods: &Store<Pod>, namespace: &str) -> bool {
        let guard = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pending) = guard.get(key) else {
            return true;
        };
        if pending
            .set_at
            .is_none_or(|t| t.elapsed() > EXPECTATIONS_TIMEOUT)
        {
            return true;
        }
        let created_seen = pending
            .creates
            .iter()
            .all(|name| pods.get(&ObjectRef::new(name).within(namespace)).is_some());
        let deleted_seen = pending.delete_uids.iter().all(|uid| {
            pods.find(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        });
        created_seen && deleted_seen
    }

    /// Records what one sync issued for `key`, replacing the previous record.
    pub fn expect(&self, key: &str, creates: HashSet<String>, delete_uids: HashSet<String>) {
        let mut guard = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if creates.is_empty() && delete_uids.is_empty() {
            guard.remove(key);
            return;
        }
        guard.insert(
            key.to_string(),
            Pending {
                creates,
                delete_uids,
                set_at: Some(Instant::now()),
            },
        );
    }
}
