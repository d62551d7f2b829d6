//! Pod garbage collector (upstream `pkg/controller/podgc`): force-deletes pods bound to nodes
//! that no longer exist and terminating pods that were never scheduled, and keeps the number
//! of terminated pods under `--terminated-pod-gc-threshold`.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::ControllerOptions;
use crate::common::{Error, api_error_code};

/// Upstream's `gcCheckPeriod`.
pub const GC_PERIOD: Duration = Duration::from_secs(20);
/// Upstream's `--terminated-pod-gc-threshold` default.
pub const DEFAULT_TERMINATED_POD_THRESHOLD: usize = 12500;

/// Why a pod is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Bound to a node that does not exist.
    Orphaned,
    /// Being deleted and never scheduled: no node agent will finish the deletion.
    UnscheduledTerminating,
    /// Terminated, and more terminated pods exist than the threshold allows.
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collect {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub reason: Reason,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn collect(pod: &Pod, reason: Reason) -> Collect {
    Collect {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        uid: pod.metadata.uid.clone(),
        reason,
    }
}

/// One pass of the collector over every pod, given the names of the nodes that exist.
/// `threshold` 0 disables the terminated-pod limit, as upstream.
pub fn plan(pods: &[&Pod], nodes: &HashSet<String>, threshold: usize) -> Vec<Collect> {
    let mut out = Vec::new();
    let mut chosen: HashSet<(String, String)> = HashSet::new();
    if threshold > 0 {
        let mut terminated: Vec<&&Pod> = pods
            .iter()
            .filter(|p| is_terminal(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        if terminated.len() > threshold {
            // Oldest first, as upstream's `byEvictionAndCreationTimestamp` for terminated pods.
            terminated.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let excess = terminated.len() - threshold;
            for pod in terminated.into_iter().take(excess) {
                chosen.insert((pod.namespace().unwrap_or_default(), pod.name_any()));
                out.push(collect(pod, Reason::Terminated));
            }
        }
    }
    for pod in pods {
        if chosen.contains(&(pod.namespace().unwrap_or_default(), pod.name_any())) {
            continue;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty());
        match node {
            Some(node) if !nodes.contains(node) => out.push(collect(pod, Reason::Orphaned)),
            None if pod.metadata.deletion_timestamp.is_some() => {
                out.push(collect(pod, Reason::UnscheduledTerminating))
            }
            _ => {}
        }
    }
    out
}

/// The status patch for an orphaned pod before its deletion: Failed (unless already terminal)
/// with upstream's `DisruptionTarget` condition.
pub fn orphan_status_patch(pod: &Pod, now: Timestamp) -> serde_json::Value {
    let mut status = json!({"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByPodGC",
        "message": "PodGC: node no longer exists",
        "lastTransitionTime": Time(now),
    }]});
    if !is_terminal(pod) {
        status["phase"] = json!("Failed");
    }
    json!({ "status": status })
}

async fn execute(client: &Client, pods: &Store<Pod>, item: &Collect) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &item.namespace);
    if item.reason == Reason::Orphaned {
        // The node cache may lag a node's creation: ask the API server before deleting.
        let node = pods
            .get(&kube::runtime::reflector::ObjectRef::new(&item.name).within(&item.namespace))
            .and_then(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()));
        let Some(node) = node else { return Ok(()) };
        let nodes: Api<Node> = Api::all(client.clone());
        if nodes.get_opt(&node).await?.is_some() {
            return Ok(());
        }
        if let Some(pod) =
            pods.get(&kube::runtime::reflector::ObjectRef::new(&item.name).within(&item.namespace))
        {
            let patch = orphan_status_patch(&pod, Timestamp::now());
            match api
                .patch_status(
                    &item.name,
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await
            {
                Err(e) if api_error_code(&e) == Some(404) => return Ok(()),
                Err(e) => tracing::warn!(%e, pod = %item.name, "cannot mark orphaned pod Failed"),
                Ok(_) => {}
            }
        }
    }
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: item.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&item.name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(api_error_code(&e), Some(404 | 409)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn pass(client: &Client, pods: &Store<Pod>, nodes: &Store<Node>, threshold: usize) {
    let node_names: HashSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
    let all = pods.state();
    let refs: Vec<&Pod> = all.iter().map(|p| p.as_ref()).collect();
    for item in plan(&refs, &node_names, threshold) {
        if let Err(error) = execute(client, pods, &item).await {
            tracing::warn!(%error, pod = %item.name, "pod garbage collection failed");
        }
    }
}

/// Runs the pod garbage collector: a pass every [`GC_PERIOD`] and whenever a node is deleted.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let (pods, pod_writer) = reflector::store();
    let (nodes, node_writer) = reflector::store();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer);
    let node_stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer);
    let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
    let pods_task = pod_stream.for_each(|_| futures::future::ready(()));
    let nodes_task = node_stream.for_each(move |event| {
        if matches!(event, Ok(watcher::Event::Delete(_))) {
            let _ = wake.try_send(());
        }
        futures::future::ready(())
    });
    let threshold = options.terminated_pod_gc_threshold;
    let loop_task = async {
        let _ = pods.wait_until_ready().await;
        let _ = nodes.wait_until_ready().await;
        let mut tick = tokio::time::interval(GC_PERIOD);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = woken.recv() => {}
            }
            pass(&client, &pods, &nodes, threshold).await;
        }
    };
    tokio::select! {
        _ = pods_task => {}
        _ = nodes_task => {}
        _ = loop_task => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, node: Option<&str>, phase: &str, created: i64, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                deletion_timestamp: deleting.then_some(Time(Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn names(items: &[Collect]) -> Vec<(&str, Reason)> {
        items.iter().map(|c| (c.name.as_str(), c.reason)).collect()
    }

    #[test]
    fn pods_of_missing_nodes_are_collected() {
        let a = pod("a", Some("alive"), "Running", 1, false);
        let b = pod("b", Some("gone"), "Running", 1, true);
        let c = pod("c", None, "Pending", 1, false);
        let nodes = HashSet::from(["alive".to_string()]);
        assert_eq!(
            names(&plan(&[&a, &b, &c], &nodes, 0)),
            [("b", Reason::Orphaned)]
        );
    }

    #[test]
    fn unscheduled_terminating_pods_are_collected() {
        let a = pod("a", None, "Pending", 1, true);
        assert_eq!(
            names(&plan(&[&a], &HashSet::new(), 0)),
            [("a", Reason::UnscheduledTerminating)]
        );
    }

    #[test]
    fn oldest_terminated_pods_beyond_the_threshold_go() {
        let nodes = HashSet::from(["n".to_string()]);
        let p1 = pod("p1", Some("n"), "Succeeded", 30, false);
        let p2 = pod("p2", Some("n"), "Failed", 10, false);
        let p3 = pod("p3", Some("n"), "Succeeded", 20, false);
        let running = pod("r", Some("n"), "Running", 0, false);
        assert_eq!(
            names(&plan(&[&p1, &p2, &p3, &running], &nodes, 1)),
            [("p2", Reason::Terminated), ("p3", Reason::Terminated)]
        );
        assert!(plan(&[&p1, &p2, &p3], &nodes, 3).is_empty());
    }

    #[test]
    fn orphan_is_marked_failed_unless_terminal() {
        let running = pod("r", Some("gone"), "Running", 0, false);
        let patch = orphan_status_patch(&running, Timestamp::UNIX_EPOCH);
        assert_eq!(patch["status"]["phase"], "Failed");
        assert_eq!(
            patch["status"]["conditions"][0]["reason"],
            "DeletionByPodGC"
        );
        let done = pod("d", Some("gone"), "Succeeded", 0, false);
        assert!(orphan_status_patch(&done, Timestamp::UNIX_EPOCH)["status"]["phase"].is_null());
    }
}
