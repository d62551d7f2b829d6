//! PodDisruptionBudgets with `kubectl cordon`/`drain`, and leader election between two servers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::e2e::harness::{Cluster, ClusterConfig, Session, Store, row_where, table};

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget";

fn budget(min_available: u32) -> String {
    format!(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  \
         minAvailable: {min_available}\n  selector:\n    matchLabels:\n      app: web\n"
    )
}

/// The web pods by node name.
fn pods_by_node(s: &Session<'_>) -> BTreeMap<String, Vec<String>> {
    let pods = s.get_json(&["pods", "-l", "app=web"]);
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        if pod["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        by_node
            .entry(node.to_string())
            .or_default()
            .push(name.to_string());
    }
    by_node
}

/// Waits until the budget's status reads (expected, healthy, desired, allowed) and is current.
fn wait_for_budget(s: &Session<'_>, expected: i64, healthy: i64, desired: i64, allowed: i64) {
    s.eventually("budget status", Duration::from_secs(60), || {
        let pdb = s.get_json(&["pdb", "web"]);
        let status = &pdb["status"];
        let seen = (
            status["expectedPods"].as_i64().unwrap_or(-1),
            status["currentHealthy"].as_i64().unwrap_or(-1),
            status["desiredHealthy"].as_i64().unwrap_or(-1),
            status["disruptionsAllowed"].as_i64().unwrap_or(-1),
        );
        let current = status["observedGeneration"] == pdb["metadata"]["generation"];
        let condition = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "DisruptionAllowed")
            .map(|c| (c["status"].clone(), c["reason"].clone()));
        let wanted_condition = if allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        let condition_ok = condition
            .as_ref()
            .is_some_and(|(st, reason)| st == wanted_condition.0 && reason == wanted_condition.1);
        if seen == (expected, healthy, desired, allowed) && current && condition_ok {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    });
}

#[test]
fn drain_honours_a_disruption_budget() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes("sim", 3, &["--start-delay-ms", "100"]);
    let s = cluster.session("drain-pdb");
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=4",
    ]);
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    s.apply_stdin(&budget(3));
    wait_for_budget(&s, 4, 4, 3, 1);
    let pdb_row = s.kubectl_ok(&["get", "pdb", "web"]);
    let rows = table(&pdb_row);
    let header = pdb_row.lines().next().unwrap_or_default();
    for column in ["MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS"] {
        assert!(header.contains(column), "{pdb_row}");
    }
    assert_eq!(rows[1][..4], ["web", "3", "N/A", "1"]);

    // Four pods on three nodes: the busiest node holds at least two.
    let before = pods_by_node(&s);
    let (node, victims) = before
        .iter()
        .max_by_key(|(_, pods)| pods.len())
        .map(|(n, p)| (n.clone(), p.clone()))
        .unwrap();
    assert!(victims.len() >= 2, "{before:?}");

    s.kubectl_ok(&["cordon", &node]);
    let nodes = s.kubectl_ok(&["get", "nodes"]);
    let rows = table(&nodes);
    let row = row_where(&rows, 0, &node, &nodes);
    assert_eq!(row[1], "Ready,SchedulingDisabled", "{nodes}");

    let out = s.kubectl(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drain failed\n{stdout}\n{stderr}");
    for pod in &victims {
        assert!(
            stdout.contains(&format!("pod/{pod} evicted")),
            "{pod}\n{stdout}"
        );
    }
    assert!(stdout.contains(&format!("node/{node} drained")), "{stdout}");
    // Only one disruption was allowed at a time: the other pods were refused and retried.
    assert!(stderr.contains(VIOLATION), "{stderr}");

    // Everything was recreated elsewhere and the budget is whole again.
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    wait_for_budget(&s, 4, 4, 3, 1);
    let after = pods_by_node(&s);
    assert!(!after.contains_key(&node), "{after:?}");
    assert_eq!(after.values().map(Vec::len).sum::<usize>(), 4, "{after:?}");

    // A budget that allows nothing: a direct eviction and a drain are refused.
    s.apply_stdin(&budget(4));
    wait_for_budget(&s, 4, 4, 4, 0);
    let pod = after.values().next().unwrap()[0].clone();
    let eviction = format!(
        "{{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{{\"name\":\"{pod}\",\"namespace\":\"{}\"}}}}",
        s.ns
    );
    let file = s.write_file("eviction.json", &eviction);
    let path = format!("/api/v1/namespaces/{}/pods/{pod}/eviction", s.ns);
    let refused = s.kubectl_fail(&["create", "--raw", &path, "-f", &file.display().to_string()]);
    assert!(refused.contains("TooManyRequests"), "{refused}");
    assert!(refused.contains(VIOLATION), "{refused}");
    let other = after.keys().next().unwrap().clone();
    let refused = s.kubectl_fail(&["drain", &other, "--ignore-daemonsets", "--timeout=5s"]);
    assert!(refused.contains(VIOLATION), "{refused}");
    assert_eq!(pods_by_node(&s).values().map(Vec::len).sum::<usize>(), 4);
    s.kubectl_ok(&["uncordon", &node, &other]);
}

/// The holder of a Lease in kube-system, once it has one.
fn holder(s: &Session<'_>, lease: &str) -> Result<(String, i64), String> {
    let out = s.kubectl(&["get", "lease", lease, "-n", "kube-system", "-o", "json"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let lease: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let spec = &lease["spec"];
    match spec["holderIdentity"].as_str() {
        Some(h) if !h.is_empty() => {
            assert_eq!(spec["leaseDurationSeconds"], 15, "{lease}");
            assert!(spec["renewTime"].is_string() && spec["acquireTime"].is_string());
            Ok((
                h.to_string(),
                spec["leaseTransitions"].as_i64().unwrap_or(0),
            ))
        }
        _ => Err(format!("no holder yet: {lease}")),
    }
}

/// The identity a server campaigns with, from its log.
fn identity_in(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| {
            l.split("attempting to acquire leader lease kube-system/kube-controller-manager as ")
                .nth(1)
        })
        .map(|id| id.trim().to_string())
}

#[test]
fn two_servers_elect_one_leader_and_hand_over() {
    let cluster = Cluster::start(ClusterConfig {
        store: Store::Etcd,
        control_plane: true,
        server_args: vec![],
        agent: false,
    });
    let (server_b, kubeconfig_b) = cluster.second_server("server-b", &[]);
    let s = cluster.session("leader-election");
    let a = s.eventually("server A's identity", Duration::from_secs(10), || {
        identity_in(&cluster.server_log()).ok_or_else(|| "not logged yet".to_string())
    });
    let b = s.eventually("server B's identity", Duration::from_secs(10), || {
        identity_in(&server_b.log()).ok_or_else(|| "not logged yet".to_string())
    });
    assert_ne!(a, b);

    let (scheduler, _) = s.eventually("a scheduler leader", Duration::from_secs(30), || {
        holder(&s, "kube-scheduler")
    });
    let (manager, transitions) = s.eventually(
        "a controller-manager leader",
        Duration::from_secs(30),
        || holder(&s, "kube-controller-manager"),
    );
    // Server A started first and took both Leases; B only campaigns.
    assert_eq!(scheduler, a);
    assert_eq!(manager, a);
    let b_log = server_b.log();
    assert!(
        !b_log.contains("successfully acquired lease"),
        "server B leads too:\n{b_log}"
    );

    // The leader's loops act: a Deployment rolls out on nodes of server A.
    let nodes_a = cluster.sim_nodes("a", 2, &["--start-delay-ms", "100"]);
    s.kubectl_ok(&[
        "create",
        "deployment",
        "before",
        "--image=nginx:1.27",
        "--replicas=2",
    ]);
    s.kubectl_ok(&["rollout", "status", "deployment/before", "--timeout=60s"]);

    // Kill the leader: server B takes over once the Lease expires.
    drop(nodes_a);
    cluster.kill_server();
    let b_session = s.via(&kubeconfig_b);
    // A's nodes went with it (nobody would run pods bound to them).
    b_session.kubectl_ok(&["delete", "node", "a-0", "a-1"]);
    b_session.eventually("server B leads", Duration::from_secs(40), || {
        match (
            holder(&b_session, "kube-controller-manager"),
            holder(&b_session, "kube-scheduler"),
        ) {
            (Ok((m, t)), Ok((sch, _))) if m == b && sch == b => Ok(t),
            other => Err(format!("{other:?}")),
        }
    });
    let (_, after) = holder(&b_session, "kube-controller-manager").unwrap();
    assert_eq!(after, transitions + 1);
    assert!(
        server_b
            .log()
            .contains("successfully acquired lease kube-system/kube-controller-manager")
    );

    // B's controllers and scheduler now run a new Deployment on nodes registered with B.
    let _nodes_b = cluster.sim_nodes_via(&kubeconfig_b, "b", 2, &["--start-delay-ms", "100"]);
    b_session.kubectl_ok(&[
        "create",
        "deployment",
        "after",
        "--image=nginx:1.27",
        "--replicas=3",
    ]);
    b_session.kubectl_ok(&["rollout", "status", "deployment/after", "--timeout=60s"]);
    let nodes = b_session.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=after",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    for node in nodes.split_whitespace() {
        assert!(node.starts_with("b-"), "{nodes}");
    }
}
