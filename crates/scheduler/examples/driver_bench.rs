//! End-to-end pods bound per second through the driver against an in-process API server
//! (in-memory store): create N pods, count bindings observed by watch.
//!
//! cargo run --release -p timonel-scheduler --example driver_bench -- [nodes] [pods]

use std::collections::HashSet;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;
use timonel_scheduler::{SchedulerOptions, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let num_nodes: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let num_pods: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    // "precreate": create every pod before the scheduler starts, to time the scheduler alone.
    let precreate = args.next().as_deref() == Some("precreate");
    let dir = tempfile::tempdir()?;
    let mut config = timonel_apiserver::Config::new(dir.path().to_path_buf());
    config.bind_address = [127, 0, 0, 1].into();
    config.port = 0;
    config.datastore_endpoint = "memory://".into();
    let server = timonel_apiserver::start(config).await?;
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?,
    )?;

    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({
        "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
        "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]
    });
    futures::stream::iter(0..num_nodes)
        .map(|i| {
            let nodes = nodes.clone();
            let status = status.clone();
            async move {
                let name = format!("node-{i}");
                let node: Node = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                    "status": status
                }))?;
                nodes.create(&PostParams::default(), &node).await?;
                nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": status})),
                    )
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;

    let mut scheduler = None;
    if !precreate {
        scheduler = Some(tokio::spawn(run(
            client.clone(),
            SchedulerOptions::default(),
        )));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let watch_pods = pods.clone();
    let counter = tokio::spawn(async move {
        let mut bound = HashSet::new();
        let mut stream = watcher::watcher(watch_pods, watcher::Config::default()).boxed();
        while let Some(event) = stream.try_next().await? {
            if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = event
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
            {
                bound.insert(p.metadata.name.unwrap_or_default());
                if bound.len() == num_pods {
                    return anyhow::Ok(Instant::now());
                }
            }
        }
        anyhow::bail!("watch ended")
    });

    let started = Instant::now();
    futures::stream::iter(0..num_pods)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("pod-{i}")},
                    "spec": {"containers": [{"name": "app", "image": "pause",
                        "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}
                }))?;
                pods.create(&PostParams::default(), &pod).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await?;
    let created = started.elapsed();
    let started = if precreate {
        scheduler = Some(tokio::spawn(run(
            client.clone(),
            SchedulerOptions::default(),
        )));
        Instant::now()
    } else {
        started
    };
    let finished = counter.await??;
    let elapsed = finished - started;
    println!(
        "{num_pods} pods on {num_nodes} nodes: created in {:.2} s, all bound after {:.2} s: {:.0} pods/s",
        created.as_secs_f64(),
        elapsed.as_secs_f64(),
        num_pods as f64 / elapsed.as_secs_f64()
    );
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    server.shutdown();
    Ok(())
}
