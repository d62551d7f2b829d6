//! Decisions per second of the pure scheduling core, in upstream scheduler_perf's
//! SchedulingBasic shape (nodes of 4 cpu / 32Gi / 110 pods; pods requesting 100m / 500Mi).
//!
//! cargo run --release -p timonel-scheduler --example scheduler_bench

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use timonel_scheduler::{Snapshot, schedule};

fn resources(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn node(i: usize) -> Node {
    let name = format!("node-{i}");
    Node {
        metadata: ObjectMeta {
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.clone(),
            )])),
            name: Some(name),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(resources(&[
                ("cpu", "4"),
                ("memory", "32Gi"),
                ("pods", "110"),
            ])),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn pod(i: usize) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("pod-{i}")),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(resources(&[("cpu", "100m"), ("memory", "500Mi")])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

fn run(num_nodes: usize, num_pods: usize) {
    let mut snapshot = Snapshot::new((0..num_nodes).map(node), Vec::new());
    let pods: Vec<Pod> = (0..num_pods).map(pod).collect();
    let started = Instant::now();
    let mut failed = 0usize;
    for (i, p) in pods.iter().enumerate() {
        match schedule(p, &snapshot, i as u64 ^ 0x5eed) {
            Ok(node) => snapshot.assume_pod(p, &node),
            Err(_) => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    let max_per_node = snapshot
        .nodes()
        .iter()
        .map(|n| n.pods.len())
        .max()
        .unwrap_or(0);
    println!(
        "{num_pods} pods on {num_nodes} nodes: {:.0} decisions/s ({:.1} µs each, {:.2} s), \
         {failed} unschedulable, max {max_per_node} pods per node",
        num_pods as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / num_pods as f64,
        elapsed.as_secs_f64(),
    );
}

fn main() {
    run(1_000, 10_000);
    run(5_000, 50_000);
}
