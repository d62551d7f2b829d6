//! Deployments, ReplicaSets and their pods on simulated nodes.

use std::time::Duration;

use crate::e2e::harness::{Cluster, ClusterConfig};

#[test]
fn deployment_rolls_out_over_simulated_nodes() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes("sim", 3, &["--start-delay-ms", "100"]);
    let s = cluster.session("deployment-rollout");
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=10",
    ]);
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let nodes = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    let nodes: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!(nodes.len(), 10, "{nodes:?}");
    for node in ["sim-0", "sim-1", "sim-2"] {
        assert!(nodes.contains(&node), "no pod on {node}: {nodes:?}");
    }
    // A deleted pod is replaced.
    let first = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    s.kubectl_ok(&["delete", "pod", &first, "--wait=false"]);
    s.eventually("a replacement pod", Duration::from_secs(60), || {
        let names = s.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        let names: Vec<&str> = names.split_whitespace().collect();
        if names.len() == 10 && !names.contains(&first.as_str()) {
            Ok(())
        } else {
            Err(format!("pods: {names:?}"))
        }
    });
    // Scale down.
    s.kubectl_ok(&["scale", "deployment/web", "--replicas=4"]);
    s.eventually("4 pods", Duration::from_secs(60), || {
        let count = s
            .kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"])
            .lines()
            .count();
        if count == 4 {
            Ok(())
        } else {
            Err(format!("{count} pods"))
        }
    });
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
}
