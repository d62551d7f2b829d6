//! Node lifecycle controller (upstream `pkg/controller/nodelifecycle`): watches every node's
//! Lease in `kube-node-lease` and its Ready heartbeat; a node silent for longer than the grace
//! period gets Ready, MemoryPressure, DiskPressure and PIDPressure `Unknown`, the
//! `node.kubernetes.io/unreachable` NoExecute and NoSchedule taints, and its pods marked not
//! ready. The taints follow the conditions, so they go away when the node reports Ready again.
//!
//! As upstream, freshness is judged by when this controller *observed* a new heartbeat or lease
//! renewal (not by the timestamps the node wrote), so clock skew between nodes and the control
//! plane does not matter, and a restarted controller gives every node a full grace period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::ControllerOptions;
use crate::common::{Error, EventSpec, api_error_code, emit_event, object_reference};

pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Upstream's `--node-monitor-grace-period` default.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(40);
/// Upstream's `--node-startup-grace-period` default.
pub const DEFAULT_STARTUP_GRACE_PERIOD: Duration = Duration::from_secs(60);

/// Conditions the controller sets to Unknown on a silent node (NetworkUnavailable is left alone,
/// as upstream: the network provider owns it).
const SILENT_NODE_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

const COMPONENT: &str = "node-controller";

/// Timings of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// A node that reported before is unhealthy after this long without a heartbeat.
    pub grace_period: Duration,
    /// A node that never reported gets this long from its creation.
    pub startup_grace_period: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            grace_period: DEFAULT_GRACE_PERIOD,
            startup_grace_period: DEFAULT_STARTUP_GRACE_PERIOD,
        }
    }
}

/// What the controller remembers of a node between syncs (upstream's `nodeHealthData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHealth {
    /// The Ready condition's lastHeartbeatTime when last seen.
    pub ready_heartbeat: Option<Timestamp>,
    /// The Lease's renewTime when last seen.
    pub lease_renew: Option<Timestamp>,
    /// When this controller last saw the node show a sign of life.
    pub probe: Timestamp,
}

/// The outcome of one sync of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDecision {
    pub health: NodeHealth,
    /// New `status.conditions`, when the node went silent.
    pub conditions: Option<Vec<NodeCondition>>,
    /// New `spec.taints`, when the controller-managed taints must change.
    pub taints: Option<Vec<Taint>>,
    /// The node is not Ready: its Ready pods must be marked not ready.
    pub mark_pods_not_ready: bool,
    pub event: Option<EventSpec>,
    /// When the node becomes silent if nothing new arrives: sync again then.
    pub requeue_after: Option<Duration>,
}

fn condition<'n>(node: &'n Node, kind: &str) -> Option<&'n NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

fn condition_status<'c>(conditions: &'c [NodeCondition], kind: &str) -> Option<&'c str> {
    conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Updates what is known of the node's liveness with what the node and its Lease show now.
pub fn observe(
    node: &Node,
    lease: Option<&Lease>,
    previous: Option<&NodeHealth>,
    now: Timestamp,
) -> NodeHealth {
    let ready_heartbeat = condition(node, "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let has_ready = condition(node, "Ready").is_some();
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let mut health = match previous {
        // Never reported: the startup grace runs from the node's creation.
        None if !has_ready => NodeHealth {
            ready_heartbeat,
            lease_renew: None,
            probe: created.unwrap_or(now),
        },
        None => NodeHealth {
            ready_heartbeat,
            lease_renew: None,
            probe: now,
        },
        Some(prev) if has_ready && prev.ready_heartbeat != ready_heartbeat => NodeHealth {
            ready_heartbeat,
            lease_renew: prev.lease_renew,
            probe: now,
        },
        Some(prev) => prev.clone(),
    };
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    if let Some(renew) = renew
        && health.lease_renew.is_none_or(|seen| seen < renew)
    {
        health.lease_renew = Some(renew);
        health.probe = now;
    }
    health
}

/// The taints the controller wants on a node, given its (possibly just updated) conditions.
fn wanted_taints(node: &Node, conditions: &[NodeCondition]) -> Vec<(&'static str, &'static str)> {
    let mut wanted = Vec::new();
    match condition_status(conditions, "Ready") {
        Some("False") => {
            wanted.push((TAINT_NOT_READY, "NoExecute"));
            wanted.push((TAINT_NOT_READY, "NoSchedule"));
        }
        // No Ready condition at all: the node registers itself with a not-ready taint.
        Some("Unknown") => {
            wanted.push((TAINT_UNREACHABLE, "NoExecute"));
            wanted.push((TAINT_UNREACHABLE, "NoSchedule"));
        }
        _ => {}
    }
    for (kind, key) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ] {
        if condition_status(conditions, kind) == Some("True") {
            wanted.push((key, "NoSchedule"));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((TAINT_UNSCHEDULABLE, "NoSchedule"));
    }
    wanted
}

fn is_managed(taint: &Taint) -> bool {
    let key = taint.key.as_str();
    match taint.effect.as_str() {
        "NoExecute" => key == TAINT_NOT_READY || key == TAINT_UNREACHABLE,
        "NoSchedule" => [
            TAINT_NOT_READY,
            TAINT_UNREACHABLE,
            TAINT_UNSCHEDULABLE,
            TAINT_MEMORY_PRESSURE,
            TAINT_DISK_PRESSURE,
            TAINT_PID_PRESSURE,
            TAINT_NETWORK_UNAVAILABLE,
        ]
        .contains(&key),
        _ => false,
    }
}

/// The node's taints with the controller-managed ones made to match `wanted`: foreign taints and
/// taints already present keep their place and timeAdded; new ones are appended.
fn reconcile_taints(
    current: &[Taint],
    wanted: &[(&'static str, &'static str)],
    now: Timestamp,
) -> Vec<Taint> {
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !is_managed(t) || wanted.iter().any(|(k, e)| t.key == *k && t.effect == *e))
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == *key && t.effect == *effect) {
            taints.push(Taint {
                key: (*key).into(),
                effect: (*effect).into(),
                value: None,
                time_added: Some(Time(now)),
            });
        }
    }
    taints
}

/// Decides what one sync of `node` does (upstream `tryUpdateNodeHealth` plus the tainting
/// passes), given its Lease, what was remembered of it, and the time.
pub fn decide(
    node: &Node,
    lease: Option<&Lease>,
    previous: Option<&NodeHealth>,
    now: Timestamp,
    settings: &LifecycleSettings,
) -> NodeDecision {
    let health = observe(node, lease, previous, now);
    let ever_reported = condition(node, "Ready").is_some();
    let grace = if ever_reported {
        settings.grace_period
    } else {
        settings.startup_grace_period
    };
    let current: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let silent_for = now.as_millisecond() - health.probe.as_millisecond();
    let mut conditions = current.clone();
    let mut requeue_after = None;
    if silent_for > millis(grace) {
        for kind in SILENT_NODE_CONDITIONS {
            match conditions.iter_mut().find(|c| c.type_ == kind) {
                None => conditions.push(NodeCondition {
                    type_: kind.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                }),
                Some(c) if c.status != "Unknown" => {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(Time(now));
                }
                Some(_) => {}
            }
        }
    } else {
        let remaining = millis(grace) - silent_for;
        // Just past the deadline, since the comparison above is strict.
        requeue_after = Some(Duration::from_millis(remaining.unsigned_abs() + 1));
    }
    let was_ready = condition_status(&current, "Ready") == Some("True");
    let ready = condition_status(&conditions, "Ready").map(str::to_string);
    let ready = ready.as_deref();
    let current_taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let taints = reconcile_taints(&current_taints, &wanted_taints(node, &conditions), now);
    let event = (was_ready && ready != Some("True")).then(|| {
        EventSpec::normal(
            "NodeNotReady",
            format!("Node {} status is now: NodeNotReady", node.name_any()),
        )
    });
    NodeDecision {
        health,
        conditions: (conditions != current).then_some(conditions),
        taints: (taints != current_taints).then_some(taints),
        // A node that never reported has no pods running on it yet to speak of; one that did and
        // is no longer Ready cannot vouch for its pods.
        mark_pods_not_ready: ever_reported && ready != Some("True"),
        event,
        requeue_after,
    }
}

/// The strategic-merge status patch that turns a Ready pod not ready (upstream
/// `MarkPodsNotReady`), or None when it is not Ready.
pub fn pod_not_ready_patch(pod: &Pod, now: Timestamp) -> Option<serde_json::Value> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if ready.status != "True" {
        return None;
    }
    Some(json!({"status": {"conditions": [{
        "type": "Ready",
        "status": "False",
        "lastProbeTime": null,
        "lastTransitionTime": Time(now),
    }]}}))
}

struct Context {
    client: Client,
    options: ControllerOptions,
    leases: Store<Lease>,
    health: Mutex<HashMap<String, NodeHealth>>,
}

async fn sync(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _ = ctx.leases.wait_until_ready().await;
    let name = node.name_any();
    let lease = ctx
        .leases
        .get(&ObjectRef::new(&name).within(NODE_LEASE_NAMESPACE));
    let now = Timestamp::now();
    let settings = &ctx.options.node_lifecycle;
    let decision = {
        let mut memory = ctx.health.lock().unwrap_or_else(|e| e.into_inner());
        let previous = memory.get(&name);
        let decision = decide(&node, lease.as_deref(), previous, now, settings);
        memory.insert(name.clone(), decision.health.clone());
        decision
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut resource_version = node.metadata.resource_version.clone();
    if let Some(conditions) = &decision.conditions {
        let patch = json!({
            "metadata": {"resourceVersion": resource_version},
            "status": {"conditions": conditions},
        });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => resource_version = updated.metadata.resource_version,
            // The node changed meanwhile (perhaps it reported): look again at once.
            Err(e) if api_error_code(&e) == Some(409) => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) if api_error_code(&e) == Some(404) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(taints) = &decision.taints {
        let patch = json!({
            "metadata": {"resourceVersion": resource_version},
            "spec": {"taints": taints},
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if api_error_code(&e) == Some(409) => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) if api_error_code(&e) == Some(404) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(event) = &decision.event {
        emit_event(
            &ctx.client,
            &object_reference(node.as_ref()),
            event,
            COMPONENT,
        )
        .await;
    }
    if decision.mark_pods_not_ready {
        // Asked of the server only for unready nodes, rather than caching every pod here.
        let all: Api<Pod> = Api::all(ctx.client.clone());
        let on_node = all
            .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
            .await?;
        for pod in on_node.items {
            let Some(patch) = pod_not_ready_patch(&pod, now) else {
                continue;
            };
            let pods: Api<Pod> =
                Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
            match pods
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await
            {
                Ok(_) => {
                    let event = EventSpec::warning("NodeNotReady", "Node is not ready");
                    emit_event(&ctx.client, &object_reference(&pod), &event, COMPONENT).await;
                }
                Err(e) if api_error_code(&e) == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Action::requeue(
        decision
            .requeue_after
            .unwrap_or(ctx.options.resync_period)
            .min(ctx.options.resync_period),
    ))
}

/// Runs the node lifecycle controller until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let lease_api: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let (leases, lease_writer) = reflector::store();
    let lease_stream = watcher(lease_api, watcher::Config::default())
        .default_backoff()
        .reflect(lease_writer)
        .touched_objects();
    let concurrency = options.concurrency;
    let context = Arc::new(Context {
        client,
        options,
        leases,
        health: Mutex::default(),
    });
    Controller::new(nodes, watcher::Config::default())
        .watches_stream(lease_stream, |lease: Lease| {
            Some(ObjectRef::<Node>::new(&lease.name_any()))
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "node lifecycle sync failed");
                Action::requeue(Duration::from_secs(2))
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
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn cond(kind: &str, status: &str, heartbeat: i64) -> NodeCondition {
        NodeCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some("KubeletReady".into()),
            message: None,
            last_heartbeat_time: Some(Time(ts(heartbeat))),
            last_transition_time: Some(Time(ts(0))),
        }
    }

    fn node(ready: Option<&str>, heartbeat: i64, taints: Vec<Taint>) -> Node {
        let conditions = ready.map(|status| {
            vec![
                cond("MemoryPressure", "False", heartbeat),
                cond("DiskPressure", "False", heartbeat),
                cond("PIDPressure", "False", heartbeat),
                cond("Ready", status, heartbeat),
            ]
        });
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                uid: Some("u1".into()),
                creation_timestamp: Some(Time(ts(0))),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions,
                ..Default::default()
            }),
        }
    }

    fn lease(renew: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                namespace: Some(NODE_LEASE_NAMESPACE.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(ts(renew))),
                ..Default::default()
            }),
        }
    }

    fn taint(key: &str, effect: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: Some(Time(ts(added))),
        }
    }

    fn settings() -> LifecycleSettings {
        LifecycleSettings::default()
    }

    fn health(probe: i64, heartbeat: i64, renew: Option<i64>) -> NodeHealth {
        NodeHealth {
            ready_heartbeat: Some(ts(heartbeat)),
            lease_renew: renew.map(ts),
            probe: ts(probe),
        }
    }

    #[test]
    fn healthy_node_needs_nothing_and_is_checked_again_at_the_deadline() {
        let n = node(Some("True"), 10, vec![]);
        let d = decide(&n, Some(&lease(10)), None, ts(10), &settings());
        assert_eq!(d.conditions, None);
        assert_eq!(d.taints, None);
        assert!(!d.mark_pods_not_ready);
        assert_eq!(d.health.probe, ts(10));
        assert_eq!(d.requeue_after, Some(Duration::from_millis(40_001)));
    }

    #[test]
    fn renewed_lease_keeps_a_node_alive_without_status_heartbeats() {
        let n = node(Some("True"), 0, vec![]);
        let prev = health(30, 0, Some(30));
        let d = decide(&n, Some(&lease(60)), Some(&prev), ts(65), &settings());
        assert_eq!(d.health.probe, ts(65));
        assert_eq!(d.conditions, None);
    }

    #[test]
    fn silent_node_goes_unknown_and_gets_the_unreachable_taints() {
        let n = node(
            Some("True"),
            0,
            vec![taint("example.com/x", "NoSchedule", 0)],
        );
        let prev = health(0, 0, Some(0));
        let d = decide(&n, Some(&lease(0)), Some(&prev), ts(41), &settings());
        let conditions = d.conditions.expect("conditions change");
        for kind in SILENT_NODE_CONDITIONS {
            let c = conditions.iter().find(|c| c.type_ == kind).unwrap();
            assert_eq!(c.status, "Unknown");
            assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
            assert_eq!(
                c.message.as_deref(),
                Some("Kubelet stopped posting node status.")
            );
            assert_eq!(c.last_transition_time, Some(Time(ts(41))));
            // The heartbeat stays what the node last reported.
            assert_eq!(c.last_heartbeat_time, Some(Time(ts(0))));
        }
        let taints = d.taints.expect("taints change");
        assert_eq!(
            taints,
            vec![
                taint("example.com/x", "NoSchedule", 0),
                taint(TAINT_UNREACHABLE, "NoExecute", 41),
                taint(TAINT_UNREACHABLE, "NoSchedule", 41),
            ]
        );
        assert!(d.mark_pods_not_ready);
        assert_eq!(d.event.unwrap().reason, "NodeNotReady");
        assert_eq!(d.requeue_after, None);
    }

    #[test]
    fn exactly_at_the_grace_period_the_node_is_still_healthy() {
        let n = node(Some("True"), 0, vec![]);
        let prev = health(0, 0, Some(0));
        let d = decide(&n, Some(&lease(0)), Some(&prev), ts(40), &settings());
        assert_eq!(d.conditions, None);
        assert_eq!(d.requeue_after, Some(Duration::from_millis(1)));
    }

    #[test]
    fn shortened_grace_period_is_honoured() {
        let n = node(Some("True"), 0, vec![]);
        let prev = health(0, 0, Some(0));
        let fast = LifecycleSettings {
            grace_period: Duration::from_secs(5),
            ..settings()
        };
        assert!(
            decide(&n, Some(&lease(0)), Some(&prev), ts(6), &fast)
                .conditions
                .is_some()
        );
    }

    #[test]
    fn already_unknown_node_keeps_its_taints_and_transition_time() {
        let mut n = node(
            Some("Unknown"),
            0,
            vec![
                taint(TAINT_UNREACHABLE, "NoExecute", 41),
                taint(TAINT_UNREACHABLE, "NoSchedule", 41),
            ],
        );
        for c in n.status.as_mut().unwrap().conditions.as_mut().unwrap() {
            c.status = "Unknown".into();
        }
        let prev = health(0, 0, Some(0));
        let d = decide(&n, Some(&lease(0)), Some(&prev), ts(100), &settings());
        assert_eq!(d.conditions, None);
        assert_eq!(d.taints, None);
        assert_eq!(d.event, None);
        assert!(d.mark_pods_not_ready);
    }

    #[test]
    fn node_ready_again_loses_the_taints() {
        let n = node(
            Some("True"),
            200,
            vec![
                taint(TAINT_UNREACHABLE, "NoExecute", 41),
                taint("example.com/keep", "NoExecute", 1),
                taint(TAINT_UNREACHABLE, "NoSchedule", 41),
            ],
        );
        let prev = health(0, 0, Some(0));
        let d = decide(&n, Some(&lease(200)), Some(&prev), ts(200), &settings());
        assert_eq!(d.conditions, None);
        assert_eq!(
            d.taints,
            Some(vec![taint("example.com/keep", "NoExecute", 1)])
        );
        assert!(!d.mark_pods_not_ready);
    }

    #[test]
    fn not_ready_node_gets_not_ready_taints_and_swaps_unreachable() {
        let n = node(
            Some("False"),
            50,
            vec![taint(TAINT_UNREACHABLE, "NoExecute", 41)],
        );
        let d = decide(&n, Some(&lease(50)), None, ts(50), &settings());
        assert_eq!(
            d.taints,
            Some(vec![
                taint(TAINT_NOT_READY, "NoExecute", 50),
                taint(TAINT_NOT_READY, "NoSchedule", 50),
            ])
        );
        assert!(d.mark_pods_not_ready);
    }

    #[test]
    fn node_that_never_reported_gets_the_startup_grace_from_creation() {
        let n = node(None, 0, vec![]);
        let d = decide(&n, None, None, ts(30), &settings());
        assert_eq!(d.health.probe, ts(0));
        assert_eq!(d.conditions, None);
        assert_eq!(d.taints, None);
        assert_eq!(d.requeue_after, Some(Duration::from_millis(30_001)));
        let d = decide(&n, None, Some(&d.health), ts(61), &settings());
        let conditions = d.conditions.unwrap();
        assert_eq!(conditions.len(), 4);
        assert!(conditions.iter().all(|c| c.status == "Unknown"
            && c.reason.as_deref() == Some("NodeStatusNeverUpdated")
            && c.message.as_deref() == Some("Kubelet never posted node status.")));
        assert!(!d.mark_pods_not_ready);
    }

    #[test]
    fn first_sight_of_a_reporting_node_grants_a_full_grace_period() {
        // A restarted controller must not condemn nodes whose last report is old.
        let n = node(Some("True"), 0, vec![]);
        let d = decide(&n, Some(&lease(0)), None, ts(500), &settings());
        assert_eq!(d.health.probe, ts(500));
        assert_eq!(d.conditions, None);
    }

    #[test]
    fn fresh_ready_heartbeat_counts_as_a_sign_of_life() {
        let n = node(Some("True"), 50, vec![]);
        let prev = health(0, 0, None);
        let d = decide(&n, None, Some(&prev), ts(60), &settings());
        assert_eq!(d.health.probe, ts(60));
        assert_eq!(d.conditions, None);
    }

    #[test]
    fn pressure_and_cordon_become_no_schedule_taints() {
        let mut n = node(Some("True"), 10, vec![]);
        n.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "True".into();
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        let d = decide(&n, Some(&lease(10)), None, ts(10), &settings());
        assert_eq!(
            d.taints,
            Some(vec![
                taint(TAINT_MEMORY_PRESSURE, "NoSchedule", 10),
                taint(TAINT_UNSCHEDULABLE, "NoSchedule", 10),
            ])
        );
    }

    #[test]
    fn ready_pods_are_patched_not_ready_once() {
        let mut pod = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let patch = pod_not_ready_patch(&pod, ts(5)).unwrap();
        assert_eq!(patch["status"]["conditions"][0]["status"], "False");
        assert_eq!(patch["status"]["conditions"][0]["type"], "Ready");
        pod.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        assert!(pod_not_ready_patch(&pod, ts(6)).is_none());
    }
}
