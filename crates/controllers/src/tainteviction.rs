//! Taint eviction controller (upstream `pkg/controller/tainteviction`): a pod bound to a node
//! with NoExecute taints it does not tolerate is deleted at once; one that tolerates them for
//! `tolerationSeconds` is deleted that long after the taint was added; one that tolerates them
//! without a limit stays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::ControllerOptions;
use crate::common::{Error, EventSpec, api_error_code, emit_event, object_reference};

const COMPONENT: &str = "taint-eviction-controller";

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// What happens to a pod on a node with NoExecute taints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// No NoExecute taint, or every one tolerated forever.
    Keep,
    /// An untolerated taint, or the toleration ran out.
    DeleteNow,
    /// Tolerated until then: look again at that time.
    DeleteAt(Timestamp),
}

/// Decides the fate of a pod with `tolerations` on a node with `taints`. A taint without
/// `timeAdded` counts from `first_seen` (when this controller first saw the pod so tainted).
pub fn decide(
    tolerations: &[Toleration],
    taints: &[Taint],
    now: Timestamp,
    first_seen: Timestamp,
) -> Eviction {
    let mut deadline: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        // As upstream, the first toleration matching a taint is the one that counts.
        let Some(toleration) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Eviction::DeleteNow;
        };
        let Some(seconds) = toleration.toleration_seconds else {
            continue;
        };
        let added = taint.time_added.as_ref().map_or(first_seen, |t| t.0);
        let until = Timestamp::from_second(added.as_second().saturating_add(seconds.max(0)))
            .unwrap_or(Timestamp::MAX);
        deadline = Some(deadline.map_or(until, |d| d.min(until)));
    }
    match deadline {
        None => Eviction::Keep,
        Some(until) if until <= now => Eviction::DeleteNow,
        Some(until) => Eviction::DeleteAt(until),
    }
}

/// The status patch upstream applies before deleting (`DisruptionTarget`).
pub fn disruption_condition(now: Timestamp) -> serde_json::Value {
    json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": Time(now),
    }]}})
}

fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

struct Context {
    client: Client,
    nodes: Store<Node>,
    /// Pod uid → when the pod was first seen on a NoExecute-tainted node.
    first_seen: Mutex<HashMap<String, Timestamp>>,
}

async fn sync(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        return Ok(Action::await_change());
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let _ = ctx.nodes.wait_until_ready().await;
    let taints = ctx
        .nodes
        .get(&ObjectRef::new(&node_name))
        .map(|n| no_execute_taints(&n))
        .unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let now = Timestamp::now();
    let first_seen = {
        let mut seen = ctx.first_seen.lock().unwrap_or_else(|e| e.into_inner());
        if taints.is_empty() {
            seen.remove(&uid);
            now
        } else {
            *seen.entry(uid.clone()).or_insert(now)
        }
    };
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    match decide(&tolerations, &taints, now, first_seen) {
        Eviction::Keep => Ok(Action::await_change()),
        Eviction::DeleteAt(when) => {
            let wait = when.as_millisecond() - now.as_millisecond();
            Ok(Action::requeue(Duration::from_millis(
                wait.unsigned_abs().max(1),
            )))
        }
        Eviction::DeleteNow => {
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
            let event = EventSpec::normal(
                "TaintManagerEviction",
                format!("Marking for deletion Pod {namespace}/{name}"),
            );
            emit_event(
                &ctx.client,
                &object_reference(pod.as_ref()),
                &event,
                COMPONENT,
            )
            .await;
            match api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Strategic(disruption_condition(now)),
                )
                .await
            {
                Err(e) if api_error_code(&e) == Some(404) => return Ok(Action::await_change()),
                Err(e) => tracing::warn!(%e, pod = %name, "cannot mark the pod DisruptionTarget"),
                Ok(_) => {}
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {}
                Err(e) if matches!(api_error_code(&e), Some(404 | 409)) => {}
                Err(e) => return Err(e.into()),
            }
            ctx.first_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&uid);
            Ok(Action::await_change())
        }
    }
}

/// Runs the taint eviction controller until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let pod_api: Api<Pod> = Api::all(client.clone());
    let node_api: Api<Node> = Api::all(client.clone());
    let (nodes, node_writer) = reflector::store();
    let node_stream = watcher(node_api, watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .touched_objects();
    let controller = Controller::new(pod_api, watcher::Config::default());
    let pods = controller.store();
    let context = Arc::new(Context {
        client,
        nodes,
        first_seen: Mutex::default(),
    });
    controller
        // Only a node with NoExecute taints can make its pods go; pods whose eviction was
        // scheduled look again at their deadline and see a removed taint then.
        .watches_stream(node_stream, move |node: Node| {
            if no_execute_taints(&node).is_empty() {
                return Vec::new();
            }
            let name = node.name_any();
            pods.state()
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect()
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "taint eviction failed");
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

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn taint(key: &str, effect: &str, added: Option<i64>) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: added.map(|s| Time(ts(s))),
        }
    }

    fn toleration(key: &str, effect: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

    #[test]
    fn untolerated_no_execute_taint_evicts_at_once() {
        let taints = [taint(UNREACHABLE, "NoExecute", Some(0))];
        assert_eq!(decide(&[], &taints, ts(1), ts(1)), Eviction::DeleteNow);
        let other = [toleration("example.com/x", "NoExecute", None)];
        assert_eq!(decide(&other, &taints, ts(1), ts(1)), Eviction::DeleteNow);
    }

    #[test]
    fn no_schedule_taints_do_not_evict() {
        let taints = [taint(UNREACHABLE, "NoSchedule", Some(0))];
        assert_eq!(decide(&[], &taints, ts(1), ts(1)), Eviction::Keep);
        assert_eq!(decide(&[], &[], ts(1), ts(1)), Eviction::Keep);
    }

    #[test]
    fn toleration_seconds_count_from_the_taints_time_added() {
        let taints = [taint(UNREACHABLE, "NoExecute", Some(10))];
        let tolerations = [toleration(UNREACHABLE, "NoExecute", Some(300))];
        assert_eq!(
            decide(&tolerations, &taints, ts(20), ts(20)),
            Eviction::DeleteAt(ts(310))
        );
        assert_eq!(
            decide(&tolerations, &taints, ts(310), ts(20)),
            Eviction::DeleteNow
        );
    }

    #[test]
    fn missing_time_added_counts_from_first_sight() {
        let taints = [taint(UNREACHABLE, "NoExecute", None)];
        let tolerations = [toleration(UNREACHABLE, "NoExecute", Some(2))];
        assert_eq!(
            decide(&tolerations, &taints, ts(50), ts(49)),
            Eviction::DeleteAt(ts(51))
        );
    }

    #[test]
    fn tolerated_forever_stays_and_the_shortest_toleration_wins() {
        let taints = [
            taint(UNREACHABLE, "NoExecute", Some(0)),
            taint("node.kubernetes.io/not-ready", "NoExecute", Some(5)),
        ];
        let forever = [Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }];
        assert_eq!(decide(&forever, &taints, ts(100), ts(100)), Eviction::Keep);
        let both = [
            toleration(UNREACHABLE, "NoExecute", Some(60)),
            toleration("node.kubernetes.io/not-ready", "NoExecute", Some(10)),
        ];
        assert_eq!(
            decide(&both, &taints, ts(1), ts(1)),
            Eviction::DeleteAt(ts(15))
        );
        // Zero or negative tolerationSeconds: evicted at once.
        let zero = [toleration(UNREACHABLE, "", Some(-3)), forever[0].clone()];
        assert_eq!(
            decide(&zero, &taints[..1], ts(1), ts(1)),
            Eviction::DeleteNow
        );
    }

    #[test]
    fn equal_operator_compares_values() {
        let mut t = taint("dedicated", "NoExecute", Some(0));
        t.value = Some("gpu".into());
        let tol = Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("gpu".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: None,
        };
        assert!(tolerates(&tol, &t));
        t.value = Some("cpu".into());
        assert!(!tolerates(&tol, &t));
    }

    #[test]
    fn disruption_condition_names_the_taint_manager() {
        let patch = disruption_condition(ts(0));
        assert_eq!(
            patch["status"]["conditions"][0]["reason"],
            "DeletionByTaintManager"
        );
    }
}
