//! Node lifecycle on simulated nodes: a silent node becomes NotReady and unreachable, its pods
//! are evicted after their tolerationSeconds and recreated elsewhere, a node that comes back
//! loses its taints, pods of a deleted node are collected, and every node has a pod CIDR.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::e2e::harness::{Cluster, ClusterConfig, Session, Store, deployment};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";

fn node_taints(s: &Session, node: &str) -> Vec<(String, String)> {
    let node = s.get_json(&["node", node]);
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or_default().to_string(),
                t["effect"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn ready_status(s: &Session, node: &str) -> String {
    s.jsonpath(
        &format!("node/{node}"),
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    )
}

/// Node names of the app's pods that are not being deleted.
fn live_pod_nodes(s: &Session) -> Vec<String> {
    let pods = s.get_json(&["pods", "-l", "app=web"]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn pods_on(s: &Session, node: &str) -> Vec<Value> {
    let pods = s.get_json(&["pods", "-l", "app=web"]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["spec"]["nodeName"] == node)
        .cloned()
        .collect()
}

fn default_toleration_seconds(pod: &Value, key: &str) -> Option<i64> {
    pod["spec"]["tolerations"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key && t["effect"] == "NoExecute" && t["operator"] == "Exists")?
        ["tolerationSeconds"]
        .as_i64()
}

#[test]
fn silent_node_is_tainted_its_pods_evicted_and_collected_after_deletion() {
    let cluster = Cluster::start(
        ClusterConfig::control_plane()
            .server_arg("--node-monitor-grace-period")
            .server_arg("5s")
            .server_arg("--default-unreachable-toleration-seconds")
            .server_arg("2")
            .server_arg("--default-not-ready-toleration-seconds")
            .server_arg("2"),
    );
    let sim_flags = ["--start-delay-ms", "100", "--lease-interval-seconds", "1"];
    let _a = cluster.sim_nodes("a", 2, &sim_flags);
    let b = cluster.sim_nodes("b", 1, &sim_flags);
    let s = cluster.session("node-lifecycle");

    s.apply_stdin(&deployment("web", 6, "nginx:1.27"));
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let nodes = live_pod_nodes(&s);
    assert_eq!(nodes.len(), 6, "{nodes:?}");
    for node in ["a-0", "a-1", "b-0"] {
        assert!(
            nodes.iter().any(|n| n == node),
            "no pod on {node}: {nodes:?}"
        );
    }
    // The flags shortened the default tolerations admission adds.
    let pod = &pods_on(&s, "b-0")[0];
    assert_eq!(
        default_toleration_seconds(pod, UNREACHABLE),
        Some(2),
        "{pod}"
    );
    assert_eq!(default_toleration_seconds(pod, NOT_READY), Some(2), "{pod}");

    // A node that stops and comes back loses its taints through the controller.
    let c = cluster.sim_nodes("c", 1, &sim_flags);

    // Every node has its own /24 inside the cluster CIDR.
    s.eventually("every node has a pod CIDR", Duration::from_secs(30), || {
        let list = s.get_json(&["nodes"]);
        let mut seen = HashSet::new();
        for node in list["items"].as_array().into_iter().flatten() {
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            let cidr = node["spec"]["podCIDR"].as_str().unwrap_or_default();
            let octets: Vec<&str> = cidr.split(['.', '/']).collect();
            if octets.len() != 5 || octets[..2] != ["10", "42"] || octets[3..] != ["0", "24"] {
                return Err(format!("{name} has podCIDR {cidr:?}"));
            }
            if node["spec"]["podCIDRs"] != serde_json::json!([cidr]) {
                return Err(format!("{name} has podCIDRs {}", node["spec"]["podCIDRs"]));
            }
            if !seen.insert(cidr.to_string()) {
                return Err(format!("{cidr} is given twice"));
            }
        }
        if seen.len() == 4 {
            Ok(())
        } else {
            Err(format!("{} nodes with a CIDR", seen.len()))
        }
    });

    b.stop();
    c.stop();
    for node in ["b-0", "c-0"] {
        s.eventually(
            &format!("{node} unreachable"),
            Duration::from_secs(40),
            || {
                let taints = node_taints(&s, node);
                let status = ready_status(&s, node);
                let wanted = [
                    (UNREACHABLE.to_string(), "NoExecute".to_string()),
                    (UNREACHABLE.to_string(), "NoSchedule".to_string()),
                ];
                if status == "Unknown" && wanted.iter().all(|w| taints.contains(w)) {
                    Ok(())
                } else {
                    Err(format!("Ready={status}, taints {taints:?}"))
                }
            },
        );
    }
    let table = s.kubectl_ok(&["get", "node", "b-0"]);
    assert!(table.contains("NotReady"), "{table}");
    let node = s.get_json(&["node", "b-0"]);
    let conditions = node["status"]["conditions"].as_array().unwrap();
    for kind in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let condition = conditions.iter().find(|c| c["type"] == kind).unwrap();
        assert_eq!(condition["status"], "Unknown", "{condition}");
        assert_eq!(condition["reason"], "NodeStatusUnknown", "{condition}");
        assert_eq!(
            condition["message"], "Kubelet stopped posting node status.",
            "{condition}"
        );
    }

    // Its pods are evicted two seconds later and recreated on the a nodes.
    s.eventually(
        "pods recreated away from b-0",
        Duration::from_secs(60),
        || {
            let nodes = live_pod_nodes(&s);
            if nodes.len() == 6 && nodes.iter().all(|n| n == "a-0" || n == "a-1") {
                Ok(())
            } else {
                Err(format!("live pods on {nodes:?}"))
            }
        },
    );
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let events = s.get_json(&["events"]);
    let evictions: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "TaintManagerEviction")
        .collect();
    assert!(!evictions.is_empty(), "no TaintManagerEviction event");
    let message = evictions[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("Marking for deletion Pod {}/web-", s.ns)),
        "{message}"
    );
    // The pods left on b-0 were marked not ready and are waiting for the node to finish them.
    for pod in pods_on(&s, "b-0") {
        assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
        let ready = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False", "{pod}");
    }

    // c comes back: Ready again, and the controller lifts the taints.
    let _c = cluster.sim_nodes("c", 1, &sim_flags);
    s.eventually("c-0 Ready without taints", Duration::from_secs(30), || {
        let status = ready_status(&s, "c-0");
        let taints = node_taints(&s, "c-0");
        if status == "True" && taints.is_empty() {
            Ok(())
        } else {
            Err(format!("Ready={status}, taints {taints:?}"))
        }
    });

    // A deleted node's pods are collected.
    assert!(!pods_on(&s, "b-0").is_empty(), "no pod left on b-0");
    s.kubectl_ok(&["delete", "node", "b-0"]);
    s.eventually("no pod on b-0", Duration::from_secs(40), || {
        let left = pods_on(&s, "b-0");
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} pods still on b-0", left.len()))
        }
    });
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
}

#[test]
fn pods_get_the_default_tolerations_of_300_seconds() {
    let cluster = Cluster::start(ClusterConfig::api_only(Store::Sqlite));
    let s = cluster.session("default-tolerations");
    s.create_stdin(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: plain\nspec:\n  containers:\n  - name: c\n    image: nginx:1.27\n",
    );
    let pod = s.get_json(&["pod", "plain"]);
    assert_eq!(
        default_toleration_seconds(&pod, NOT_READY),
        Some(300),
        "{pod}"
    );
    assert_eq!(
        default_toleration_seconds(&pod, UNREACHABLE),
        Some(300),
        "{pod}"
    );
    // A pod that tolerates the taint itself keeps its own toleration only.
    s.create_stdin(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: own\nspec:\n  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n    effect: NoExecute\n  containers:\n  - name: c\n    image: nginx:1.27\n",
    );
    let pod = s.get_json(&["pod", "own"]);
    let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
    assert_eq!(tolerations.len(), 2, "{pod}");
    assert_eq!(default_toleration_seconds(&pod, UNREACHABLE), None, "{pod}");
    assert_eq!(
        default_toleration_seconds(&pod, NOT_READY),
        Some(300),
        "{pod}"
    );
}
