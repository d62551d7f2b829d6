//! Simulated nodes (like KWOK): plain API clients that register Nodes, keep their Leases and
//! status fresh, and play the node agent's part for pods bound to them — Running and Ready
//! after a delay, Succeeded after a run time for pods that do not restart, gone when deleted.
//! Killing the process makes its nodes go silent, which is how a node's death is simulated.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// What the simulated nodes look like and how fast their pods move.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub count: usize,
    pub prefix: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// Delay from binding to Running and Ready.
    pub start_delay: Duration,
    /// How long a pod with restartPolicy Never/OnFailure runs before it succeeds.
    pub run_time: Duration,
    /// How often Leases are renewed (upstream kubelets: 10 s).
    pub lease_interval: Duration,
    /// How often node status is reported (upstream: at least every 5 minutes, here faster).
    pub status_interval: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            count: 3,
            prefix: "sim".into(),
            cpu: "8".into(),
            memory: "32Gi".into(),
            pods: 110,
            start_delay: Duration::from_millis(500),
            run_time: Duration::from_secs(2),
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(60),
        }
    }
}

const FIELD_MANAGER: &str = "timonel-sim";

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn micro_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn node_names(options: &SimOptions) -> Vec<String> {
    (0..options.count)
        .map(|i| format!("{}-{i}", options.prefix))
        .collect()
}

/// The Node object of one simulated node.
pub fn node_object(name: &str, index: usize, options: &SimOptions) -> Value {
    let capacity = json!({
        "cpu": options.cpu,
        "memory": options.memory,
        "pods": options.pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "timonel-sim",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": format!("10.99.{}.{}", index / 250, index % 250 + 1)},
                {"type": "Hostname", "address": name},
            ],
            "conditions": node_conditions(),
            "nodeInfo": {
                "kernelVersion": "simulated",
                "osImage": "timonel simulated node",
                "containerRuntimeVersion": "sim://0.1.0",
                "kubeletVersion": "v1.35.0-timonel-sim",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "", "systemUUID": "", "bootID": "",
            },
        },
    })
}

/// The healthy conditions a simulated node reports. A condition whose status is unchanged
/// from `current` keeps its lastTransitionTime, as a kubelet's does.
fn node_conditions_since(current: Option<&Node>) -> Value {
    let t = now();
    let previous = |kind: &str, status: &str| {
        current
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind && c.status == status))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|time| serde_json::to_value(time).unwrap_or_else(|_| json!(t)))
    };
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        let since = previous(kind, status).unwrap_or_else(|| json!(t));
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": t, "lastTransitionTime": since})
    };
    json!([
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

fn node_conditions() -> Value {
    node_conditions_since(None)
}

/// Whether the node object shows Ready=True (the node lifecycle controller may have set it to
/// Unknown while this process was silent).
fn shows_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn register(client: &Client, options: &SimOptions) -> anyhow::Result<()> {
    // Only status is ever written for an existing node: its spec (taints, podCIDR) belongs to
    // the control plane, which lifts the taints once the node reports Ready again.
    let nodes: Api<Node> = Api::all(client.clone());
    for (i, name) in node_names(options).iter().enumerate() {
        let node: Node = serde_json::from_value(node_object(name, i, options))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        // Report status (create ignores nothing for nodes, but a re-registered node needs it).
        heartbeat_status(&nodes, name, None).await?;
    }
    Ok(())
}

async fn heartbeat_status(
    nodes: &Api<Node>,
    name: &str,
    current: Option<&Node>,
) -> anyhow::Result<()> {
    let patch = json!({"status": {"conditions": node_conditions_since(current)}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

async fn renew_leases(client: &Client, options: &SimOptions) -> anyhow::Result<()> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-node-lease");
    for name in node_names(options) {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()},
        });
        leases
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(lease),
            )
            .await?;
    }
    Ok(())
}

/// Status of a pod that started on a simulated node.
fn running_status(pod: &Pod, host_ip: &str, pod_ip: &str) -> Value {
    let t = now();
    let containers: Vec<Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                   "ready": true, "started": true, "restartCount": 0,
                   "state": {"running": {"startedAt": t}}})
        })
        .collect();
    json!({"status": {
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": t,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "Ready", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
        ],
        "containerStatuses": containers,
    }})
}

fn succeeded_status(pod: &Pod) -> Value {
    let t = now();
    let containers: Vec<Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                   "ready": false, "started": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": t, "finishedAt": t}}})
        })
        .collect();
    json!({"status": {
        "phase": "Succeeded",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": t},
        ],
        "containerStatuses": containers,
    }})
}

/// Runs the simulated nodes until the future is dropped.
pub async fn run(client: Client, options: SimOptions) -> anyhow::Result<()> {
    register(&client, &options).await?;
    renew_leases(&client, &options).await?;
    let names: Arc<HashSet<String>> = Arc::new(node_names(&options).into_iter().collect());
    let (node_store, node_writer) = reflector::store();
    let node_watch = watcher(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().labels("type=timonel-sim"),
    )
    .default_backoff()
    .reflect(node_writer)
    .for_each(|_| futures::future::ready(()));
    let unready: UnreadyPods = Arc::default();
    let heartbeat = {
        let client = client.clone();
        let options = options.clone();
        let unready = unready.clone();
        async move {
            let nodes: Api<Node> = Api::all(client.clone());
            let mut lease_tick = tokio::time::interval(options.lease_interval);
            let mut status_tick = tokio::time::interval(options.status_interval);
            loop {
                tokio::select! {
                    _ = lease_tick.tick() => {
                        if let Err(e) = renew_leases(&client, &options).await {
                            tracing::warn!("lease renewal: {e}");
                        }
                        recover(&client, &nodes, &node_store, &options, &unready).await;
                    }
                    _ = status_tick.tick() => {
                        for name in node_names(&options) {
                            let current = node_store.get(&ObjectRef::new(&name));
                            if let Err(e) = heartbeat_status(&nodes, &name, current.as_deref()).await {
                                tracing::warn!("node status of {name}: {e}");
                            }
                        }
                    }
                }
            }
        }
    };
    let pods_loop = watch_pods(client.clone(), options.clone(), names, unready);
    tokio::select! {
        _ = heartbeat => Ok(()),
        _ = node_watch => Ok(()),
        result = pods_loop => result,
    }
}

/// Running pods of these nodes that someone marked not ready (the node lifecycle controller
/// does while a node is silent), by "namespace/name", with the node they are bound to.
type UnreadyPods = Arc<Mutex<HashMap<String, (String, Pod)>>>;

/// What a kubelet does after a silence: report its node's status at once when the object no
/// longer shows Ready (rather than at the next status interval), and report the pods it runs as
/// ready again once the node is Ready.
async fn recover(
    client: &Client,
    nodes: &Api<Node>,
    node_store: &Store<Node>,
    options: &SimOptions,
    unready: &UnreadyPods,
) {
    let mut ready_nodes = HashSet::new();
    for name in node_names(options) {
        let Some(node) = node_store.get(&ObjectRef::new(&name)) else {
            continue;
        };
        if shows_ready(&node) {
            ready_nodes.insert(name);
        } else if let Err(e) = heartbeat_status(nodes, &name, Some(&node)).await {
            tracing::warn!("node status of {name}: {e}");
        }
    }
    let to_restore: Vec<(String, Pod)> = unready
        .lock()
        .await
        .iter()
        .filter(|(_, (node, _))| ready_nodes.contains(node))
        .map(|(key, (_, pod))| (key.clone(), pod.clone()))
        .collect();
    for (key, pod) in to_restore {
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let t = now();
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
        ]}});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {
                unready.lock().await.remove(&key);
            }
            Err(e) => tracing::warn!("reporting pod {key} ready: {e}"),
        }
    }
}

/// A Running pod whose Ready condition is not True and that is not going away.
fn needs_ready_again(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod.metadata.deletion_timestamp.is_none()
        && status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status != "True")
}

async fn watch_pods(
    client: Client,
    options: SimOptions,
    names: Arc<HashSet<String>>,
    unready: UnreadyPods,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::all(client.clone());
    // Pods already being handled, so repeated events do not start duplicate work.
    let started: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut stream = watcher(pods.clone(), watcher::Config::default()).boxed();
    let mut next_ip: u32 = 0;
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(watcher::Event::Delete(pod)) => {
                let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
                unready.lock().await.remove(&key);
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("pod watch: {e}");
                continue;
            }
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if !names.contains(&node) {
            continue;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        {
            let key = format!("{namespace}/{name}");
            let mut unready = unready.lock().await;
            if needs_ready_again(&pod) {
                unready.insert(key, (node.clone(), pod.clone()));
            } else {
                unready.remove(&key);
            }
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        if pod.metadata.deletion_timestamp.is_some() {
            // Containers stop at once on a simulated node: finish the graceful deletion.
            let api = api.clone();
            tokio::spawn(async move {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
            });
            continue;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase != "Pending" && !phase.is_empty() {
            continue;
        }
        let key = format!(
            "{namespace}/{name}/{}",
            pod.metadata.uid.clone().unwrap_or_default()
        );
        if !started.lock().await.insert(key.clone()) {
            continue;
        }
        next_ip = next_ip.wrapping_add(1);
        let pod_ip = format!("10.42.{}.{}", (next_ip / 250) % 250, next_ip % 250 + 1);
        let host_ip = format!("10.99.0.{}", (next_ip % 200) + 1);
        let options = options.clone();
        let started = started.clone();
        tokio::spawn(async move {
            tokio::time::sleep(options.start_delay).await;
            let params = PatchParams::default();
            if let Err(e) = api
                .patch_status(
                    &name,
                    &params,
                    &Patch::Merge(running_status(&pod, &host_ip, &pod_ip)),
                )
                .await
            {
                tracing::warn!("starting pod {name}: {e}");
                started.lock().await.remove(&key);
                return;
            }
            let restart = pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.clone())
                .unwrap_or_else(|| "Always".into());
            if restart != "Always" {
                tokio::time::sleep(options.run_time).await;
                if let Err(e) = api
                    .patch_status(&name, &params, &Patch::Merge(succeeded_status(&pod)))
                    .await
                {
                    tracing::warn!("completing pod {name}: {e}");
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_named_by_prefix_and_carry_capacity() {
        let options = SimOptions {
            count: 2,
            prefix: "n".into(),
            ..SimOptions::default()
        };
        assert_eq!(node_names(&options), ["n-0", "n-1"]);
        let node = node_object("n-1", 1, &options);
        assert_eq!(node["status"]["allocatable"]["pods"], "110");
        assert_eq!(node["status"]["conditions"][3]["type"], "Ready");
        assert_eq!(node["status"]["addresses"][0]["address"], "10.99.0.2");
        // The object is a valid Node.
        let _: Node = serde_json::from_value(node).unwrap();
    }

    #[test]
    fn running_status_reports_every_container_ready() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
        }))
        .unwrap();
        let status = running_status(&pod, "10.99.0.1", "10.42.0.5");
        assert_eq!(status["status"]["phase"], "Running");
        assert_eq!(
            status["status"]["containerStatuses"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(succeeded_status(&pod)["status"]["phase"], "Succeeded");
    }
}
