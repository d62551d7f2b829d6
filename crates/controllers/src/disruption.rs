//! Disruption controller (upstream `pkg/controller/disruption`): keeps every
//! PodDisruptionBudget's status, which the API server's eviction subresource reads to decide
//! whether a pod may go.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::ControllerOptions;
use crate::common::{
    Error, EventSpec, controller_of, emit_event, object_reference, pod_is_ready, selector_matches,
};

const COMPONENT: &str = "controllermanager";

/// Upstream's `DeletionTimeout`: an eviction recorded in `status.disruptedPods` whose pod is
/// still not being deleted after this long is forgotten.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

/// The workload objects of a PDB's namespace whose scale gives the expected pod count.
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    pub deployments: Vec<Arc<Deployment>>,
    pub stateful_sets: Vec<Arc<StatefulSet>>,
    pub replication_controllers: Vec<Arc<ReplicationController>>,
}

/// What one sync of a PodDisruptionBudget must do.
#[derive(Debug, Clone, PartialEq)]
pub struct DisruptionPlan {
    /// The status the PDB must have.
    pub status: PodDisruptionBudgetStatus,
    /// Whether `status` differs from the stored one (upstream skips equal writes).
    pub update: bool,
    /// Events on the PDB.
    pub events: Vec<EventSpec>,
    /// Events on pods (by name): evictions that were never followed by a deletion.
    pub pod_events: Vec<(String, EventSpec)>,
    /// When a recorded disruption expires, sync again then.
    pub requeue_after: Option<Duration>,
}

/// Pods a PDB selects, as upstream's `getPodsForPdb`: a null selector selects nothing, an
/// empty one (`{}`) every pod of the namespace.
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    pod.metadata.namespace == pdb.metadata.namespace
        && selector_matches(
            selector,
            pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
        )
        .unwrap_or(false)
}

/// Upstream's `intstr.GetScaledValueFromIntOrPercent`.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, Error> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| {
                    Error::InvalidObject(format!(
                        "invalid value for IntOrString: invalid value {s:?}"
                    ))
                })?;
            let product = percent * i64::from(total);
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            Ok(scaled as i32)
        }
    }
}

/// The scale of the controller of a pod and that controller's uid (upstream's finders:
/// ReplicationController, Deployment through its ReplicaSet, ReplicaSet, StatefulSet).
fn controller_scale(owner: &OwnerReference, workloads: &Workloads) -> Option<(String, i32)> {
    let group = owner.api_version.split_once('/').map_or("", |(g, _)| g);
    match (owner.kind.as_str(), group) {
        ("ReplicationController", "") => workloads
            .replication_controllers
            .iter()
            .find(|rc| rc.metadata.uid.as_deref() == Some(&owner.uid))
            .map(|rc| {
                let replicas = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                (owner.uid.clone(), replicas)
            }),
        ("ReplicaSet", "apps" | "extensions") => {
            let rs = workloads
                .replica_sets
                .iter()
                .find(|rs| rs.metadata.uid.as_deref() == Some(&owner.uid))?;
            match controller_of(&rs.metadata) {
                Some(parent) if parent.kind == "Deployment" => workloads
                    .deployments
                    .iter()
                    .find(|d| d.metadata.uid.as_deref() == Some(&parent.uid))
                    .map(|d| {
                        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        (parent.uid.clone(), replicas)
                    }),
                _ => {
                    let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    Some((owner.uid.clone(), replicas))
                }
            }
        }
        ("StatefulSet", "apps") => workloads
            .stateful_sets
            .iter()
            .find(|ss| ss.metadata.uid.as_deref() == Some(&owner.uid))
            .map(|ss| {
                let replicas = ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                (owner.uid.clone(), replicas)
            }),
        _ => None,
    }
}

/// Upstream's `getExpectedScale`: the sum of the scales of the pods' controllers, and the
/// names of pods without a controller.
fn expected_scale(pods: &[&Pod], workloads: &Workloads) -> Result<(i32, Vec<String>), Error> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let (uid, scale) = controller_scale(owner, workloads).ok_or_else(|| {
            Error::InvalidObject(format!("found no controllers for pod {:?}", pod.name_any()))
        })?;
        scales.insert(uid, scale);
    }
    Ok((scales.values().sum(), unmanaged))
}

/// Upstream's `getExpectedPodCount`: (expected pods, desired healthy, unmanaged pods).
fn expected_pod_count(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    workloads: &Workloads,
) -> Result<(i32, i32, Vec<String>), Error> {
    let spec = pdb.spec.as_ref();
    if let Some(max_unavailable) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let (expected, unmanaged) = expected_scale(pods, workloads)?;
        let max_unavailable = scaled_value(max_unavailable, expected, true)?;
        return Ok((expected, (expected - max_unavailable).max(0), unmanaged));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(min)) => Ok((pods.len() as i32, *min, Vec::new())),
        Some(percent @ IntOrString::String(_)) => {
            let (expected, unmanaged) = expected_scale(pods, workloads)?;
            Ok((expected, scaled_value(percent, expected, true)?, unmanaged))
        }
        None => Ok((0, 0, Vec::new())),
    }
}

/// Upstream's `UpdateDisruptionAllowedCondition` (with `SetStatusCondition`'s transition rule).
fn set_condition(
    status: &mut PodDisruptionBudgetStatus,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let allowed = reason == SUFFICIENT_PODS;
    let wanted = if allowed { "True" } else { "False" };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions
        .iter_mut()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    {
        Some(c) => {
            if c.status != wanted {
                c.status = wanted.into();
                c.last_transition_time = Time(now);
            }
            c.reason = reason.into();
            c.message = message;
            c.observed_generation = status.observed_generation;
        }
        None => conditions.push(Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: wanted.into(),
            reason: reason.into(),
            message,
            observed_generation: status.observed_generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Sets the DisruptionAllowed condition that matches `status.disruptionsAllowed`.
pub fn update_disruption_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    let reason = if status.disruptions_allowed > 0 {
        SUFFICIENT_PODS
    } else {
        INSUFFICIENT_PODS
    };
    set_condition(status, reason, String::new(), now);
}

/// Upstream's `ConditionsAreUpToDate`.
fn conditions_up_to_date(status: &PodDisruptionBudgetStatus) -> bool {
    let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    else {
        return false;
    };
    let want = if status.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    c.observed_generation == status.observed_generation
        && (c.status.as_str(), c.reason.as_str()) == want
}

fn plus(time: Timestamp, duration: Duration) -> Timestamp {
    time.checked_add(duration).unwrap_or(time)
}

/// Decides the status of `pdb` from the pods of its namespace and their controllers.
pub fn reconcile(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    workloads: &Workloads,
    now: Timestamp,
) -> DisruptionPlan {
    let current = pdb.status.clone().unwrap_or_default();
    let generation = pdb.metadata.generation;
    let selected: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| selects(pdb, p))
        .collect();
    let mut events = Vec::new();
    if selected.is_empty() {
        events.push(EventSpec::normal("NoPods", "No matching pods found"));
    }
    let (expected, desired, unmanaged) = match expected_pod_count(pdb, &selected, workloads) {
        Ok(counts) => counts,
        Err(error) => {
            // Upstream's failSafe: no disruption is allowed while the status cannot be computed.
            let message = match &error {
                Error::InvalidObject(m) => m.clone(),
                other => other.to_string(),
            };
            let mut status = current.clone();
            status.disruptions_allowed = 0;
            set_condition(&mut status, SYNC_FAILED, message.clone(), now);
            return DisruptionPlan {
                update: status != current,
                status,
                events: vec![EventSpec::warning(
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {message}"),
                )],
                pod_events: Vec::new(),
                requeue_after: None,
            };
        }
    };
    if !unmanaged.is_empty() {
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .map(selector_text)
            .unwrap_or_default();
        events.push(EventSpec::warning(
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        ));
    }

    // Upstream's buildDisruptedPodMap: keep evictions whose pod is still expected to go.
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    let mut pod_events = Vec::new();
    let mut recheck: Option<Timestamp> = None;
    let recorded = current.disrupted_pods.clone().unwrap_or_default();
    for pod in &selected {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.name_any();
        let Some(when) = recorded.get(&name) else {
            continue;
        };
        let expected_deletion = plus(when.0, DELETION_TIMEOUT);
        if expected_deletion < now {
            let namespace = pdb.metadata.namespace.clone().unwrap_or_default();
            pod_events.push((
                name,
                EventSpec::warning(
                    "NotDeleted",
                    format!(
                        "Pod was expected by PDB {namespace}/{} to be deleted but it wasn't",
                        pdb.name_any()
                    ),
                ),
            ));
        } else {
            recheck = Some(recheck.map_or(expected_deletion, |r| r.min(expected_deletion)));
            disrupted.insert(name, when.clone());
        }
    }

    // Upstream's countHealthyPods: Ready, not being deleted, not about to be evicted.
    let healthy = selected
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .filter(|p| pod_is_ready(p))
        .count() as i32;

    let mut allowed = healthy - desired;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: generation,
        conditions: current.conditions.clone(),
    };
    let unchanged = current.current_healthy == status.current_healthy
        && current.desired_healthy == status.desired_healthy
        && current.expected_pods == status.expected_pods
        && current.disruptions_allowed == status.disruptions_allowed
        && current.disrupted_pods.clone().unwrap_or_default()
            == status.disrupted_pods.clone().unwrap_or_default()
        && current.observed_generation == generation
        && conditions_up_to_date(&current);
    if !unchanged {
        update_disruption_allowed_condition(&mut status, now);
    }
    let requeue_after = recheck.map(|r| {
        let millis = (r.as_millisecond() - now.as_millisecond()).max(0) as u64;
        Duration::from_millis(millis)
    });
    DisruptionPlan {
        status: if unchanged { current } else { status },
        update: !unchanged,
        events,
        pod_events,
        requeue_after,
    }
}

/// A selector as upstream prints one in messages (`&LabelSelector{...}` is Go's; the
/// selector's query form reads better and carries the same information).
fn selector_text(selector: &LabelSelector) -> String {
    crate::common::selector_to_query(selector)
}

struct Context {
    client: Client,
    options: ControllerOptions,
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    stateful_sets: Store<StatefulSet>,
    replication_controllers: Store<ReplicationController>,
}

fn in_namespace<K>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .collect()
}

async fn sync(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = pdb.namespace().unwrap_or_default();
    // Decisions on half-filled caches would report pods without controllers.
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.replica_sets.wait_until_ready().await;
    let _ = ctx.deployments.wait_until_ready().await;
    let _ = ctx.stateful_sets.wait_until_ready().await;
    let _ = ctx.replication_controllers.wait_until_ready().await;
    let pods = in_namespace(&ctx.pods, &namespace);
    let workloads = Workloads {
        replica_sets: in_namespace(&ctx.replica_sets, &namespace),
        deployments: in_namespace(&ctx.deployments, &namespace),
        stateful_sets: in_namespace(&ctx.stateful_sets, &namespace),
        replication_controllers: in_namespace(&ctx.replication_controllers, &namespace),
    };
    let plan = reconcile(&pdb, &pods, &workloads, Timestamp::now());
    if plan.update {
        let reference = object_reference(pdb.as_ref());
        for event in &plan.events {
            emit_event(&ctx.client, &reference, event, COMPONENT).await;
        }
        for (pod_name, event) in &plan.pod_events {
            if let Some(pod) = pods.iter().find(|p| &p.name_any() == pod_name) {
                emit_event(
                    &ctx.client,
                    &object_reference(pod.as_ref()),
                    event,
                    COMPONENT,
                )
                .await;
            }
        }
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
        let mut updated = (*pdb).clone();
        updated.status = Some(plan.status.clone());
        // A full status write guarded by resourceVersion, as upstream's UpdateStatus: the
        // eviction handler writes the same status and neither may lose the other's change.
        match api
            .replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let resync = ctx.options.resync_period;
    Ok(Action::requeue(
        plan.requeue_after.map_or(resync, |r| r.min(resync)),
    ))
}

/// Runs the disruption controller until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    fn reflect<K>(client: &Client) -> (Store<K>, impl futures::Stream<Item = ()> + Send + 'static)
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let (store, writer) = reflector::store();
        let stream = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .map(|_| ());
        (store, stream)
    }
    let (replica_sets, rs_stream) = reflect::<ReplicaSet>(&client);
    let (deployments, deploy_stream) = reflect::<Deployment>(&client);
    let (stateful_sets, ss_stream) = reflect::<StatefulSet>(&client);
    let (replication_controllers, rc_stream) = reflect::<ReplicationController>(&client);

    let (pods, writer) = reflector::store();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let budgets = controller.store();
    let concurrency = options.concurrency;
    let context = Arc::new(Context {
        client,
        options,
        pods,
        replica_sets,
        deployments,
        stateful_sets,
        replication_controllers,
    });
    let controller = controller
        .watches_stream(pod_stream, move |pod: Pod| {
            budgets
                .state()
                .iter()
                .filter(|pdb| selects(pdb, &pod))
                .map(|pdb| ObjectRef::from_obj(pdb.as_ref()))
                .collect::<Vec<_>>()
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "disruption budget sync failed");
                Action::requeue(Duration::from_secs(5))
            },
            context,
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(
        controller,
        rs_stream.for_each(|_| futures::future::ready(())),
        deploy_stream.for_each(|_| futures::future::ready(())),
        ss_stream.for_each(|_| futures::future::ready(())),
        rc_stream.for_each(|_| futures::future::ready(())),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn app() -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), "web".to_string())])
    }

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("budget".into()),
                namespace: Some("default".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                selector: Some(LabelSelector {
                    match_labels: Some(app()),
                    match_expressions: None,
                }),
                unhealthy_pod_eviction_policy: None,
            }),
            status: None,
        }
    }

    fn owner(kind: &str, api_version: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: uid.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn pod(name: &str, ready: bool, owner_uid: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(app()),
                owner_references: owner_uid.map(|uid| vec![owner("ReplicaSet", "apps/v1", uid)]),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    /// A Deployment of `replicas` with its ReplicaSet "rs-1" (whose own replicas differ, so
    /// the test shows which scale counts).
    fn deployment_workloads(replicas: i32) -> Workloads {
        Workloads {
            replica_sets: vec![Arc::new(ReplicaSet {
                metadata: ObjectMeta {
                    name: Some("rs-1".into()),
                    namespace: Some("default".into()),
                    uid: Some("rs-1".into()),
                    owner_references: Some(vec![owner("Deployment", "apps/v1", "deploy-1")]),
                    ..Default::default()
                },
                spec: Some(ReplicaSetSpec {
                    replicas: Some(1),
                    ..Default::default()
                }),
                status: None,
            })],
            deployments: vec![Arc::new(Deployment {
                metadata: ObjectMeta {
                    name: Some("deploy-1".into()),
                    namespace: Some("default".into()),
                    uid: Some("deploy-1".into()),
                    ..Default::default()
                },
                spec: Some(DeploymentSpec {
                    replicas: Some(replicas),
                    ..Default::default()
                }),
                status: None,
            })],
            ..Default::default()
        }
    }

    fn condition(plan: &DisruptionPlan) -> (String, String) {
        let c = plan
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == DISRUPTION_ALLOWED)
            .expect("DisruptionAllowed condition");
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn min_available_int_counts_selected_pods() {
        let pods = vec![
            pod("a", true, Some("rs-1")),
            pod("b", true, Some("rs-1")),
            pod("c", true, Some("rs-1")),
            pod("d", true, Some("rs-1")),
        ];
        let plan = reconcile(
            &pdb(Some(IntOrString::Int(3)), None),
            &pods,
            &Workloads::default(),
            ts(0),
        );
        assert!(plan.update);
        assert_eq!(plan.status.expected_pods, 4);
        assert_eq!(plan.status.desired_healthy, 3);
        assert_eq!(plan.status.current_healthy, 4);
        assert_eq!(plan.status.disruptions_allowed, 1);
        assert_eq!(plan.status.observed_generation, Some(2));
        assert_eq!(condition(&plan), ("True".into(), SUFFICIENT_PODS.into()));
    }

    #[test]
    fn unready_and_terminating_pods_are_not_healthy() {
        let mut terminating = (*pod("c", true, Some("rs-1"))).clone();
        terminating.metadata.deletion_timestamp = Some(Time(ts(0)));
        let pods = vec![
            pod("a", true, Some("rs-1")),
            pod("b", false, Some("rs-1")),
            Arc::new(terminating),
        ];
        let plan = reconcile(
            &pdb(Some(IntOrString::Int(2)), None),
            &pods,
            &Workloads::default(),
            ts(0),
        );
        assert_eq!(plan.status.current_healthy, 1);
        assert_eq!(plan.status.disruptions_allowed, 0);
        assert_eq!(condition(&plan), ("False".into(), INSUFFICIENT_PODS.into()));
    }

    #[test]
    fn percentages_use_the_deployment_scale() {
        let pods = vec![pod("a", true, Some("rs-1")), pod("b", true, Some("rs-1"))];
        // 50% of 5 rounds up to 3 desired: 2 healthy allow nothing.
        let plan = reconcile(
            &pdb(Some(IntOrString::String("50%".into())), None),
            &pods,
            &deployment_workloads(5),
            ts(0),
        );
        assert_eq!(plan.status.expected_pods, 5);
        assert_eq!(plan.status.desired_healthy, 3);
        assert_eq!(plan.status.disruptions_allowed, 0);
    }

    #[test]
    fn max_unavailable_subtracts_from_the_controller_scale() {
        let pods = vec![
            pod("a", true, Some("rs-1")),
            pod("b", true, Some("rs-1")),
            pod("c", true, Some("rs-1")),
        ];
        let plan = reconcile(
            &pdb(None, Some(IntOrString::Int(1))),
            &pods,
            &deployment_workloads(3),
            ts(0),
        );
        assert_eq!(
            (
                plan.status.expected_pods,
                plan.status.desired_healthy,
                plan.status.disruptions_allowed
            ),
            (3, 2, 1)
        );
        // 25% of 3 rounds up to 1 unavailable.
        let plan = reconcile(
            &pdb(None, Some(IntOrString::String("25%".into()))),
            &pods,
            &deployment_workloads(3),
            ts(0),
        );
        assert_eq!(plan.status.desired_healthy, 2);
    }

    #[test]
    fn a_replica_set_without_deployment_gives_its_own_scale() {
        let workloads = Workloads {
            replica_sets: vec![Arc::new(ReplicaSet {
                metadata: ObjectMeta {
                    uid: Some("rs-1".into()),
                    namespace: Some("default".into()),
                    ..Default::default()
                },
                spec: Some(ReplicaSetSpec {
                    replicas: Some(4),
                    ..Default::default()
                }),
                status: None,
            })],
            ..Default::default()
        };
        let plan = reconcile(
            &pdb(None, Some(IntOrString::Int(0))),
            &[pod("a", true, Some("rs-1"))],
            &workloads,
            ts(0),
        );
        assert_eq!(plan.status.expected_pods, 4);
        assert_eq!(plan.status.desired_healthy, 4);
    }

    #[test]
    fn a_pod_with_an_unknown_controller_fails_safe() {
        let mut budget = pdb(None, Some(IntOrString::Int(1)));
        budget.status = Some(PodDisruptionBudgetStatus {
            disruptions_allowed: 3,
            ..Default::default()
        });
        let plan = reconcile(
            &budget,
            &[pod("a", true, Some("gone"))],
            &Workloads::default(),
            ts(0),
        );
        assert_eq!(plan.status.disruptions_allowed, 0);
        assert_eq!(condition(&plan), ("False".into(), SYNC_FAILED.into()));
        assert_eq!(plan.events[0].reason, "CalculateExpectedPodCountFailed");
    }

    #[test]
    fn unmanaged_pods_are_reported() {
        let plan = reconcile(
            &pdb(None, Some(IntOrString::Int(1))),
            &[pod("a", true, None)],
            &Workloads::default(),
            ts(0),
        );
        assert!(plan.events.iter().any(|e| e.reason == "UnmanagedPods"));
    }

    #[test]
    fn disrupted_pods_are_not_healthy_until_they_expire() {
        let mut budget = pdb(Some(IntOrString::Int(1)), None);
        budget.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(BTreeMap::from([("a".to_string(), Time(ts(0)))])),
            ..Default::default()
        });
        let pods = vec![pod("a", true, Some("rs-1")), pod("b", true, Some("rs-1"))];
        let plan = reconcile(&budget, &pods, &Workloads::default(), ts(30));
        assert_eq!(plan.status.current_healthy, 1);
        assert_eq!(plan.status.disruptions_allowed, 0);
        assert!(
            plan.status
                .disrupted_pods
                .as_ref()
                .unwrap()
                .contains_key("a")
        );
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(90)));
        // After two minutes the pod counts again and a NotDeleted event says why.
        let plan = reconcile(&budget, &pods, &Workloads::default(), ts(121));
        assert_eq!(plan.status.current_healthy, 2);
        assert_eq!(plan.status.disruptions_allowed, 1);
        assert_eq!(plan.status.disrupted_pods, None);
        assert_eq!(plan.pod_events[0].0, "a");
        assert_eq!(plan.pod_events[0].1.reason, "NotDeleted");
    }

    #[test]
    fn an_unchanged_status_is_not_written_again() {
        let pods = vec![pod("a", true, Some("rs-1")), pod("b", true, Some("rs-1"))];
        let mut budget = pdb(Some(IntOrString::Int(1)), None);
        let first = reconcile(&budget, &pods, &Workloads::default(), ts(0));
        budget.status = Some(first.status.clone());
        let second = reconcile(&budget, &pods, &Workloads::default(), ts(10));
        assert!(!second.update);
        assert_eq!(second.status, first.status);
    }

    #[test]
    fn selectors_null_selects_nothing_empty_selects_all() {
        let mut budget = pdb(Some(IntOrString::Int(1)), None);
        let p = pod("a", true, None);
        assert!(selects(&budget, &p));
        budget.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
        assert!(selects(&budget, &p));
        budget.spec.as_mut().unwrap().selector = None;
        assert!(!selects(&budget, &p));
        let plan = reconcile(&budget, &[p], &Workloads::default(), ts(0));
        assert_eq!(plan.events[0].reason, "NoPods");
        assert_eq!(plan.status.disruptions_allowed, 0);
    }

    #[test]
    fn scaled_values_round_up() {
        assert_eq!(
            scaled_value(&IntOrString::String("50%".into()), 5, true).unwrap(),
            3
        );
        assert_eq!(
            scaled_value(&IntOrString::String("50%".into()), 5, false).unwrap(),
            2
        );
        assert_eq!(scaled_value(&IntOrString::Int(7), 5, true).unwrap(), 7);
        assert!(scaled_value(&IntOrString::String("half".into()), 5, true).is_err());
    }
}
