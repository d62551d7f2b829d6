//! PersistentVolume controller with the built-in local-path provisioner (what k3s ships as
//! `local-path-provisioner`): binds claims to matching volumes, provisions a hostPath volume
//! on the node the scheduler picked for claims of a `timonel.io/local-path` class, and
//! releases or deletes volumes whose claim is gone, as their reclaim policy says.
//!
//! Binding follows upstream's two-sided protocol: the volume's `claimRef` first, then the
//! claim's `volumeName`, then both statuses `Bound`; each pass repairs whichever side is
//! missing, so a crash between the writes heals on the next pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::ControllerOptions;
use crate::common::api_error_code;

/// The provisioner name of the built-in local-path volumes.
pub const PROVISIONER: &str = "timonel.io/local-path";
/// The StorageClass every cluster starts with, marked as the default.
pub const STORAGE_CLASS: &str = "local-path";
/// Set on a claim by the scheduler: the node its first consumer goes to.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set on its Node by the agent: where local-path volumes live on that node.
pub const NODE_DIR_ANNOTATION: &str = "timonel.io/local-path-dir";
/// Where local-path volumes live on a node that does not say (k3s uses a fixed one too).
pub const DEFAULT_NODE_DIR: &str = "/var/lib/timonel/storage";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const PASS_PERIOD: Duration = Duration::from_secs(15);

/// The StorageClass of the built-in provisioner.
pub fn local_path_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(STORAGE_CLASS.into()),
            annotations: Some(BTreeMap::from([(DEFAULT_CLASS.into(), "true".into())])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    }
}

/// What the cluster holds that a decision needs.
pub struct Catalog<'a> {
    pub volumes: &'a [Arc<PersistentVolume>],
    pub classes: &'a [Arc<StorageClass>],
    pub nodes: &'a [Arc<Node>],
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimAction {
    /// Nothing to do until something changes.
    Wait,
    /// Bind the claim and this volume (whichever sides are not yet written).
    Bind { volume: String },
    /// Create this volume for the claim (its claimRef already set), then bind.
    Provision(Box<PersistentVolume>),
    /// The claim was bound to a volume that no longer exists.
    Lost,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeAction {
    Wait,
    /// Set `status.phase` to this.
    SetPhase(&'static str),
    /// The claim is gone and the policy is Delete: remove the volume object (the node
    /// removes its directory).
    Delete,
}

fn storage_request(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// True when `reference` (a volume's claimRef) names `claim`; a claimRef without a UID is a
/// user's pre-binding to the claim's name.
fn refers_to(reference: &ObjectReference, claim: &PersistentVolumeClaim) -> bool {
    reference.name.as_deref() == claim.metadata.name.as_deref()
        && reference.namespace.as_deref() == claim.metadata.namespace.as_deref()
        && (reference.uid.is_none() || reference.uid == claim.metadata.uid)
}

/// Quantity in bytes, exactly (the scheduler's parser).
fn quantity_bytes(q: &Quantity) -> Option<i64> {
    timonel_scheduler::core::quantity::value(&q.0).ok()
}

fn node_labels<'a>(catalog: &'a Catalog, node: &str) -> Option<&'a BTreeMap<String, String>> {
    catalog
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .and_then(|n| n.metadata.labels.as_ref())
}

/// True when the volume's required node affinity admits the node (a volume without one fits
/// every node).
pub fn volume_fits_node(
    volume: &PersistentVolume,
    node: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .is_none_or(|r| {
            timonel_scheduler::core::selectors::node_matches_terms(
                &r.node_selector_terms,
                node,
                Some(labels),
            )
        })
}

/// An available volume that satisfies the claim: same class, enough capacity, every
/// requested access mode, and (once a node is selected) reachable from that node. A volume
/// pre-bound to the claim wins; otherwise the smallest that fits, as upstream picks.
fn matching_volume<'a>(
    claim: &PersistentVolumeClaim,
    catalog: &'a Catalog,
) -> Option<&'a PersistentVolume> {
    let class = claim_class(claim);
    let wanted = storage_request(claim).and_then(quantity_bytes).unwrap_or(0);
    let modes = claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    let mode = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let selected_node = claim.annotations().get(SELECTED_NODE);
    let node_labels = selected_node.and_then(|n| node_labels(catalog, n));
    let mut candidates: Vec<(&PersistentVolume, i64, bool)> = catalog
        .volumes
        .iter()
        .filter_map(|v| {
            let spec = v.spec.as_ref()?;
            if v.metadata.deletion_timestamp.is_some() {
                return None;
            }
            let prebound = match &spec.claim_ref {
                Some(reference) if refers_to(reference, claim) => true,
                Some(_) => return None,
                None => false,
            };
            if !prebound && !matches!(volume_phase(v), "Available" | "" | "Pending") {
                return None;
            }
            if spec.storage_class_name.as_deref().unwrap_or_default() != class {
                return None;
            }
            if spec.volume_mode.as_deref().unwrap_or("Filesystem") != mode {
                return None;
            }
            let offered = spec.access_modes.clone().unwrap_or_default();
            if !modes.iter().all(|m| offered.contains(m)) {
                return None;
            }
            let capacity = spec
                .capacity
                .as_ref()
                .and_then(|c| c.get("storage"))
                .and_then(quantity_bytes)
                .unwrap_or(0);
            if capacity < wanted {
                return None;
            }
            if let (Some(node), Some(labels)) = (selected_node, node_labels)
                && !volume_fits_node(v, node, labels)
            {
                return None;
            }
            Some((v.as_ref(), capacity, prebound))
        })
        .collect();
    candidates.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)));
    candidates.first().map(|(v, _, _)| *v)
}

/// The volume the local-path provisioner creates for `claim` on `node`.
pub fn provisioned_volume(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    node_dir: &str,
) -> PersistentVolume {
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let namespace = claim.namespace().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let path = format!(
        "{}/{name}_{namespace}_{}",
        node_dir.trim_end_matches('/'),
        claim.name_any()
    );
    let spec = claim.spec.clone().unwrap_or_default();
    let capacity = storage_request(claim)
        .cloned()
        .unwrap_or_else(|| Quantity("1Gi".into()));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_BY.into(),
                PROVISIONER.into(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity: Some(BTreeMap::from([("storage".into(), capacity)])),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                name: claim.metadata.name.clone(),
                namespace: claim.metadata.namespace.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                ..Default::default()
            }),
            host_path: Some(HostPathVolumeSource {
                path,
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![node.into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: Some(spec.volume_mode.unwrap_or_else(|| "Filesystem".into())),
            ..Default::default()
        }),
        status: None,
    }
}

/// What to do for one claim.
pub fn plan_claim(claim: &PersistentVolumeClaim, catalog: &Catalog) -> ClaimAction {
    if claim.metadata.deletion_timestamp.is_some() {
        return ClaimAction::Wait;
    }
    let bound_to = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|n| !n.is_empty());
    if let Some(name) = bound_to {
        let Some(volume) = catalog
            .volumes
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
        else {
            return if claim_phase(claim) == "Bound" {
                ClaimAction::Lost
            } else {
                ClaimAction::Wait
            };
        };
        let reference = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        let complete = reference.is_some_and(|r| r.uid == claim.metadata.uid)
            && claim_phase(claim) == "Bound"
            && volume_phase(volume) == "Bound";
        return match reference {
            Some(r) if !refers_to(r, claim) => ClaimAction::Wait,
            _ if complete => ClaimAction::Wait,
            _ => ClaimAction::Bind {
                volume: name.to_string(),
            },
        };
    }
    if let Some(volume) = matching_volume(claim, catalog) {
        return ClaimAction::Bind {
            volume: volume.name_any(),
        };
    }
    let class_name = claim_class(claim);
    let Some(class) = catalog
        .classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(class_name))
    else {
        return ClaimAction::Wait;
    };
    if class.provisioner != PROVISIONER {
        return ClaimAction::Wait;
    }
    // A local volume lives on one node: it is made once the scheduler chose the node of the
    // claim's first pod.
    let Some(node) = claim.annotations().get(SELECTED_NODE) else {
        return ClaimAction::Wait;
    };
    let node_dir = catalog
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node.as_str()))
        .and_then(|n| n.annotations().get(NODE_DIR_ANNOTATION).cloned())
        .unwrap_or_else(|| DEFAULT_NODE_DIR.to_string());
    // Provisioned already (the claim's side not yet written): bind instead of creating twice.
    let name = format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or_default());
    if catalog
        .volumes
        .iter()
        .any(|v| v.metadata.name.as_deref() == Some(name.as_str()))
    {
        return ClaimAction::Bind { volume: name };
    }
    ClaimAction::Provision(Box::new(provisioned_volume(claim, class, node, &node_dir)))
}

/// What to do for one volume, given the claims of the cluster.
pub fn plan_volume(
    volume: &PersistentVolume,
    claims: &[Arc<PersistentVolumeClaim>],
) -> VolumeAction {
    if volume.metadata.deletion_timestamp.is_some() {
        return VolumeAction::Wait;
    }
    let phase = volume_phase(volume);
    let Some(reference) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return if phase == "Available" {
            VolumeAction::Wait
        } else {
            VolumeAction::SetPhase("Available")
        };
    };
    let claim = claims.iter().find(|c| refers_to(reference, c));
    match claim {
        Some(claim) => {
            let claims_it = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                == volume.metadata.name.as_deref();
            if claims_it && phase != "Bound" {
                VolumeAction::SetPhase("Bound")
            } else {
                VolumeAction::Wait
            }
        }
        // Pre-bound by a user to a claim not created yet.
        None if reference.uid.is_none() => {
            if phase == "Available" {
                VolumeAction::Wait
            } else {
                VolumeAction::SetPhase("Available")
            }
        }
        None => {
            let policy = volume
                .spec
                .as_ref()
                .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                .unwrap_or("Retain");
            let ours =
                volume.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER);
            if policy == "Delete" && ours {
                VolumeAction::Delete
            } else if phase != "Released" {
                VolumeAction::SetPhase("Released")
            } else {
                VolumeAction::Wait
            }
        }
    }
}

async fn bind(
    client: &Client,
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> Result<(), kube::Error> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let namespace = claim.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let name = volume.name_any();
    let params = PatchParams::default();
    let reference = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    if reference.is_none_or(|r| r.uid != claim.metadata.uid) {
        // resourceVersion makes the patch conditional: two claims cannot both take it.
        let patch = json!({
            "metadata": {"resourceVersion": volume.metadata.resource_version},
            "spec": {"claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": claim.name_any(),
                "uid": claim.metadata.uid,
                "resourceVersion": claim.metadata.resource_version,
            }},
        });
        volumes.patch(&name, &params, &Patch::Merge(&patch)).await?;
    }
    if volume_phase(volume) != "Bound" {
        let status = json!({"status": {"phase": "Bound"}});
        volumes
            .patch_status(&name, &params, &Patch::Merge(&status))
            .await?;
    }
    let spec = claim.spec.as_ref();
    if spec
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
        != name
    {
        let patch = json!({
            "metadata": {"annotations": {BIND_COMPLETED: "yes", BOUND_BY_CONTROLLER: "yes"}},
            "spec": {"volumeName": name},
        });
        claims
            .patch(&claim.name_any(), &params, &Patch::Merge(&patch))
            .await?;
    }
    if claim_phase(claim) != "Bound" {
        let volume_spec = volume.spec.clone().unwrap_or_default();
        let status = json!({"status": {
            "phase": "Bound",
            "accessModes": volume_spec.access_modes,
            "capacity": volume_spec.capacity,
        }});
        claims
            .patch_status(&claim.name_any(), &params, &Patch::Merge(&status))
            .await?;
    }
    Ok(())
}

async fn pass(
    client: &Client,
    claims: &Store<PersistentVolumeClaim>,
    volumes: &Store<PersistentVolume>,
    classes: &Store<StorageClass>,
    nodes: &Store<Node>,
) {
    let (claims, volumes, classes, nodes) = (
        claims.state(),
        volumes.state(),
        classes.state(),
        nodes.state(),
    );
    let catalog = Catalog {
        volumes: &volumes,
        classes: &classes,
        nodes: &nodes,
    };
    let volume_api: Api<PersistentVolume> = Api::all(client.clone());
    for claim in &claims {
        let key = format!(
            "{}/{}",
            claim.namespace().unwrap_or_default(),
            claim.name_any()
        );
        let result = match plan_claim(claim, &catalog) {
            ClaimAction::Wait => Ok(()),
            ClaimAction::Bind { volume } => match volumes.iter().find(|v| v.name_any() == volume) {
                Some(v) => bind(client, claim, v).await,
                None => Ok(()),
            },
            ClaimAction::Provision(volume) => {
                match volume_api.create(&PostParams::default(), &volume).await {
                    Ok(created) => {
                        tracing::info!(claim = %key, volume = %created.name_any(), "provisioned a local-path volume");
                        bind(client, claim, &created).await
                    }
                    Err(e) if api_error_code(&e) == Some(409) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            ClaimAction::Lost => {
                let api: Api<PersistentVolumeClaim> =
                    Api::namespaced(client.clone(), &claim.namespace().unwrap_or_default());
                let status = json!({"status": {"phase": "Lost"}});
                api.patch_status(
                    &claim.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await
                .map(|_| ())
            }
        };
        match result {
            Err(e) if matches!(api_error_code(&e), Some(404 | 409)) => {}
            Err(e) => tracing::warn!(claim = %key, error = %e, "binding a claim failed"),
            Ok(()) => {}
        }
    }
    for volume in &volumes {
        let name = volume.name_any();
        let result = match plan_volume(volume, &claims) {
            VolumeAction::Wait => Ok(()),
            VolumeAction::SetPhase(phase) => volume_api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {"phase": phase}})),
                )
                .await
                .map(|_| ()),
            VolumeAction::Delete => {
                tracing::info!(volume = %name, "deleting a released local-path volume");
                volume_api
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Err(e) if matches!(api_error_code(&e), Some(404 | 409)) => {}
            Err(e) => tracing::warn!(volume = %name, error = %e, "updating a volume failed"),
            Ok(()) => {}
        }
    }
}

/// Makes sure the `local-path` StorageClass exists (a user may delete it; it comes back
/// when the controller manager restarts, as k3s's packaged manifests do).
async fn ensure_class(client: &Client) {
    let api: Api<StorageClass> = Api::all(client.clone());
    loop {
        match api
            .create(&PostParams::default(), &local_path_class())
            .await
        {
            Ok(_) => return,
            Err(e) if api_error_code(&e) == Some(409) => return,
            Err(e) => {
                tracing::warn!(error = %e, "creating the local-path StorageClass failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// A watch-event sink that asks for a pass (one pending request is enough).
fn nudge<T>(wake: tokio::sync::mpsc::Sender<()>) -> impl FnMut(T) -> futures::future::Ready<()> {
    move |_| {
        let _ = wake.try_send(());
        futures::future::ready(())
    }
}

/// Runs the PersistentVolume controller and the local-path provisioner until a watch ends.
pub async fn run(client: Client, _options: ControllerOptions) -> anyhow::Result<()> {
    ensure_class(&client).await;
    let (claims, claim_writer) = reflector::store();
    let (volumes, volume_writer) = reflector::store();
    let (classes, class_writer) = reflector::store();
    let (nodes, node_writer) = reflector::store();
    let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
    let config = watcher::Config::default;
    let claim_task = watcher(Api::<PersistentVolumeClaim>::all(client.clone()), config())
        .default_backoff()
        .reflect(claim_writer)
        .for_each(nudge(wake.clone()));
    let volume_task = watcher(Api::<PersistentVolume>::all(client.clone()), config())
        .default_backoff()
        .reflect(volume_writer)
        .for_each(nudge(wake.clone()));
    let class_task = watcher(Api::<StorageClass>::all(client.clone()), config())
        .default_backoff()
        .reflect(class_writer)
        .for_each(nudge(wake.clone()));
    // Node changes never make a claim bindable on their own: no nudge.
    let node_task = watcher(Api::<Node>::all(client.clone()), config())
        .default_backoff()
        .reflect(node_writer)
        .for_each(|_| futures::future::ready(()));
    let loop_task = async {
        let _ = claims.wait_until_ready().await;
        let _ = volumes.wait_until_ready().await;
        let _ = classes.wait_until_ready().await;
        let _ = nodes.wait_until_ready().await;
        let mut tick = tokio::time::interval(PASS_PERIOD);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = woken.recv() => {}
            }
            pass(&client, &claims, &volumes, &classes, &nodes).await;
        }
    };
    tokio::select! {
        _ = claim_task => {}
        _ = volume_task => {}
        _ = class_task => {}
        _ = node_task => {}
        _ = loop_task => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeStatus,
        VolumeResourceRequirements,
    };

    fn claim(name: &str, class: &str, size: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: Some(class.into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        }
    }

    fn volume(name: &str, class: &str, size: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                access_modes: Some(vec!["ReadWriteOnce".into(), "ReadOnlyMany".into()]),
                capacity: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])),
                storage_class_name: Some(class.into()),
                persistent_volume_reclaim_policy: Some("Retain".into()),
                ..Default::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some("Available".into()),
                ..Default::default()
            }),
        }
    }

    fn node(name: &str, dir: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(
                    "kubernetes.io/hostname".into(),
                    name.into(),
                )])),
                annotations: dir.map(|d| BTreeMap::from([(NODE_DIR_ANNOTATION.into(), d.into())])),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn arcs<T>(items: Vec<T>) -> Vec<Arc<T>> {
        items.into_iter().map(Arc::new).collect()
    }

    #[test]
    fn a_claim_binds_the_smallest_matching_available_volume() {
        let volumes = arcs(vec![
            volume("big", "manual", "10Gi"),
            volume("small", "manual", "2Gi"),
            volume("tiny", "manual", "500Mi"),
            volume("other-class", "fast", "2Gi"),
        ]);
        let catalog = Catalog {
            volumes: &volumes,
            classes: &[],
            nodes: &[],
        };
        assert_eq!(
            plan_claim(&claim("data", "manual", "1Gi"), &catalog),
            ClaimAction::Bind {
                volume: "small".into()
            }
        );
        // Nothing fits: the claim waits.
        assert_eq!(
            plan_claim(&claim("data", "manual", "20Gi"), &catalog),
            ClaimAction::Wait
        );
    }

    #[test]
    fn local_path_claims_are_provisioned_on_the_selected_node_only() {
        let classes = arcs(vec![local_path_class()]);
        let nodes = arcs(vec![
            node("n1", Some("/data/agent/storage")),
            node("n2", None),
        ]);
        let catalog = Catalog {
            volumes: &[],
            classes: &classes,
            nodes: &nodes,
        };
        let mut pending = claim("data", STORAGE_CLASS, "1Gi");
        assert_eq!(plan_claim(&pending, &catalog), ClaimAction::Wait);
        pending
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(SELECTED_NODE.into(), "n1".into());
        let ClaimAction::Provision(pv) = plan_claim(&pending, &catalog) else {
            panic!("expected a provisioned volume");
        };
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-uid-data"));
        assert_eq!(
            spec.host_path.as_ref().unwrap().path,
            "/data/agent/storage/pvc-uid-data_ns_data"
        );
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        assert_eq!(
            spec.claim_ref.as_ref().unwrap().uid.as_deref(),
            Some("uid-data")
        );
        let labels = BTreeMap::from([("kubernetes.io/hostname".into(), "n1".into())]);
        assert!(volume_fits_node(&pv, "n1", &labels));
        let elsewhere = BTreeMap::from([("kubernetes.io/hostname".into(), "n2".into())]);
        assert!(!volume_fits_node(&pv, "n2", &elsewhere));
        // A node without the annotation gets the default directory.
        pending
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(SELECTED_NODE.into(), "n2".into());
        let ClaimAction::Provision(pv) = plan_claim(&pending, &catalog) else {
            panic!("expected a provisioned volume");
        };
        assert!(
            pv.spec
                .as_ref()
                .unwrap()
                .host_path
                .as_ref()
                .unwrap()
                .path
                .starts_with(DEFAULT_NODE_DIR)
        );
        // Once created, the same claim binds it instead of provisioning twice.
        let volumes = arcs(vec![*pv]);
        let catalog = Catalog {
            volumes: &volumes,
            classes: &classes,
            nodes: &nodes,
        };
        assert_eq!(
            plan_claim(&pending, &catalog),
            ClaimAction::Bind {
                volume: "pvc-uid-data".into()
            }
        );
    }

    #[test]
    fn binding_completes_both_sides_then_rests() {
        let mut pv = volume("pv1", "manual", "1Gi");
        let mut pvc = claim("data", "manual", "1Gi");
        pv.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            name: Some("data".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-data".into()),
            ..Default::default()
        });
        let claims = arcs(vec![pvc.clone()]);
        // The volume's side is written, the claim's is not: the volume waits for it.
        assert_eq!(plan_volume(&pv, &claims), VolumeAction::Wait);
        let volumes = arcs(vec![pv.clone()]);
        let catalog = Catalog {
            volumes: &volumes,
            classes: &[],
            nodes: &[],
        };
        assert_eq!(
            plan_claim(&pvc, &catalog),
            ClaimAction::Bind {
                volume: "pv1".into()
            }
        );
        pvc.spec.as_mut().unwrap().volume_name = Some("pv1".into());
        pvc.status.as_mut().unwrap().phase = Some("Bound".into());
        let claims = arcs(vec![pvc.clone()]);
        assert_eq!(plan_volume(&pv, &claims), VolumeAction::SetPhase("Bound"));
        pv.status.as_mut().unwrap().phase = Some("Bound".into());
        let volumes = arcs(vec![pv.clone()]);
        let catalog = Catalog {
            volumes: &volumes,
            classes: &[],
            nodes: &[],
        };
        assert_eq!(plan_claim(&pvc, &catalog), ClaimAction::Wait);
        assert_eq!(plan_volume(&pv, &claims), VolumeAction::Wait);
        // The claim deleted: Retain releases, a provisioned Delete volume goes.
        assert_eq!(plan_volume(&pv, &[]), VolumeAction::SetPhase("Released"));
        pv.spec.as_mut().unwrap().persistent_volume_reclaim_policy = Some("Delete".into());
        pv.metadata
            .annotations
            .get_or_insert_default()
            .insert(PROVISIONED_BY.into(), PROVISIONER.into());
        assert_eq!(plan_volume(&pv, &[]), VolumeAction::Delete);
        // Its volume vanished under a bound claim: Lost.
        let catalog = Catalog {
            volumes: &[],
            classes: &[],
            nodes: &[],
        };
        assert_eq!(plan_claim(&pvc, &catalog), ClaimAction::Lost);
    }
}
