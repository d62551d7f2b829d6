//! ReplicaSet controller: keeps `spec.replicas` active pods matching the template. It also
//! runs core/v1 ReplicationControllers, through their ReplicaSet view.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{
    Pod, ReplicationController, ReplicationControllerCondition, ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ControllerOptions;
use crate::common::{
    Error, EventSpec, controller_of, controller_reference, emit_event, object_reference,
    pod_is_active, pod_is_available, pod_is_ready, pod_ready_since, seconds_between,
    selector_is_empty, selector_matches,
};

/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 500;

/// What one sync of a ReplicaSet must do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplicaSetPlan {
    /// Orphan pods matching the selector, to be given a controller reference to this set.
    pub adopt: Vec<String>,
    /// Owned pods whose labels no longer match, to lose their reference to this set.
    pub release: Vec<String>,
    /// Number of pods to create from the template.
    pub create: usize,
    /// Pods to delete, most expendable first.
    pub delete: Vec<PodToDelete>,
    /// Status computed from the pods owned before this sync's changes.
    pub status: ReplicaSetStatus,
    /// When a pod becomes available later (minReadySeconds), sync again then.
    pub requeue_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodToDelete {
    pub name: String,
    pub uid: Option<String>,
}

/// Decides the actions for `rs` given every pod of its namespace.
pub fn reconcile(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> Result<ReplicaSetPlan, Error> {
    let spec = rs
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("replicaset has no spec".into()))?;
    if selector_is_empty(&spec.selector) {
        return Err(Error::InvalidSelector(
            "empty selector would match every pod".into(),
        ));
    }
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let being_deleted = rs.metadata.deletion_timestamp.is_some();
    let mut plan = ReplicaSetPlan::default();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let matches = selector_matches(&spec.selector, &labels)?;
        match controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if matches {
                    owned.push(pod);
                } else {
                    plan.release.push(pod.name_any());
                }
            }
            Some(_) => {}
            None => {
                if matches && !being_deleted && pod.metadata.deletion_timestamp.is_none() {
                    plan.adopt.push(pod.name_any());
                    owned.push(pod);
                }
            }
        }
    }
    let mut active: Vec<&Pod> = owned.iter().copied().filter(|p| pod_is_active(p)).collect();
    let min_ready_seconds = spec.min_ready_seconds.unwrap_or(0);
    plan.status = compute_status(rs, &active, now);
    // Upstream 1.35 (DeploymentReplicaSetTerminatingReplicas, beta, on by default) reports
    // owned pods that are being deleted but have not reached a terminal phase.
    let terminating = owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && !pod_is_terminal(p))
        .count();
    plan.status.terminating_replicas = Some(i32::try_from(terminating).unwrap_or(i32::MAX));
    plan.requeue_after = next_availability(&active, min_ready_seconds, now);

    if !being_deleted {
        let desired = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
        if active.len() < desired {
            plan.create = (desired - active.len()).min(BURST_REPLICAS);
        } else if active.len() > desired {
            let excess = (active.len() - desired).min(BURST_REPLICAS);
            active.sort_by(|a, b| deletion_order(a, b, now));
            plan.delete = active[..excess]
                .iter()
                .map(|p| PodToDelete {
                    name: p.name_any(),
                    uid: p.metadata.uid.clone(),
                })
                .collect();
        }
    }
    Ok(plan)
}

fn compute_status(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let template_labels: BTreeMap<String, String> = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready_seconds = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    ReplicaSetStatus {
        replicas: i32::try_from(active.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: Some(count(&|p: &Pod| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })),
        ready_replicas: Some(count(&pod_is_ready)),
        available_replicas: Some(count(&|p: &Pod| {
            pod_is_available(p, min_ready_seconds, now)
        })),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    }
}

/// Time until the first ready-but-not-yet-available pod becomes available.
fn next_availability(active: &[&Pod], min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    active
        .iter()
        .filter_map(|p| pod_ready_since(p).flatten())
        .map(|since| i64::from(min_ready_seconds) - seconds_between(since, now))
        .filter(|remaining| *remaining > 0)
        .min()
        .map(|s| Duration::from_secs(s.unsigned_abs()))
}

fn pod_is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    }
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Upstream's `ActivePods` ordering (simplified): the pod sorting first is deleted first.
/// Unscheduled < scheduled, Pending < Unknown < Running, not ready < ready, ready for less
/// time < longer, more restarts < fewer, newer < older.
pub fn deletion_order(a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    let scheduled = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| pod_is_ready(a).cmp(&pod_is_ready(b)))
        .then_with(|| {
            // Both ready: the one ready for less time goes first.
            let ready_for = |p: &Pod| {
                pod_ready_since(p)
                    .flatten()
                    .map(|since| seconds_between(since, now))
            };
            match (ready_for(a), ready_for(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restart_count(b).cmp(&restart_count(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            // Missing creation time counts as newest; newer sorts first.
            match (created(a), created(b)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
            }
        })
}

/// Batch sizes for creating `count` pods: 1, 2, 4, … as upstream's `slowStartBatch`, so that a
/// systematic failure (quota, admission) costs one request rather than hundreds.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = 1;
    while remaining > 0 {
        let batch = size.min(remaining);
        batches.push(batch);
        remaining -= batch;
        size *= 2;
    }
    batches
}

/// The pod the set creates: template labels, annotations and spec, `generateName: <rs>-`.
pub fn pod_from_template(rs: &ReplicaSet) -> Result<Pod, Error> {
    let owner = controller_reference(rs)
        .ok_or_else(|| Error::InvalidObject("replicaset has no name or uid".into()))?;
    pod_from_template_owned_by(rs, owner)
}

/// As `pod_from_template`, with `owner` as the pod's controller reference (a
/// ReplicationController's pods point at the controller, not at its ReplicaSet view).
pub fn pod_from_template_owned_by(rs: &ReplicaSet, owner: OwnerReference) -> Result<Pod, Error> {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| Error::InvalidObject("replicaset has no pod template".into()))?;
    let template_meta = template.metadata.unwrap_or_default();
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// The pod's owner references with `owner` added (adoption) or removed (release).
pub fn owner_references_with(
    pod: &Pod,
    add: Option<OwnerReference>,
    remove_uid: Option<&str>,
) -> Vec<OwnerReference> {
    let mut refs: Vec<OwnerReference> = pod
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| Some(r.uid.as_str()) != remove_uid)
        .collect();
    if let Some(owner) = add {
        refs.retain(|r| r.uid != owner.uid);
        refs.push(owner);
    }
    refs
}

/// Creations and deletions issued but not yet seen in the cache, so a lagging cache does not
/// cause a second round of creations (upstream's ControllerExpectations).
#[derive(Debug, Default)]
struct Expectations {
    pending_creates: HashSet<String>,
    pending_deletes: HashSet<String>,
    set_at: Option<Instant>,
    /// Pods of the set the watch delivered, kept while a sync's creations are in flight.
    observed: HashSet<String>,
}

/// Upstream's `ExpectationsTimeout`: give up waiting for the cache after five minutes.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

impl Expectations {
    /// Creations count as seen once the pod watch delivered them (`observe_pod`), even if the
    /// pod is gone again by now; deletions once the cache shows them.
    fn satisfied(&self, pods: &Store<Pod>) -> bool {
        if self
            .set_at
            .is_none_or(|t| t.elapsed() > EXPECTATIONS_TIMEOUT)
        {
            return true;
        }
        let created_seen = self.pending_creates.is_empty();
        let deleted_seen = self.pending_deletes.iter().all(|uid| {
            pods.find(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        });
        created_seen && deleted_seen
    }
}

impl Context {
    /// Records that the watch delivered `pod`: a creation expected by its set is seen.
    fn observe_pod(&self, pod: &Pod, kind: &str) {
        let Some(owner) = controller_of(&pod.metadata).filter(|o| o.kind == kind) else {
            return;
        };
        let name = pod.name_any();
        let mut guard = self.expectations.lock().unwrap_or_else(|e| e.into_inner());
        let expectation = guard.entry(owner.uid.clone()).or_default();
        expectation.pending_creates.remove(&name);
        // Bounded: only names of pods created within a sync in flight matter.
        if expectation.observed.len() < BURST_REPLICAS {
            expectation.observed.insert(name);
        }
    }
}

/// A ReplicationController as the ReplicaSet it is equivalent to: its map selector becomes
/// `matchLabels`. Upstream's ReplicationManager is the ReplicaSet controller run through the
/// same kind of conversion, so both kinds share one decision function.
pub fn replica_set_view(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    let status = rc.status.as_ref().map(|s| ReplicaSetStatus {
        replicas: s.replicas,
        fully_labeled_replicas: s.fully_labeled_replicas,
        ready_replicas: s.ready_replicas,
        available_replicas: s.available_replicas,
        observed_generation: s.observed_generation,
        conditions: s.conditions.as_ref().map(|conditions| {
            conditions
                .iter()
                .map(|c| ReplicaSetCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect()
        }),
        terminating_replicas: None,
    });
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: spec.selector.filter(|s| !s.is_empty()),
                match_expressions: None,
            },
            template: spec.template,
        }),
        status,
    }
}

/// The ReplicationController status equivalent to a ReplicaSet status.
pub fn replication_controller_status(status: &ReplicaSetStatus) -> ReplicationControllerStatus {
    ReplicationControllerStatus {
        replicas: status.replicas,
        fully_labeled_replicas: status.fully_labeled_replicas,
        ready_replicas: status.ready_replicas,
        available_replicas: status.available_replicas,
        observed_generation: status.observed_generation,
        conditions: status.conditions.as_ref().map(|conditions| {
            conditions
                .iter()
                .map(|c| ReplicationControllerCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect()
        }),
    }
}

/// A kind this controller manages: ReplicaSet, or ReplicationController through its view.
trait ManagedSet:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Upstream's event source component for the kind.
    const COMPONENT: &'static str;
    fn replica_set(&self) -> ReplicaSet;
    /// The status to write, when it differs from the stored one.
    fn changed_status(&self, status: &ReplicaSetStatus) -> Option<serde_json::Value>;
    /// The pod selector, for mapping orphan pods to the sets that may adopt them.
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool;
}

impl ManagedSet for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";

    fn replica_set(&self) -> ReplicaSet {
        self.clone()
    }

    fn changed_status(&self, status: &ReplicaSetStatus) -> Option<serde_json::Value> {
        (self.status.as_ref() != Some(status)).then(|| serde_json::json!({ "status": status }))
    }

    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.spec
            .as_ref()
            .is_some_and(|s| selector_matches(&s.selector, labels).unwrap_or(false))
    }
}

impl ManagedSet for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";

    fn replica_set(&self) -> ReplicaSet {
        replica_set_view(self)
    }

    fn changed_status(&self, status: &ReplicaSetStatus) -> Option<serde_json::Value> {
        let status = replication_controller_status(status);
        (self.status.as_ref() != Some(&status)).then(|| serde_json::json!({ "status": status }))
    }

    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|selector| {
                !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
    }
}

struct Context {
    client: Client,
    options: ControllerOptions,
    pods: Store<Pod>,
    expectations: Mutex<HashMap<String, Expectations>>,
}

async fn sync<K: ManagedSet>(set: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let rs = set.replica_set();
    let namespace = rs.namespace().unwrap_or_default();
    // By uid: a set deleted and created again under its name starts without expectations.
    let key = rs.metadata.uid.clone().unwrap_or_default();
    let pods: Vec<Pod> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .map(|p| (*p).clone())
        .collect();
    let plan = reconcile(&rs, &pods, Timestamp::now())?;
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let by_name: HashMap<String, &Pod> = pods.iter().map(|p| (p.name_any(), p)).collect();
    let owner = controller_reference(set.as_ref());
    let rs_uid = rs.metadata.uid.clone();

    for name in plan.adopt.iter().chain(&plan.release) {
        let Some(pod) = by_name.get(name) else {
            continue;
        };
        let adopting = plan.adopt.contains(name);
        let refs = if adopting {
            owner_references_with(pod, owner.clone(), None)
        } else {
            owner_references_with(pod, None, rs_uid.as_deref())
        };
        let patch =
            serde_json::json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
        match pod_api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }

    let satisfied = {
        let guard = ctx.expectations.lock().unwrap_or_else(|e| e.into_inner());
        guard.get(&key).is_none_or(|e| e.satisfied(&ctx.pods))
    };
    if satisfied && (plan.create > 0 || !plan.delete.is_empty()) {
        let reference = object_reference(set.as_ref());
        let mut expectation = Expectations {
            set_at: Some(Instant::now()),
            ..Default::default()
        };
        if plan.create > 0 {
            let owner = owner
                .clone()
                .ok_or_else(|| Error::InvalidObject("set has no name or uid".into()))?;
            let template = pod_from_template_owned_by(&rs, owner)?;
            'batches: for batch in slow_start_batches(plan.create) {
                let params = PostParams::default();
                let results = futures::future::join_all(
                    (0..batch).map(|_| pod_api.create(&params, &template)),
                )
                .await;
                let mut failed = false;
                for result in results {
                    match result {
                        Ok(pod) => {
                            let name = pod.name_any();
                            let event = EventSpec::normal(
                                "SuccessfulCreate",
                                format!("Created pod: {name}"),
                            );
                            emit_event(&ctx.client, &reference, &event, K::COMPONENT).await;
                            // Unless the watch delivered it while the batch was in flight.
                            if ctx.pods.get(&ObjectRef::from_obj(&pod)).is_none() {
                                expectation.pending_creates.insert(name);
                            }
                        }
                        Err(error) => {
                            failed = true;
                            let event = EventSpec::warning(
                                "FailedCreate",
                                format!("Error creating: {error}"),
                            );
                            emit_event(&ctx.client, &reference, &event, K::COMPONENT).await;
                        }
                    }
                }
                if failed {
                    break 'batches;
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
                    emit_event(&ctx.client, &reference, &event, K::COMPONENT).await;
                    if let Some(uid) = &victim.uid {
                        expectation.pending_deletes.insert(uid.clone());
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(error) => {
                    let event =
                        EventSpec::warning("FailedDelete", format!("Error deleting: {error}"));
                    emit_event(&ctx.client, &reference, &event, K::COMPONENT).await;
                }
            }
        }
        let mut guard = ctx.expectations.lock().unwrap_or_else(|e| e.into_inner());
        // Creations the watch delivered while this sync ran were recorded in `observed`.
        let observed = guard.remove(&key).map(|e| e.observed).unwrap_or_default();
        expectation
            .pending_creates
            .retain(|name| !observed.contains(name));
        guard.insert(key, expectation);
    }

    if let Some(patch) = set.changed_status(&plan.status) {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
        match api
            .patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(ctx.options.resync_period),
    ))
}

/// The sets a pod event concerns: its controller if of kind `K`, else (an orphan) every set
/// of its namespace whose selector matches it, which may adopt it.
fn sets_for_pod<K: ManagedSet>(pod: &Pod, sets: &Store<K>) -> Vec<ObjectRef<K>> {
    let namespace = pod.namespace().unwrap_or_default();
    match controller_of(&pod.metadata) {
        Some(owner) if owner.kind == K::kind(&()) => {
            vec![ObjectRef::new(&owner.name).within(&namespace)]
        }
        Some(_) => Vec::new(),
        None => {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            sets.state()
                .iter()
                .filter(|set| set.meta().namespace.as_deref() == Some(namespace.as_str()))
                .filter(|set| set.selects(&labels))
                .map(|set| ObjectRef::from_obj(set.as_ref()))
                .collect()
        }
    }
}

async fn run_controller<K: ManagedSet>(
    controller: Controller<K>,
    pod_events: futures::channel::mpsc::UnboundedReceiver<ObjectRef<K>>,
    context: Arc<Context>,
) {
    let concurrency = context.options.concurrency;
    controller
        .reconcile_on(pod_events)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(
            sync::<K>,
            |_, error, _| {
                tracing::warn!(%error, kind = %K::kind(&()), "sync failed");
                Action::requeue(Duration::from_secs(5))
            },
            context,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Runs the ReplicaSet and ReplicationController controllers, which share one pod cache,
/// until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let pod_api: Api<Pod> = Api::all(client.clone());
    let (pods, writer) = reflector::store();
    let rs_controller = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let rc_controller = Controller::new(
        Api::<ReplicationController>::all(client.clone()),
        watcher::Config::default(),
    );
    let replica_sets = rs_controller.store();
    let replication_controllers = rc_controller.store();
    let context = |pods: Store<Pod>| {
        Arc::new(Context {
            client: client.clone(),
            options: options.clone(),
            pods,
            expectations: Mutex::default(),
        })
    };
    let rs_context = context(pods.clone());
    let rc_context = context(pods);
    let (rs_sender, rs_events) = futures::channel::mpsc::unbounded();
    let (rc_sender, rc_events) = futures::channel::mpsc::unbounded();
    // One pod watch feeds both controllers: each pod change wakes the sets it concerns.
    let pod_events = watcher(pod_api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .for_each({
            let (rs_context, rc_context) = (rs_context.clone(), rc_context.clone());
            move |event| {
                if let Ok(pod) = event {
                    rs_context.observe_pod(&pod, "ReplicaSet");
                    rc_context.observe_pod(&pod, "ReplicationController");
                    for target in sets_for_pod(&pod, &replica_sets) {
                        let _ = rs_sender.unbounded_send(target);
                    }
                    for target in sets_for_pod(&pod, &replication_controllers) {
                        let _ = rc_sender.unbounded_send(target);
                    }
                }
                futures::future::ready(())
            }
        });
    tokio::join!(
        pod_events,
        run_controller(rs_controller, rs_events, rs_context),
        run_controller(rc_controller, rc_events, rc_context),
    );
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn labels(app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), app.to_string())])
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                selector: LabelSelector {
                    match_labels: Some(labels("web")),
                    match_expressions: None,
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels("web")),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
            }),
            status: None,
        }
    }

    struct PodState {
        node: bool,
        phase: &'static str,
        ready_since: Option<i64>,
        created: i64,
    }

    fn pod(name: &str, owner: Option<&str>, app: &str, state: PodState) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("{name}-uid")),
                labels: Some(labels(app)),
                creation_timestamp: Some(Time(ts(state.created))),
                owner_references: owner.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: "x".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: state.node.then(|| "n1".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(state.phase.into()),
                conditions: state.ready_since.map(|since| {
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

    fn running(ready_since: i64) -> PodState {
        PodState {
            node: true,
            phase: "Running",
            ready_since: Some(ready_since),
            created: 0,
        }
    }

    #[test]
    fn scales_up_missing_replicas() {
        let pods = vec![pod("a", Some("rs-uid"), "web", running(0))];
        let plan = reconcile(&rs(3, 0), &pods, ts(100)).unwrap();
        assert_eq!(plan.create, 2);
        assert!(plan.delete.is_empty());
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.ready_replicas, Some(1));
        assert_eq!(plan.status.observed_generation, Some(3));
    }

    #[test]
    fn scale_down_prefers_unscheduled_then_pending_then_unready_then_newest_ready() {
        let pods = vec![
            pod("old-ready", Some("rs-uid"), "web", running(0)),
            pod("young-ready", Some("rs-uid"), "web", running(90)),
            pod(
                "unready",
                Some("rs-uid"),
                "web",
                PodState {
                    node: true,
                    phase: "Running",
                    ready_since: None,
                    created: 0,
                },
            ),
            pod(
                "pending",
                Some("rs-uid"),
                "web",
                PodState {
                    node: true,
                    phase: "Pending",
                    ready_since: None,
                    created: 0,
                },
            ),
            pod(
                "unscheduled",
                Some("rs-uid"),
                "web",
                PodState {
                    node: false,
                    phase: "Pending",
                    ready_since: None,
                    created: 0,
                },
            ),
        ];
        let plan = reconcile(&rs(1, 0), &pods, ts(100)).unwrap();
        let names: Vec<&str> = plan.delete.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["unscheduled", "pending", "unready", "young-ready"]);
        assert_eq!(plan.create, 0);
    }

    #[test]
    fn adopts_matching_orphans_and_releases_mismatched_pods() {
        let pods = vec![
            pod("orphan", None, "web", running(0)),
            pod("relabelled", Some("rs-uid"), "db", running(0)),
            pod("foreign", Some("other-uid"), "web", running(0)),
            pod("unrelated", None, "db", running(0)),
        ];
        let plan = reconcile(&rs(1, 0), &pods, ts(100)).unwrap();
        assert_eq!(plan.adopt, ["orphan"]);
        assert_eq!(plan.release, ["relabelled"]);
        assert_eq!(plan.create, 0);
        assert!(plan.delete.is_empty());
        assert_eq!(plan.status.replicas, 1);
    }

    #[test]
    fn terminating_and_finished_pods_are_replaced() {
        let mut deleting = pod("deleting", Some("rs-uid"), "web", running(0));
        deleting.metadata.deletion_timestamp = Some(Time(ts(50)));
        let done = pod(
            "done",
            Some("rs-uid"),
            "web",
            PodState {
                node: true,
                phase: "Failed",
                ready_since: None,
                created: 0,
            },
        );
        let plan = reconcile(&rs(2, 0), &[deleting, done], ts(100)).unwrap();
        assert_eq!(plan.create, 2);
    }

    #[test]
    fn terminating_pods_are_counted_apart() {
        let mut leaving = pod("leaving", Some("rs-uid"), "web", running(0));
        leaving.metadata.deletion_timestamp = Some(Time(ts(50)));
        let mut finished = pod("finished", Some("rs-uid"), "web", running(0));
        finished.metadata.deletion_timestamp = Some(Time(ts(50)));
        if let Some(status) = finished.status.as_mut() {
            status.phase = Some("Succeeded".into());
        }
        let pods = vec![
            pod("a", Some("rs-uid"), "web", running(0)),
            leaving,
            finished,
        ];
        let plan = reconcile(&rs(1, 0), &pods, ts(100)).unwrap();
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.terminating_replicas, Some(1));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let pods = vec![
            pod("long", Some("rs-uid"), "web", running(0)),
            pod("recent", Some("rs-uid"), "web", running(95)),
        ];
        let plan = reconcile(&rs(2, 10), &pods, ts(100)).unwrap();
        assert_eq!(plan.status.ready_replicas, Some(2));
        assert_eq!(plan.status.available_replicas, Some(1));
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(5)));
    }

    #[test]
    fn fully_labeled_counts_template_labels() {
        let mut extra = rs(1, 0);
        if let Some(meta) = extra
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.metadata.as_mut())
        {
            meta.labels
                .get_or_insert_default()
                .insert("tier".into(), "front".into());
        }
        let plan = reconcile(
            &extra,
            &[pod("a", Some("rs-uid"), "web", running(0))],
            ts(1),
        )
        .unwrap();
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.fully_labeled_replicas, Some(0));
    }

    #[test]
    fn deleted_set_neither_adopts_nor_scales() {
        let mut set = rs(3, 0);
        set.metadata.deletion_timestamp = Some(Time(ts(0)));
        let plan = reconcile(&set, &[pod("orphan", None, "web", running(0))], ts(1)).unwrap();
        assert!(plan.adopt.is_empty());
        assert_eq!(plan.create, 0);
    }

    #[test]
    fn empty_selector_is_rejected() {
        let mut set = rs(1, 0);
        if let Some(spec) = set.spec.as_mut() {
            spec.selector = LabelSelector::default();
        }
        assert!(reconcile(&set, &[], ts(0)).is_err());
    }

    #[test]
    fn slow_start_doubles_batches() {
        assert_eq!(slow_start_batches(10), [1, 2, 4, 3]);
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
    }

    #[test]
    fn template_pod_has_generate_name_labels_and_controller_reference() {
        let pod = pod_from_template(&rs(1, 0)).unwrap();
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.labels, Some(labels("web")));
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", "rs-uid")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
    }

    fn rc(replicas: i32) -> ReplicationController {
        use k8s_openapi::api::core::v1::ReplicationControllerSpec;
        ReplicationController {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rc-uid".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(ReplicationControllerSpec {
                replicas: Some(replicas),
                min_ready_seconds: None,
                selector: Some(labels("web")),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels("web")),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
            }),
            status: None,
        }
    }

    #[test]
    fn replication_controller_reuses_the_replica_set_decision() {
        let set = rc(3);
        let view = replica_set_view(&set);
        let pods = vec![
            pod("owned", Some("rc-uid"), "web", running(0)),
            pod("orphan", None, "web", running(0)),
            pod("other", None, "db", running(0)),
        ];
        let plan = reconcile(&view, &pods, ts(100)).unwrap();
        assert_eq!(plan.adopt, ["orphan"]);
        assert_eq!(plan.create, 1);
        let status = replication_controller_status(&plan.status);
        assert_eq!(status.replicas, 2);
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(2));
        assert_eq!(status.fully_labeled_replicas, Some(2));
        assert_eq!(status.observed_generation, Some(2));
        assert!(set.selects(&labels("web")));
        assert!(!set.selects(&labels("db")));
    }

    #[test]
    fn replication_controller_pods_point_at_the_controller() {
        let set = rc(1);
        let owner = controller_reference(&set).unwrap();
        let pod = pod_from_template_owned_by(&replica_set_view(&set), owner).unwrap();
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.uid.as_str()
            ),
            ("v1", "ReplicationController", "rc-uid")
        );
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
    }

    #[test]
    fn replication_controller_without_selector_manages_nothing() {
        let mut set = rc(1);
        if let Some(spec) = set.spec.as_mut() {
            spec.selector = Some(BTreeMap::new());
        }
        assert!(reconcile(&replica_set_view(&set), &[], ts(0)).is_err());
        assert!(!set.selects(&labels("web")));
    }
}
