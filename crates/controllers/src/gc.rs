//! Garbage collector: deletes dependents whose owners are gone, and carries out foreground and
//! orphan deletion (the `foregroundDeletion` and `orphan` finalizers).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    Preconditions, PropagationPolicy,
};
use kube::discovery::{Discovery, Scope};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::ControllerOptions;
use crate::common::{Error, api_error_code};

pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The kinds whose objects the collector watches as dependents (group, version, kind).
pub const WATCHED_KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Pod"),
    ("", "v1", "ReplicationController"),
    ("apps", "v1", "ReplicaSet"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "DaemonSet"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "ControllerRevision"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
];

/// Where an object lives, enough to address it with a dynamic API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// An object of the ownership graph.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    pub key: ObjectKey,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub being_deleted: bool,
}

impl GraphNode {
    pub fn from_meta(api_version: &str, kind: &str, meta: &ObjectMeta) -> Option<Self> {
        Some(Self {
            key: ObjectKey {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone()?,
            },
            uid: meta.uid.clone()?,
            owners: meta.owner_references.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            being_deleted: meta.deletion_timestamp.is_some(),
        })
    }

    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }
}

/// What the collector knows about an owner reference's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// No object with that uid exists (confirmed against the API server).
    Absent,
    /// Exists and is not waiting for its dependents.
    Present,
    /// Being deleted in the foreground: waits for its dependents to go.
    WaitingForDependents,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GcAction {
    Delete {
        key: ObjectKey,
        uid: String,
        propagation: PropagationPolicy,
    },
    /// Drop the owner references to these owner uids.
    RemoveOwnerReferences {
        key: ObjectKey,
        uid: String,
        owner_uids: Vec<String>,
    },
    RemoveFinalizer {
        key: ObjectKey,
        uid: String,
        finalizer: String,
    },
}

/// Upstream's `attemptToDeleteItem` for one dependent: delete it when every owner is gone or
/// waiting for it, or drop the dangling references when some owner remains.
pub fn decide_dependent(
    dependent: &GraphNode,
    owner_state: impl Fn(&OwnerReference) -> OwnerState,
    has_dependents: bool,
) -> Option<GcAction> {
    if dependent.owners.is_empty() {
        return None;
    }
    // An object already being deleted is left alone unless it waits on its own dependents.
    if dependent.being_deleted && !dependent.has_finalizer(FOREGROUND_FINALIZER) {
        return None;
    }
    let mut dangling = Vec::new();
    let mut waiting = 0;
    let mut solid = 0;
    for owner in &dependent.owners {
        match owner_state(owner) {
            OwnerState::Absent => dangling.push(owner.uid.clone()),
            OwnerState::WaitingForDependents => waiting += 1,
            OwnerState::Present => solid += 1,
        }
    }
    if solid > 0 {
        return (!dangling.is_empty()).then(|| GcAction::RemoveOwnerReferences {
            key: dependent.key.clone(),
            uid: dependent.uid.clone(),
            owner_uids: dangling,
        });
    }
    if dependent.being_deleted {
        return None;
    }
    let propagation = if waiting > 0 && has_dependents {
        // Its owner waits for it, so it must in turn wait for its own dependents.
        PropagationPolicy::Foreground
    } else if dependent.has_finalizer(ORPHAN_FINALIZER) {
        PropagationPolicy::Orphan
    } else if dependent.has_finalizer(FOREGROUND_FINALIZER) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    Some(GcAction::Delete {
        key: dependent.key.clone(),
        uid: dependent.uid.clone(),
        propagation,
    })
}

/// Finalizer work for an owner being deleted: orphaning strips the references from its
/// dependents then drops `orphan`; foreground drops `foregroundDeletion` once no dependent
/// with blockOwnerDeletion remains.
pub fn decide_owner(owner: &GraphNode, dependents: &[&GraphNode]) -> Vec<GcAction> {
    let mut actions = Vec::new();
    if !owner.being_deleted {
        return actions;
    }
    if owner.has_finalizer(ORPHAN_FINALIZER) {
        for dependent in dependents {
            actions.push(GcAction::RemoveOwnerReferences {
                key: dependent.key.clone(),
                uid: dependent.uid.clone(),
                owner_uids: vec![owner.uid.clone()],
            });
        }
        actions.push(GcAction::RemoveFinalizer {
            key: owner.key.clone(),
            uid: owner.uid.clone(),
            finalizer: ORPHAN_FINALIZER.into(),
        });
        return actions;
    }
    if owner.has_finalizer(FOREGROUND_FINALIZER) {
        let blocked = dependents.iter().any(|d| {
            d.owners
                .iter()
                .any(|r| r.uid == owner.uid && r.block_owner_deletion == Some(true))
        });
        if !blocked {
            actions.push(GcAction::RemoveFinalizer {
                key: owner.key.clone(),
                uid: owner.uid.clone(),
                finalizer: FOREGROUND_FINALIZER.into(),
            });
        }
    }
    actions
}

/// One pass over the whole graph. `owner_state_of_missing` answers for owners absent from
/// `nodes` (the runner confirms with the API server).
pub fn plan_sweep(
    nodes: &[GraphNode],
    owner_state_of_missing: impl Fn(&OwnerReference) -> OwnerState,
) -> Vec<GcAction> {
    let by_uid: HashMap<&str, &GraphNode> = nodes.iter().map(|n| (n.uid.as_str(), n)).collect();
    let mut dependents: HashMap<&str, Vec<&GraphNode>> = HashMap::new();
    for node in nodes {
        for owner in &node.owners {
            dependents.entry(owner.uid.as_str()).or_default().push(node);
        }
    }
    let state = |owner: &OwnerReference| match by_uid.get(owner.uid.as_str()) {
        Some(found) if found.being_deleted && found.has_finalizer(FOREGROUND_FINALIZER) => {
            OwnerState::WaitingForDependents
        }
        Some(_) => OwnerState::Present,
        None => owner_state_of_missing(owner),
    };
    let mut actions = Vec::new();
    for node in nodes {
        let has_dependents = dependents.contains_key(node.uid.as_str());
        actions.extend(decide_dependent(node, state, has_dependents));
        let mine = dependents
            .get(node.uid.as_str())
            .cloned()
            .unwrap_or_default();
        actions.extend(decide_owner(node, &mine));
    }
    actions
}

struct Resolver {
    discovery: Discovery,
}

impl Resolver {
    fn resolve(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        self.discovery
            .resolve_gvk(&gvk)
            .map(|(resource, caps)| (resource, caps.scope == Scope::Namespaced))
    }

    fn api(&self, client: &Client, key: &ObjectKey) -> Option<Api<DynamicObject>> {
        let (resource, namespaced) = self.resolve(&key.api_version, &key.kind)?;
        Some(match (&key.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        })
    }
}

/// Asks the API server whether the owner still exists with that uid (the cache may lag).
async fn confirm_owner(
    client: &Client,
    resolver: &Resolver,
    namespace: Option<&str>,
    owner: &OwnerReference,
) -> OwnerState {
    let key = ObjectKey {
        api_version: owner.api_version.clone(),
        kind: owner.kind.clone(),
        namespace: namespace.map(str::to_string),
        name: owner.name.clone(),
    };
    // An unknown kind cannot be checked: treat the owner as present rather than delete wrongly.
    let Some(api) = resolver.api(client, &key) else {
        return OwnerState::Present;
    };
    match api.get(&owner.name).await {
        Ok(found) if found.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
            let waiting = found.metadata.deletion_timestamp.is_some()
                && found
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FOREGROUND_FINALIZER);
            if waiting {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Present
            }
        }
        Ok(_) => OwnerState::Absent,
        Err(e) if api_error_code(&e) == Some(404) => OwnerState::Absent,
        Err(_) => OwnerState::Present,
    }
}

async fn execute(
    client: &Client,
    resolver: &Resolver,
    action: &GcAction,
    nodes: &HashMap<String, GraphNode>,
) -> Result<(), Error> {
    let key = match action {
        GcAction::Delete { key, .. }
        | GcAction::RemoveOwnerReferences { key, .. }
        | GcAction::RemoveFinalizer { key, .. } => key,
    };
    let Some(api) = resolver.api(client, key) else {
        return Ok(());
    };
    let result = match action {
        GcAction::Delete {
            uid, propagation, ..
        } => {
            let params = DeleteParams {
                propagation_policy: Some(propagation.clone()),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            api.delete(&key.name, &params).await.map(drop)
        }
        GcAction::RemoveOwnerReferences {
            uid, owner_uids, ..
        } => {
            let Some(node) = nodes.get(uid) else {
                return Ok(());
            };
            let remaining: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|r| !owner_uids.contains(&r.uid))
                .collect();
            let patch = serde_json::json!({"metadata": {"uid": uid, "ownerReferences": remaining}});
            api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        }
        GcAction::RemoveFinalizer { uid, finalizer, .. } => {
            let current = api.get(&key.name).await?;
            if current.metadata.uid.as_deref() != Some(uid.as_str()) {
                return Ok(());
            }
            let remaining: Vec<String> = current
                .metadata
                .finalizers
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != finalizer)
                .collect();
            // resourceVersion makes this a compare-and-swap against concurrent finalizer edits.
            let patch = serde_json::json!({"metadata": {"finalizers": remaining, "resourceVersion": current.metadata.resource_version}});
            api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        }
    };
    match result {
        Err(e) if !matches!(api_error_code(&e), Some(404 | 409)) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Aborts the reflector tasks when the collector stops (its future dropped, e.g. on losing
/// the leader lease).
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Runs the garbage collector: reflects every watched kind and sweeps the graph on change.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let resolver = Arc::new(Resolver { discovery });
    let wake = Arc::new(tokio::sync::Notify::new());
    let mut stores: Vec<(ApiResource, Store<DynamicObject>)> = Vec::new();
    let mut tasks = AbortOnDrop(Vec::new());
    for (group, version, kind) in WATCHED_KINDS {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let Some((resource, _)) = resolver.resolve(&api_version, kind) else {
            tracing::warn!(kind, "kind not served; garbage collector skips it");
            continue;
        };
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let notify = wake.clone();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .touched_objects();
        tasks.0.push(tokio::spawn(async move {
            stream
                .for_each(|_| {
                    notify.notify_one();
                    futures::future::ready(())
                })
                .await;
        }));
        stores.push((resource, store));
    }
    loop {
        let _ = tokio::time::timeout(
            options.resync_period.min(Duration::from_secs(60)),
            wake.notified(),
        )
        .await;
        // Let a burst of events land before sweeping.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (_, store) in &stores {
            let _ = store.wait_until_ready().await;
        }
        let nodes: Vec<GraphNode> = stores
            .iter()
            .flat_map(|(resource, store)| {
                store
                    .state()
                    .into_iter()
                    .filter_map(|o| {
                        GraphNode::from_meta(&resource.api_version, &resource.kind, &o.metadata)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let known: HashMap<String, GraphNode> =
            nodes.iter().map(|n| (n.uid.clone(), n.clone())).collect();
        // Owners missing from the caches are checked live once per sweep.
        let mut missing: HashMap<String, OwnerState> = HashMap::new();
        for node in &nodes {
            for owner in &node.owners {
                if known.contains_key(&owner.uid) || missing.contains_key(&owner.uid) {
                    continue;
                }
                let state =
                    confirm_owner(&client, &resolver, node.key.namespace.as_deref(), owner).await;
                missing.insert(owner.uid.clone(), state);
            }
        }
        let actions = plan_sweep(&nodes, |owner| {
            missing
                .get(&owner.uid)
                .copied()
                .unwrap_or(OwnerState::Present)
        });
        for action in &actions {
            if let Err(error) = execute(&client, &resolver, action, &known).await {
                tracing::warn!(%error, ?action, "garbage collector action failed");
                wake.notify_one();
            }
        }
        if tasks.0.iter().all(|t| t.is_finished()) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        name: &str,
        kind: &str,
        owners: &[(&str, bool)],
        finalizers: &[&str],
        deleting: bool,
    ) -> GraphNode {
        GraphNode {
            key: ObjectKey {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                namespace: Some("ns".into()),
                name: name.into(),
            },
            uid: format!("{name}-uid"),
            owners: owners
                .iter()
                .map(|(owner, block)| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: owner.to_string(),
                    uid: format!("{owner}-uid"),
                    controller: Some(true),
                    block_owner_deletion: Some(*block),
                })
                .collect(),
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
            being_deleted: deleting,
        }
    }

    fn absent(_: &OwnerReference) -> OwnerState {
        OwnerState::Absent
    }

    #[test]
    fn background_deletes_dependents_of_vanished_owner() {
        let pod = node("pod", "Pod", &[("rs", true)], &[], false);
        let actions = plan_sweep(std::slice::from_ref(&pod), absent);
        assert_eq!(
            actions,
            [GcAction::Delete {
                key: pod.key.clone(),
                uid: pod.uid.clone(),
                propagation: PropagationPolicy::Background
            }]
        );
    }

    #[test]
    fn live_owner_keeps_dependent_and_dangling_references_are_dropped() {
        let rs = node("rs", "ReplicaSet", &[], &[], false);
        let pod = node("pod", "Pod", &[("rs", true), ("gone", false)], &[], false);
        let actions = plan_sweep(&[rs, pod.clone()], absent);
        assert_eq!(
            actions,
            [GcAction::RemoveOwnerReferences {
                key: pod.key,
                uid: pod.uid,
                owner_uids: vec!["gone-uid".into()]
            }]
        );
    }

    #[test]
    fn foreground_deletes_dependents_then_releases_owner() {
        let deploy = node("deploy", "Deployment", &[], &[FOREGROUND_FINALIZER], true);
        let mut rs = node("rs", "ReplicaSet", &[("deploy", true)], &[], false);
        rs.owners[0].uid = deploy.uid.clone();
        let mut pod = node("pod", "Pod", &[("rs", true)], &[], false);
        pod.owners[0].uid = rs.uid.clone();
        let actions = plan_sweep(&[deploy.clone(), rs.clone(), pod.clone()], absent);
        // The ReplicaSet has a pod of its own, so it is deleted in the foreground as well; the
        // Deployment keeps its finalizer while the ReplicaSet exists.
        assert_eq!(
            actions,
            [GcAction::Delete {
                key: rs.key.clone(),
                uid: rs.uid.clone(),
                propagation: PropagationPolicy::Foreground
            }]
        );

        // The ReplicaSet is now deleting in the foreground: its pod goes next.
        let mut rs_deleting = rs.clone();
        rs_deleting.being_deleted = true;
        rs_deleting.finalizers = vec![FOREGROUND_FINALIZER.into()];
        let actions = plan_sweep(&[deploy.clone(), rs_deleting.clone(), pod.clone()], absent);
        assert_eq!(
            actions,
            [GcAction::Delete {
                key: pod.key.clone(),
                uid: pod.uid.clone(),
                propagation: PropagationPolicy::Background
            }]
        );

        // Pod gone: the ReplicaSet is released; once it is gone, the Deployment is released.
        let actions = plan_sweep(&[deploy.clone(), rs_deleting], absent);
        assert_eq!(
            actions,
            [GcAction::RemoveFinalizer {
                key: rs.key.clone(),
                uid: rs.uid.clone(),
                finalizer: FOREGROUND_FINALIZER.into()
            }]
        );
        let actions = plan_sweep(std::slice::from_ref(&deploy), absent);
        assert_eq!(
            actions,
            [GcAction::RemoveFinalizer {
                key: deploy.key.clone(),
                uid: deploy.uid.clone(),
                finalizer: FOREGROUND_FINALIZER.into()
            }]
        );
    }

    #[test]
    fn non_blocking_dependents_do_not_hold_foreground_owner() {
        let rs = node("rs", "ReplicaSet", &[], &[FOREGROUND_FINALIZER], true);
        let pod = node("pod", "Pod", &[("rs", false)], &[], false);
        let actions = plan_sweep(&[rs.clone(), pod.clone()], absent);
        assert!(actions.contains(&GcAction::Delete {
            key: pod.key,
            uid: pod.uid,
            propagation: PropagationPolicy::Background
        }));
        assert!(actions.contains(&GcAction::RemoveFinalizer {
            key: rs.key,
            uid: rs.uid,
            finalizer: FOREGROUND_FINALIZER.into()
        }));
    }

    #[test]
    fn orphan_strips_references_then_removes_finalizer() {
        let rs = node("rs", "ReplicaSet", &[], &[ORPHAN_FINALIZER], true);
        let pod = node("pod", "Pod", &[("rs", true)], &[], false);
        let actions = plan_sweep(&[rs.clone(), pod.clone()], absent);
        assert_eq!(
            actions,
            [
                GcAction::RemoveOwnerReferences {
                    key: pod.key,
                    uid: pod.uid,
                    owner_uids: vec![rs.uid.clone()]
                },
                GcAction::RemoveFinalizer {
                    key: rs.key,
                    uid: rs.uid,
                    finalizer: ORPHAN_FINALIZER.into()
                },
            ]
        );
    }

    #[test]
    fn owner_outside_cache_is_trusted_when_confirmed_present() {
        let pod = node("pod", "Pod", &[("rs", true)], &[], false);
        assert!(plan_sweep(&[pod], |_| OwnerState::Present).is_empty());
    }

    #[test]
    fn dependent_already_deleting_is_left_alone() {
        let pod = node("pod", "Pod", &[("rs", true)], &[], true);
        assert!(plan_sweep(&[pod], absent).is_empty());
    }
}
