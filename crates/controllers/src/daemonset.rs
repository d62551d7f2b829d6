//! DaemonSet controller (upstream `pkg/controller/daemon`): one pod per eligible node, placed
//! by the default scheduler through a `metadata.name` node affinity term, rolled by
//! RollingUpdate (maxUnavailable or maxSurge) or OnDelete, with ControllerRevision history.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use timonel_scheduler::core::selectors::{node_matches_terms, tolerated};

use crate::ControllerOptions;
use crate::common::{
    Error, EventSpec, api_error_code, controller_of, controller_reference, emit_event,
    object_reference, pod_is_active, pod_is_available, pod_is_ready, pod_ready_since,
    seconds_between, selector_is_empty, selector_matches,
};
use crate::deployment::scaled_value;
use crate::expectations::PodExpectations;
use crate::history::{
    CONTROLLER_REVISION_HASH_LABEL, RevisionChange, current_revision, owned_revisions,
    revisions_to_prune, same_data,
};
use crate::replicaset::PodToDelete;

pub const POD_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Where the API server records the template generation of an apps/v1 DaemonSet.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// Whether the DaemonSet wants a pod on a node (upstream `NodeShouldRunDaemonPod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// A pod should be created there.
    pub should_run: bool,
    /// A pod already there may stay (only untolerated NoSchedule taints are in the way).
    pub should_continue_running: bool,
}

/// The tolerations upstream's `AddOrUpdateDaemonPodTolerations` gives every daemon pod: they
/// keep running through node problems and on cordoned nodes.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let exists = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        value: None,
        toleration_seconds: None,
    };
    let mut tolerations = vec![
        exists("node.kubernetes.io/not-ready", "NoExecute"),
        exists("node.kubernetes.io/unreachable", "NoExecute"),
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        tolerations.push(exists(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    tolerations
}

/// Adds `extra` to `tolerations`, replacing one with the same key, operator, value and effect
/// (upstream `AddOrUpdateTolerationInPodSpec`).
fn add_or_update_tolerations(tolerations: &mut Vec<Toleration>, extra: Vec<Toleration>) {
    for toleration in extra {
        let same = |t: &Toleration| {
            t.key == toleration.key
                && t.operator.as_deref().unwrap_or("Equal")
                    == toleration.operator.as_deref().unwrap_or("Equal")
                && t.value.as_deref().unwrap_or_default()
                    == toleration.value.as_deref().unwrap_or_default()
                && t.effect == toleration.effect
        };
        if let Some(existing) = tolerations.iter_mut().find(|t| same(t)) {
            *existing = toleration;
        } else {
            tolerations.push(toleration);
        }
    }
}

fn template_spec(ds: &DaemonSet) -> PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default()
}

/// The pod spec with the daemon tolerations added.
fn spec_with_daemon_tolerations(ds: &DaemonSet) -> PodSpec {
    let mut spec = template_spec(ds);
    let host_network = spec.host_network.unwrap_or(false);
    add_or_update_tolerations(
        spec.tolerations.get_or_insert_default(),
        daemon_tolerations(host_network),
    );
    spec
}

/// Upstream `NodeShouldRunDaemonPod`: the node matches the nodeSelector and the required node
/// affinity, and its NoSchedule/NoExecute taints are tolerated.
pub fn node_should_run(ds: &DaemonSet, node: &Node) -> Placement {
    let spec = spec_with_daemon_tolerations(ds);
    let name = node.name_any();
    let labels = node.metadata.labels.as_ref();
    let selector_fits = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(key, value)| labels.and_then(|l| l.get(key)) == Some(value));
    let affinity_fits = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|required| node_matches_terms(&required.node_selector_terms, &name, labels));
    if !selector_fits || !affinity_fits {
        return Placement {
            should_run: false,
            should_continue_running: false,
        };
    }
    let tolerations = spec.tolerations.unwrap_or_default();
    let taints: Vec<&Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .collect();
    let untolerated = |effects: &[&str]| {
        taints
            .iter()
            .any(|t| effects.contains(&t.effect.as_str()) && !tolerated(&tolerations, t))
    };
    Placement {
        should_run: !untolerated(&["NoSchedule", "NoExecute"]),
        should_continue_running: !untolerated(&["NoExecute"]),
    }
}

/// The node a daemon pod is for: `spec.nodeName`, or before binding the single name of its
/// `metadata.name` node affinity term (upstream `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = &spec.node_name {
        return Some(node.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| {
            f.key == "metadata.name"
                && f.operator == "In"
                && f.values.as_ref().is_some_and(|v| v.len() == 1)
        })
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

/// Upstream `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the
/// single term `metadata.name In [node]` (the node was already checked against the original).
pub fn affinity_for_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default)
        .required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

fn template_generation(ds: &DaemonSet) -> String {
    ds.annotations()
        .get(TEMPLATE_GENERATION_ANNOTATION)
        .cloned()
        .or_else(|| ds.metadata.generation.map(|g| g.to_string()))
        .unwrap_or_else(|| "1".into())
}

/// The pod the DaemonSet creates for `node`.
pub fn daemon_pod(ds: &DaemonSet, node: &str, hash: &str) -> Result<Pod, Error> {
    let template_meta = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.clone())
        .unwrap_or_default();
    let owner = controller_reference(ds)
        .ok_or_else(|| Error::InvalidObject("daemonset has no name or uid".into()))?;
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.into());
    labels.insert(
        POD_TEMPLATE_GENERATION_LABEL.into(),
        template_generation(ds),
    );
    let mut spec = spec_with_daemon_tolerations(ds);
    spec.affinity = Some(affinity_for_node(spec.affinity.take(), node));
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.labels()
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .map(String::as_str)
        == Some(hash)
}

fn is_failed(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
}

fn oldest_first(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
}

fn to_delete(pod: &Pod) -> PodToDelete {
    PodToDelete {
        name: pod.name_any(),
        uid: pod.metadata.uid.clone(),
    }
}

/// What one sync of a DaemonSet must do.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSetPlan {
    /// The revision of the current template: create it or renumber it (rollback).
    pub revision: RevisionChange,
    /// Its hash, the pods' `controller-revision-hash`.
    pub hash: String,
    /// Nodes to create a pod for.
    pub create_on: Vec<String>,
    pub delete: Vec<PodToDelete>,
    /// Old ControllerRevisions beyond revisionHistoryLimit.
    pub prune_revisions: Vec<String>,
    pub events: Vec<EventSpec>,
    pub status: DaemonSetStatus,
    /// When a pod becomes available later (minReadySeconds), sync again then.
    pub requeue_after: Option<Duration>,
}

/// Decides the actions for `ds` given every node, every pod and every ControllerRevision of
/// its namespace.
pub fn reconcile(
    ds: &DaemonSet,
    nodes: &[Node],
    pods: &[Pod],
    revisions: &[ControllerRevision],
    now: Timestamp,
) -> Result<DaemonSetPlan, Error> {
    let spec = ds
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("daemonset has no spec".into()))?;
    if selector_is_empty(&spec.selector) {
        return Err(Error::InvalidSelector(
            "empty selector would match every pod".into(),
        ));
    }
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    let min_ready_seconds = spec.min_ready_seconds.unwrap_or(0);
    let being_deleted = ds.metadata.deletion_timestamp.is_some();

    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods {
        if controller_of(&pod.metadata).is_some_and(|o| o.uid == uid)
            && selector_matches(&spec.selector, pod.labels())?
        {
            owned.push(pod);
        }
    }
    let owned_revs = owned_revisions(revisions, uid);
    let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    let (revision, change) = current_revision(ds, &spec.template, &owned_revs, collision_count)?;
    let hash = revision
        .labels()
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .cloned()
        .unwrap_or_default();

    let node_names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    let mut delete: Vec<PodToDelete> = Vec::new();
    let mut events = Vec::new();
    for pod in &owned {
        match target_node(pod) {
            Some(node) if node_names.contains(&node) => by_node.entry(node).or_default().push(pod),
            // Pods bound to a deleted node are the pod garbage collector's; unbound pods for
            // a node that is gone are ours to remove (upstream `getUnscheduledPodsWithoutNode`).
            _ => {
                let unbound = pod.spec.as_ref().is_none_or(|s| s.node_name.is_none());
                if unbound && pod.metadata.deletion_timestamp.is_none() {
                    delete.push(to_delete(pod));
                }
            }
        }
    }

    let (rolling, max_surge_value, max_unavailable_value) = match spec.update_strategy.as_ref() {
        Some(s) if s.type_.as_deref() == Some("OnDelete") => (false, None, None),
        s => {
            let rolling = s.and_then(|s| s.rolling_update.as_ref());
            (
                true,
                rolling.and_then(|r| r.max_surge.clone()),
                rolling.and_then(|r| r.max_unavailable.clone()),
            )
        }
    };

    let mut sorted_nodes: Vec<&Node> = nodes.iter().collect();
    sorted_nodes.sort_by_key(|n| n.name_any());
    let mut create_on = Vec::new();
    let mut wanted: Vec<String> = Vec::new();
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count,
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..DaemonSetStatus::default()
    };
    let desired_for_surge = sorted_nodes
        .iter()
        .filter(|n| node_should_run(ds, n).should_run)
        .count();
    let max_surge = match (&max_surge_value, rolling) {
        (Some(v), true) => scaled_value(v, i32::try_from(desired_for_surge).unwrap_or(0), true)?,
        _ => 0,
    };
    let surging = max_surge > 0;
    for node in &sorted_nodes {
        let name = node.name_any();
        let placement = node_should_run(ds, node);
        let node_pods = by_node.get(&name).cloned().unwrap_or_default();
        if placement.should_run {
            wanted.push(name.clone());
        }
        // Status counts the pods as they are now.
        let mut active: Vec<&Pod> = node_pods
            .iter()
            .copied()
            .filter(|p| pod_is_active(p))
            .collect();
        oldest_first(&mut active);
        if placement.should_run {
            status.desired_number_scheduled += 1;
            if let Some(first) = active.first() {
                status.current_number_scheduled += 1;
                if pod_is_ready(first) {
                    status.number_ready += 1;
                }
                if pod_is_available(first, min_ready_seconds, now) {
                    *status.number_available.get_or_insert(0) += 1;
                }
                if is_updated(first, &hash) {
                    *status.updated_number_scheduled.get_or_insert(0) += 1;
                }
            }
        } else if !active.is_empty() {
            status.number_misscheduled += 1;
        }
        if being_deleted {
            continue;
        }
        // Upstream `podsShouldBeOnNode`.
        if placement.should_run && node_pods.is_empty() {
            create_on.push(name.clone());
        } else if placement.should_continue_running {
            let mut running: Vec<&Pod> = Vec::new();
            for pod in node_pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                if is_failed(pod) {
                    events.push(EventSpec::warning(
                        "FailedDaemonPod",
                        format!(
                            "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                            pod.namespace().unwrap_or_default(),
                            pod.name_any()
                        ),
                    ));
                    delete.push(to_delete(pod));
                } else {
                    running.push(*pod);
                }
            }
            oldest_first(&mut running);
            if surging {
                // Keep the oldest updated pod and the oldest old pod.
                let mut kept_new = false;
                let mut kept_old = false;
                for pod in running {
                    let keep = if is_updated(pod, &hash) {
                        !std::mem::replace(&mut kept_new, true)
                    } else {
                        !std::mem::replace(&mut kept_old, true)
                    };
                    if !keep {
                        delete.push(to_delete(pod));
                    }
                }
            } else {
                delete.extend(running.iter().skip(1).map(|p| to_delete(p)));
            }
        } else {
            delete.extend(
                node_pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| to_delete(p)),
            );
        }
    }
    let available = status.number_available.unwrap_or(0);
    status.number_available = Some(available);
    status.updated_number_scheduled = Some(status.updated_number_scheduled.unwrap_or(0));
    status.number_unavailable = Some((status.desired_number_scheduled - available).max(0));

    if rolling && !being_deleted {
        let desired = i32::try_from(wanted.len()).unwrap_or(i32::MAX);
        let mut max_unavailable = match &max_unavailable_value {
            Some(v) => scaled_value(v, desired, true)?,
            None if surging => 0,
            None => 1,
        };
        if desired > 0 && max_unavailable == 0 && max_surge == 0 {
            max_unavailable = 1;
        }
        let update = rolling_update(RollingInput {
            wanted: &wanted,
            by_node: &by_node,
            hash: &hash,
            min_ready_seconds,
            now,
            max_surge,
            max_unavailable,
        });
        for pod in update.delete {
            if !delete
                .iter()
                .any(|d| d.uid == pod.uid && d.name == pod.name)
            {
                delete.push(pod);
            }
        }
        create_on.extend(update.create_on);
    }

    let mut live = HashSet::from([revision.name_any()]);
    for pod in &owned {
        if let Some(pod_hash) = pod.labels().get(CONTROLLER_REVISION_HASH_LABEL) {
            for r in &owned_revs {
                if r.labels().get(CONTROLLER_REVISION_HASH_LABEL) == Some(pod_hash) {
                    live.insert(r.name_any());
                }
            }
        }
    }
    let limit = spec.revision_history_limit.unwrap_or(10);
    let prune_revisions = revisions_to_prune(&owned_revs, &live, limit);

    let requeue_after = if min_ready_seconds > 0 {
        owned
            .iter()
            .filter_map(|p| pod_ready_since(p).flatten())
            .map(|since| i64::from(min_ready_seconds) - seconds_between(since, now))
            .filter(|remaining| *remaining > 0)
            .min()
            .map(|s| Duration::from_secs(s.unsigned_abs()))
    } else {
        None
    };
    Ok(DaemonSetPlan {
        revision: change,
        hash,
        create_on,
        delete,
        prune_revisions,
        events,
        status,
        requeue_after,
    })
}

struct RollingInput<'a> {
    wanted: &'a [String],
    by_node: &'a BTreeMap<String, Vec<&'a Pod>>,
    hash: &'a str,
    min_ready_seconds: i32,
    now: Timestamp,
    max_surge: i32,
    max_unavailable: i32,
}

#[derive(Debug, Default)]
struct RollingOutput {
    delete: Vec<PodToDelete>,
    create_on: Vec<String>,
}

/// The old and the updated pod on a node, ignoring pods being deleted; None when there are
/// two of a kind (the duplicate cleanup runs first). Upstream `findUpdatedPodsOnNode`.
fn updated_and_old<'a>(pods: &[&'a Pod], hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let mut new = None;
    let mut old = None;
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(*pod).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// Upstream `rollingUpdate`: without surge, delete old pods while at most maxUnavailable
/// nodes lack an available pod (old unavailable pods go at once); with surge, create the
/// updated pod next to the old one and delete the old one once the new one is available.
fn rolling_update(input: RollingInput<'_>) -> RollingOutput {
    let available = |p: &Pod| pod_is_available(p, input.min_ready_seconds, input.now);
    let mut output = RollingOutput::default();
    if input.max_surge == 0 {
        let mut unavailable = 0;
        let mut allowed = Vec::new();
        let mut candidates = Vec::new();
        for node in input.wanted {
            let pods = input.by_node.get(node).cloned().unwrap_or_default();
            match updated_and_old(&pods, input.hash) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        allowed.push(to_delete(old));
                    } else if unavailable < input.max_unavailable {
                        candidates.push(to_delete(old));
                    }
                }
            }
        }
        let remaining = usize::try_from((input.max_unavailable - unavailable).max(0))
            .unwrap_or(0)
            .min(candidates.len());
        output.delete = allowed;
        output.delete.extend(candidates.into_iter().take(remaining));
        return output;
    }
    let mut surged = 0;
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    for node in input.wanted {
        let pods = input.by_node.get(node).cloned().unwrap_or_default();
        match updated_and_old(&pods, input.hash) {
            None => surged += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) => {
                if !available(old) {
                    allowed.push(node.clone());
                } else if surged < input.max_surge {
                    candidates.push(node.clone());
                }
            }
            Some((Some(new), Some(old))) => {
                if available(new) {
                    output.delete.push(to_delete(old));
                } else {
                    surged += 1;
                }
            }
        }
    }
    let remaining = usize::try_from((input.max_surge - surged).max(0))
        .unwrap_or(0)
        .min(candidates.len());
    output.create_on = allowed;
    output
        .create_on
        .extend(candidates.into_iter().take(remaining));
    output
}

struct Context {
    client: Client,
    options: ControllerOptions,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: PodExpectations,
}

const COMPONENT: &str = "daemonset-controller";

fn ignore_not_found(result: Result<(), kube::Error>) -> Result<(), Error> {
    match result {
        Err(e) if api_error_code(&e) != Some(404) => Err(e.into()),
        _ => Ok(()),
    }
}

async fn sync(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.nodes.wait_until_ready().await;
    let _ = ctx.revisions.wait_until_ready().await;
    let namespace = ds.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", ds.name_any());
    let in_namespace = |ns: Option<&str>| ns == Some(namespace.as_str());
    let pods: Vec<Pod> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| in_namespace(p.metadata.namespace.as_deref()))
        .map(|p| (*p).clone())
        .collect();
    let nodes: Vec<Node> = ctx
        .nodes
        .state()
        .into_iter()
        .map(|n| (*n).clone())
        .collect();
    let revisions: Vec<ControllerRevision> = ctx
        .revisions
        .state()
        .into_iter()
        .filter(|r| in_namespace(r.metadata.namespace.as_deref()))
        .map(|r| (*r).clone())
        .collect();
    let plan = reconcile(&ds, &nodes, &pods, &revisions, Timestamp::now())?;
    let mut status = plan.status.clone();
    let reference = object_reference(ds.as_ref());
    let cr_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);

    let mut revision_ready = true;
    match &plan.revision {
        RevisionChange::None => {}
        RevisionChange::Create(revision) => {
            match cr_api.create(&PostParams::default(), revision).await {
                Ok(_) => {}
                Err(e) if api_error_code(&e) == Some(409) => {
                    // The same name with another template is a hash collision: upstream bumps
                    // collisionCount so the next sync hashes to a new name.
                    let existing = cr_api.get(&revision.name_any()).await?;
                    if !same_data(&existing, revision) {
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        revision_ready = false;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        RevisionChange::Renumber { name, revision } => {
            let patch = serde_json::json!({"revision": revision});
            ignore_not_found(
                cr_api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop),
            )?;
        }
    }

    let satisfied = ctx.expectations.satisfied(&key, &ctx.pods, &namespace);
    if revision_ready && satisfied && (!plan.create_on.is_empty() || !plan.delete.is_empty()) {
        let mut created = HashSet::new();
        let mut deleted = HashSet::new();
        let params = PostParams::default();
        let templates = plan
            .create_on
            .iter()
            .map(|node| daemon_pod(&ds, node, &plan.hash))
            .collect::<Result<Vec<_>, _>>()?;
        let results =
            futures::future::join_all(templates.iter().map(|pod| pod_api.create(&params, pod)))
                .await;
        for result in results {
            match result {
                Ok(pod) => {
                    let name = pod.name_any();
                    let event =
                        EventSpec::normal("SuccessfulCreate", format!("Created pod: {name}"));
                    emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                    created.insert(name);
                }
                Err(error) => {
                    let event =
                        EventSpec::warning("FailedCreate", format!("Error creating: {error}"));
                    emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                }
            }
        }
        for victim in &plan.delete {
            let params = DeleteParams {
                preconditions: victim.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pod_api.delete(&victim.name, &params).await {
                Ok(_) => {
                    let event = EventSpec::normal(
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", victim.name),
                    );
                    emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                    deleted.extend(victim.uid.clone());
                }
                Err(e) if api_error_code(&e) == Some(404) => {}
                Err(error) => {
                    let event =
                        EventSpec::warning("FailedDelete", format!("Error deleting: {error}"));
                    emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                }
            }
        }
        ctx.expectations.expect(&key, created, deleted);
    }

    for name in &plan.prune_revisions {
        ignore_not_found(
            cr_api
                .delete(name, &DeleteParams::default())
                .await
                .map(drop),
        )?;
    }
    for event in &plan.events {
        emit_event(&ctx.client, &reference, event, COMPONENT).await;
    }
    if ds.status.as_ref() != Some(&status) {
        let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({"status": status});
        ignore_not_found(
            ds_api
                .patch_status(
                    &ds.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map(drop),
        )?;
    }
    if !revision_ready {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(ctx.options.resync_period),
    ))
}

/// Runs the DaemonSet controller until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let (pods, pod_writer) = reflector::store();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects();
    let (nodes, node_writer) = reflector::store();
    let node_stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .touched_objects();
    let (revisions, revision_writer) = reflector::store();
    let revision_stream = watcher(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(revision_writer)
    .touched_objects();
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    let concurrency = options.concurrency;
    let context = Arc::new(Context {
        client,
        options,
        pods,
        nodes,
        revisions,
        expectations: PodExpectations::default(),
    });
    let owned_by_daemonset = |meta: &ObjectMeta| {
        let namespace = meta.namespace.clone().unwrap_or_default();
        match controller_of(meta) {
            Some(owner) if owner.kind == "DaemonSet" => {
                vec![ObjectRef::new(&owner.name).within(&namespace)]
            }
            _ => Vec::new(),
        }
    };
    controller
        .watches_stream(pod_stream, move |pod: Pod| {
            owned_by_daemonset(&pod.metadata)
        })
        .watches_stream(revision_stream, move |r: ControllerRevision| {
            owned_by_daemonset(&r.metadata)
        })
        // Any node change may change where every DaemonSet wants pods.
        .watches_stream(node_stream, move |_: Node| {
            sets.state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "daemonset sync failed");
                Action::requeue(Duration::from_secs(5))
            },
            context,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
    };
    use k8s_openapi::api::core::v1::{
        Container, NodeSpec, PodCondition, PodStatus, PodTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn app() -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), "agent".to_string())])
    }

    fn ds(image: &str) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                namespace: Some("default".into()),
                uid: Some("ds-uid".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(app()),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(app()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                update_strategy: Some(DaemonSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDaemonSet {
                        max_unavailable: Some(IntOrString::Int(1)),
                        max_surge: Some(IntOrString::Int(0)),
                    }),
                }),
                revision_history_limit: Some(10),
                min_ready_seconds: None,
            }),
            status: None,
        }
    }

    fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(
                    "kubernetes.io/hostname".to_string(),
                    name.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: None,
        }
    }

    fn tainted(mut n: Node, key: &str, effect: &str) -> Node {
        n.spec
            .get_or_insert_default()
            .taints
            .get_or_insert_default()
            .push(Taint {
                key: key.into(),
                value: None,
                effect: effect.into(),
                time_added: None,
            });
        n
    }

    fn current_hash(set: &DaemonSet) -> String {
        reconcile(set, &[], &[], &[], ts(0)).unwrap().hash
    }

    /// A pod of the set on `node` at the given revision hash, Running and Ready since `ready`.
    fn pod(name: &str, node: &str, hash: &str, ready: Option<i64>, created: i64) -> Pod {
        let mut labels = app();
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.into());
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("{name}-uid")),
                labels: Some(labels),
                creation_timestamp: Some(Time(ts(created))),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "DaemonSet".into(),
                    name: "agent".into(),
                    uid: "ds-uid".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: ready.map(|since| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(since))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn names(delete: &[PodToDelete]) -> Vec<&str> {
        delete.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn creates_one_pod_per_node_and_a_first_revision() {
        let set = ds("a:1");
        let nodes = [node("n1"), node("n2"), node("n3")];
        let plan = reconcile(&set, &nodes, &[], &[], ts(0)).unwrap();
        assert_eq!(plan.create_on, ["n1", "n2", "n3"]);
        let RevisionChange::Create(revision) = &plan.revision else {
            panic!("no revision created: {:?}", plan.revision);
        };
        assert_eq!(revision.revision, 1);
        assert_eq!(revision.name_any(), format!("agent-{}", plan.hash));
        assert_eq!(plan.status.desired_number_scheduled, 3);
        assert_eq!(plan.status.current_number_scheduled, 0);
        assert_eq!(plan.status.number_unavailable, Some(3));
        assert_eq!(plan.status.observed_generation, Some(2));
    }

    #[test]
    fn daemon_pod_targets_its_node_and_tolerates_node_problems() {
        let mut set = ds("a:1");
        if let Some(spec) = set.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            spec.host_network = Some(true);
            spec.affinity = Some(affinity_for_node(None, "elsewhere"));
            spec.tolerations = Some(vec![Toleration {
                key: Some("node.kubernetes.io/not-ready".into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                value: None,
            }]);
        }
        let pod = daemon_pod(&set, "n2", "abc").unwrap();
        assert_eq!(target_node(&pod).as_deref(), Some("n2"));
        let spec = pod.spec.as_ref().unwrap();
        let terms = &spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1, "the old matchFields term is replaced");
        let tolerations = spec.tolerations.as_ref().unwrap();
        let keys: Vec<(&str, &str)> = tolerations
            .iter()
            .map(|t| (t.key.as_deref().unwrap(), t.effect.as_deref().unwrap()))
            .collect();
        assert_eq!(
            keys,
            [
                ("node.kubernetes.io/not-ready", "NoExecute"),
                ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
                ("node.kubernetes.io/network-unavailable", "NoSchedule"),
            ]
        );
        assert!(
            tolerations.iter().all(|t| t.toleration_seconds.is_none()),
            "the template's 300 s not-ready toleration is replaced"
        );
        assert_eq!(pod.labels()[CONTROLLER_REVISION_HASH_LABEL], "abc");
        assert_eq!(pod.labels()[POD_TEMPLATE_GENERATION_LABEL], "2");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
    }

    #[test]
    fn node_selector_affinity_and_taints_decide_placement() {
        let mut set = ds("a:1");
        let labelled = {
            let mut n = node("gpu");
            n.metadata
                .labels
                .get_or_insert_default()
                .insert("accel".into(), "gpu".into());
            n
        };
        if let Some(spec) = set.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            spec.node_selector = Some(BTreeMap::from([("accel".into(), "gpu".into())]));
        }
        let run = |set: &DaemonSet, n: &Node| node_should_run(set, n);
        assert!(run(&set, &labelled).should_run);
        assert_eq!(
            run(&set, &node("plain")),
            Placement {
                should_run: false,
                should_continue_running: false
            }
        );

        let plain = ds("a:1");
        // Cordoned and not-ready nodes are tolerated by the daemon tolerations.
        assert!(
            run(
                &plain,
                &tainted(node("n"), "node.kubernetes.io/unschedulable", "NoSchedule")
            )
            .should_run
        );
        assert!(
            run(
                &plain,
                &tainted(node("n"), "node.kubernetes.io/not-ready", "NoExecute")
            )
            .should_run
        );
        assert_eq!(
            run(&plain, &tainted(node("n"), "dedicated", "NoSchedule")),
            Placement {
                should_run: false,
                should_continue_running: true
            }
        );
        assert_eq!(
            run(&plain, &tainted(node("n"), "dedicated", "NoExecute")),
            Placement {
                should_run: false,
                should_continue_running: false
            }
        );
        assert!(run(&plain, &tainted(node("n"), "dedicated", "PreferNoSchedule")).should_run);

        let mut by_name = ds("a:1");
        if let Some(spec) = by_name.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            spec.affinity = Some(affinity_for_node(None, "n2"));
        }
        assert!(run(&by_name, &node("n2")).should_run);
        assert!(!run(&by_name, &node("n1")).should_run);
    }

    #[test]
    fn misscheduled_duplicate_and_failed_pods_are_deleted() {
        let set = ds("a:1");
        let hash = current_hash(&set);
        let mut failed = pod("failed", "n3", &hash, None, 0);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let mut nodes = vec![node("n1"), node("n2"), node("n3")];
        nodes.push(tainted(node("n4"), "dedicated", "NoExecute"));
        let pods = [
            pod("old", "n1", &hash, Some(0), 0),
            pod("dup", "n1", &hash, Some(0), 5),
            pod("ok", "n2", &hash, Some(0), 0),
            failed,
            pod("evicted", "n4", &hash, Some(0), 0),
        ];
        let plan = reconcile(&set, &nodes, &pods, &[], ts(100)).unwrap();
        assert_eq!(names(&plan.delete), ["dup", "failed", "evicted"]);
        assert!(
            plan.create_on.is_empty(),
            "n3 waits for its failed pod to go"
        );
        assert_eq!(plan.events[0].reason, "FailedDaemonPod");
        assert_eq!(plan.status.desired_number_scheduled, 3);
        assert_eq!(plan.status.current_number_scheduled, 2);
        assert_eq!(plan.status.number_misscheduled, 1);
        assert_eq!(plan.status.number_ready, 2);
        assert_eq!(plan.status.number_available, Some(2));
        assert_eq!(plan.status.updated_number_scheduled, Some(2));
        assert_eq!(plan.status.number_unavailable, Some(1));
    }

    #[test]
    fn pods_of_deleted_nodes_are_left_alone_but_unbound_ones_go() {
        let set = ds("a:1");
        let hash = current_hash(&set);
        let bound = pod("bound", "gone", &hash, Some(0), 0);
        let mut unbound = daemon_pod(&set, "gone", &hash).unwrap();
        unbound.metadata.name = Some("unbound".into());
        unbound.metadata.uid = Some("unbound-uid".into());
        let plan = reconcile(&set, &[node("n1")], &[bound, unbound], &[], ts(0)).unwrap();
        assert_eq!(names(&plan.delete), ["unbound"]);
        assert_eq!(plan.create_on, ["n1"]);
    }

    #[test]
    fn rolling_update_replaces_at_most_max_unavailable() {
        let old = ds("a:1");
        let old_hash = current_hash(&old);
        let new = ds("a:2");
        let nodes = [node("n1"), node("n2"), node("n3")];
        let pods = [
            pod("p1", "n1", &old_hash, Some(0), 0),
            pod("p2", "n2", &old_hash, Some(0), 0),
            pod("p3", "n3", &old_hash, Some(0), 0),
        ];
        let plan = reconcile(&new, &nodes, &pods, &[], ts(100)).unwrap();
        assert_eq!(names(&plan.delete), ["p1"]);
        assert_eq!(plan.status.updated_number_scheduled, Some(0));

        // n1 got its new pod but it is not ready yet: nothing more is deleted.
        let new_hash = plan.hash.clone();
        let pods = [
            pod("q1", "n1", &new_hash, None, 50),
            pod("p2", "n2", &old_hash, Some(0), 0),
            pod("p3", "n3", &old_hash, Some(0), 0),
        ];
        let plan = reconcile(&new, &nodes, &pods, &[], ts(100)).unwrap();
        assert!(plan.delete.is_empty());
        assert_eq!(plan.status.updated_number_scheduled, Some(1));
        assert_eq!(plan.status.number_available, Some(2));

        // An unavailable old pod is replaced regardless of the budget.
        let pods = [
            pod("q1", "n1", &new_hash, None, 50),
            pod("p2", "n2", &old_hash, None, 0),
            pod("p3", "n3", &old_hash, Some(0), 0),
        ];
        let plan = reconcile(&new, &nodes, &pods, &[], ts(100)).unwrap();
        assert_eq!(names(&plan.delete), ["p2"]);
    }

    #[test]
    fn surge_creates_new_pod_before_deleting_old() {
        let old = ds("a:1");
        let old_hash = current_hash(&old);
        let mut new = ds("a:2");
        if let Some(strategy) = new.spec.as_mut().and_then(|s| s.update_strategy.as_mut()) {
            strategy.rolling_update = Some(RollingUpdateDaemonSet {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            });
        }
        let nodes = [node("n1"), node("n2")];
        let pods = [
            pod("p1", "n1", &old_hash, Some(0), 0),
            pod("p2", "n2", &old_hash, Some(0), 0),
        ];
        let plan = reconcile(&new, &nodes, &pods, &[], ts(100)).unwrap();
        assert_eq!(plan.create_on, ["n1"]);
        assert!(plan.delete.is_empty());
        let new_hash = plan.hash.clone();
        let pods = [
            pod("p1", "n1", &old_hash, Some(0), 0),
            pod("q1", "n1", &new_hash, Some(60), 50),
            pod("p2", "n2", &old_hash, Some(0), 0),
        ];
        let plan = reconcile(&new, &nodes, &pods, &[], ts(100)).unwrap();
        assert_eq!(names(&plan.delete), ["p1"]);
        assert_eq!(plan.create_on, ["n2"]);
    }

    #[test]
    fn on_delete_leaves_old_pods() {
        let old = ds("a:1");
        let old_hash = current_hash(&old);
        let mut new = ds("a:2");
        if let Some(spec) = new.spec.as_mut() {
            spec.update_strategy = Some(DaemonSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            });
        }
        let pods = [pod("p1", "n1", &old_hash, Some(0), 0)];
        let plan = reconcile(&new, &[node("n1")], &pods, &[], ts(100)).unwrap();
        assert!(plan.delete.is_empty());
        assert!(plan.create_on.is_empty());
        assert_eq!(plan.status.updated_number_scheduled, Some(0));
    }

    #[test]
    fn history_is_reused_and_pruned_but_revisions_with_pods_stay() {
        let mut set = ds("a:9");
        if let Some(spec) = set.spec.as_mut() {
            spec.revision_history_limit = Some(1);
        }
        let revisions: Vec<ControllerRevision> = (1..=3)
            .map(|i| {
                let t = ds(&format!("a:{i}")).spec.unwrap().template;
                crate::history::new_revision(&set, &t, i, None).unwrap()
            })
            .collect();
        let first_hash = revisions[0].labels()[CONTROLLER_REVISION_HASH_LABEL].clone();
        let pods = [pod("p1", "n1", &first_hash, Some(0), 0)];
        let plan = reconcile(&set, &[node("n1")], &pods, &revisions, ts(0)).unwrap();
        let RevisionChange::Create(revision) = &plan.revision else {
            panic!("expected a new revision");
        };
        assert_eq!(revision.revision, 4);
        // Live: the new revision and the one pod p1 runs; one more may stay (revision 3).
        assert_eq!(plan.prune_revisions, [revisions[1].name_any()]);

        let again = ds("a:3");
        let plan = reconcile(&again, &[node("n1")], &[], &revisions, ts(0)).unwrap();
        assert_eq!(plan.revision, RevisionChange::None);
    }

    #[test]
    fn deleted_set_only_reports_status() {
        let mut set = ds("a:1");
        set.metadata.deletion_timestamp = Some(Time(ts(0)));
        let plan = reconcile(&set, &[node("n1")], &[], &[], ts(0)).unwrap();
        assert!(plan.create_on.is_empty());
        assert_eq!(plan.status.desired_number_scheduled, 1);
    }
}
