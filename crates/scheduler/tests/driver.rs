//! The driver against the real API server (in-memory store): binds pods, reports unschedulable
//! ones with the upstream condition and Event, and retries them when a node appears.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use timonel_scheduler::{SchedulerOptions, run};

async fn start_server(dir: &std::path::Path) -> (timonel_apiserver::RunningServer, Client) {
    let mut config = timonel_apiserver::Config::new(dir.to_path_buf());
    config.bind_address = [127, 0, 0, 1].into();
    config.port = 0;
    config.datastore_endpoint = "memory://".into();
    let server = timonel_apiserver::start(config)
        .await
        .expect("server starts");
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig).expect("kubeconfig parses");
    let client_config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("client config");
    let client = Client::try_from(client_config).expect("client");
    (server, client)
}

async fn add_node(client: &Client, name: &str, cpu: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]
    });
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": status
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    // Status may be dropped on create, as upstream does for some resources: set it explicitly.
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .expect("node status patched");
}

async fn add_pod(client: &Client, name: &str, cpu: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "app", "image": "pause",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}
        }]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
}

/// Polls until `check` returns Some, failing after a generous deadline.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn node_name(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_reports_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = start_server(dir.path()).await;
    for i in 0..3 {
        add_node(&client, &format!("node-{i}"), "2").await;
    }
    let scheduler = tokio::spawn(run(client.clone(), SchedulerOptions::default()));
    for i in 0..9 {
        add_pod(&client, &format!("web-{i}"), "100m").await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let bound = eventually("9 pods bound", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let nodes: Vec<String> = list.items.iter().filter_map(node_name).collect();
        (nodes.len() == 9).then_some(nodes)
    })
    .await;
    for i in 0..3 {
        let on_node = bound.iter().filter(|n| **n == format!("node-{i}")).count();
        assert!(
            (1..=5).contains(&on_node),
            "node-{i} got {on_node} of 9 pods"
        );
    }
    let web0 = pods.get("web-0").await.unwrap();
    let scheduled = web0
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled");
    assert_eq!(scheduled.map(|c| c.status).as_deref(), Some("True"));

    add_pod(&client, "huge", "3").await;
    let message = eventually("PodScheduled=False on huge", || async {
        let pod = pods.get("huge").await.ok()?;
        let condition = pod
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
        condition.message
    })
    .await;
    assert_eq!(
        message,
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: \
         3 No preemption victims found for incoming pod.."
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = eventually("FailedScheduling event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("FailedScheduling")
                && e.involved_object.name.as_deref() == Some("huge")
        })
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(
        event.reporting_component.as_deref(),
        Some("default-scheduler")
    );
    assert_eq!(event.message.as_deref(), Some(message.as_str()));

    add_node(&client, "big", "8").await;
    let node = eventually("huge bound once a big node exists", || async {
        node_name(&pods.get("huge").await.ok()?)
    })
    .await;
    assert_eq!(node, "big");

    scheduler.abort();
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_pod_preempts_lower_priority_one() {
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    use kube::api::DeleteParams;

    let dir = tempfile::tempdir().unwrap();
    let (server, client) = start_server(dir.path()).await;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    for (name, value) in [("low", 10), ("high", 1000)] {
        let class: PriorityClass =
            serde_json::from_value(json!({"metadata": {"name": name}, "value": value})).unwrap();
        classes
            .create(&PostParams::default(), &class)
            .await
            .unwrap();
    }
    add_node(&client, "only", "1").await;
    let scheduler = tokio::spawn(run(client.clone(), SchedulerOptions::default()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let prioritized = |name: &str, class: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"priorityClassName": class, "containers": [{
                "name": "app", "image": "pause",
                "resources": {"requests": {"cpu": "800m"}}
            }]}
        }))
        .unwrap()
    };
    pods.create(&PostParams::default(), &prioritized("victim", "low"))
        .await
        .unwrap();
    eventually("victim bound", || async {
        node_name(&pods.get("victim").await.ok()?)
    })
    .await;

    pods.create(&PostParams::default(), &prioritized("urgent", "high"))
        .await
        .unwrap();
    // The scheduler deletes the victim; finish a graceful deletion as a kubelet would.
    eventually("victim evicted", || async {
        match pods.get_opt("victim").await.ok()? {
            None => Some(()),
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                let _ = pods
                    .delete("victim", &DeleteParams::default().grace_period(0))
                    .await;
                None
            }
            Some(_) => None,
        }
    })
    .await;
    let node = eventually("urgent bound", || async {
        node_name(&pods.get("urgent").await.ok()?)
    })
    .await;
    assert_eq!(node, "only");

    scheduler.abort();
    server.shutdown();
}
