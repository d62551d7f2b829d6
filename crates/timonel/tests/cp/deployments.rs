//! Deployments, ReplicaSets and their pods on simulated nodes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::e2e::harness::{Cluster, ClusterConfig, Process, Session, deployment, describe_field};

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

/// Three simulated nodes whose pods take a moment to start, so rollouts have observable steps.
fn rollout_cluster() -> (Cluster, Process) {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let nodes = cluster.sim_nodes("sim", 3, &["--start-delay-ms", "300"]);
    (cluster, nodes)
}

/// A Deployment `name` of `replicas` pods of `image` with the given `strategy:` block.
fn deployment_with_strategy(name: &str, replicas: u32, image: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  strategy:
{strategy}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

/// One look at the pods and the Deployment, taken by a single list.
#[derive(Debug, Clone)]
struct Sample {
    /// Pods neither being deleted nor finished, with their images.
    live_images: Vec<String>,
    /// Pods being deleted, with their images.
    terminating_images: Vec<String>,
    available: i64,
}

fn sample(s: &Session<'_>, deployment: &str) -> Option<Sample> {
    let out = s.kubectl(&["get", "pods,deployments", "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut sample = Sample {
        live_images: Vec::new(),
        terminating_images: Vec::new(),
        available: -1,
    };
    for item in list["items"].as_array()? {
        match item["kind"].as_str()? {
            "Pod" => {
                let image = item["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let phase = item["status"]["phase"].as_str().unwrap_or_default();
                if item["metadata"]["deletionTimestamp"].is_string() {
                    sample.terminating_images.push(image);
                } else if phase != "Succeeded" && phase != "Failed" {
                    sample.live_images.push(image);
                }
            }
            "Deployment" if item["metadata"]["name"] == deployment => {
                sample.available = item["status"]["availableReplicas"].as_i64().unwrap_or(0);
            }
            _ => {}
        }
    }
    Some(sample)
}

/// Runs `during` while a second thread samples pods and the Deployment; returns the samples.
fn sampled(s: &Session<'_>, deployment: &str, during: impl FnOnce()) -> Vec<Sample> {
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(Ordering::SeqCst) {
                samples.extend(sample(s, deployment));
            }
            samples
        });
        during();
        done.store(true, Ordering::SeqCst);
        sampler.join().expect("sampler thread")
    })
}

fn images(s: &Session<'_>, selector: &str) -> Vec<String> {
    let out = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    out.split_whitespace().map(str::to_string).collect()
}

fn revision_numbers(history: &str) -> Vec<String> {
    history
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|cell| cell.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

#[test]
fn rolling_update_respects_surge_and_unavailability_then_rolls_back() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("rolling-update");
    s.apply_stdin(&deployment_with_strategy(
        "web",
        6,
        "nginx:1.27",
        "    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 1",
    ));
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);

    let samples = sampled(&s, "web", || {
        s.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.28"]);
        s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    });
    assert!(!samples.is_empty());
    for sample in &samples {
        assert!(
            sample.live_images.len() <= 7,
            "more than replicas+maxSurge pods: {sample:?}"
        );
        assert!(
            sample.available >= 5,
            "fewer than replicas-maxUnavailable available: {sample:?}"
        );
    }
    // The samples saw both templates side by side: the update was rolling, not all at once.
    assert!(
        samples.iter().any(|x| {
            x.live_images.iter().any(|i| i == "nginx:1.27")
                && x.live_images.iter().any(|i| i == "nginx:1.28")
        }),
        "never saw old and new pods together: {samples:?}"
    );
    s.eventually("six nginx:1.28 pods", Duration::from_secs(30), || {
        let now = images(&s, "app=web");
        if now.len() == 6 && now.iter().all(|i| i == "nginx:1.28") {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });

    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(revision_numbers(&history), ["1", "2"], "{history}");
    let second = s.kubectl_ok(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(second.contains("nginx:1.28"), "{second}");

    let undo = s.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    assert_eq!(undo.trim(), "deployment.apps/web rolled back");
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    s.eventually("six nginx:1.27 pods", Duration::from_secs(30), || {
        let now = images(&s, "app=web");
        if now.len() == 6 && now.iter().all(|i| i == "nginx:1.27") {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    let annotations = s.jsonpath(
        "deployment/web",
        "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    );
    assert_eq!(annotations, "3");
    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(revision_numbers(&history), ["2", "3"], "{history}");
    // Two ReplicaSets: the first template's came back as revision 3.
    let sets = s.kubectl_ok(&[
        "get",
        "rs",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}={.spec.replicas} {end}",
    ]);
    let mut sets: Vec<&str> = sets.split_whitespace().collect();
    sets.sort();
    assert_eq!(sets, ["nginx:1.27=6", "nginx:1.28=0"]);
}

#[test]
fn pause_resume_restart_and_wait() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("pause-resume");
    s.apply_stdin(&deployment("web", 4, "nginx:1.27"));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=60s",
    ]);
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);

    let paused = s.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    assert_eq!(paused.trim(), "deployment.apps/web paused");
    s.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.28"]);
    // The controller observed the new template but rolls nothing while paused.
    s.eventually("the paused condition", Duration::from_secs(30), || {
        let d = s.get_json(&["deployment/web"]);
        let progressing = d["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
            .cloned()
            .unwrap_or_default();
        if d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && progressing["reason"] == "DeploymentPaused"
            && progressing["status"] == "Unknown"
        {
            Ok(())
        } else {
            Err(format!("{}", d["status"]))
        }
    });
    let sets = s.kubectl_ok(&["get", "rs", "-l", "app=web", "-o", "name"]);
    assert_eq!(sets.lines().count(), 1, "{sets}");
    assert!(images(&s, "app=web").iter().all(|i| i == "nginx:1.27"));
    let status = s.kubectl_ok(&["rollout", "status", "deployment/web", "--watch=false"]);
    assert_eq!(
        status.trim(),
        "Waiting for deployment \"web\" rollout to finish: 0 out of 4 new replicas have been updated..."
    );

    let resumed = s.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    assert_eq!(resumed.trim(), "deployment.apps/web resumed");
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    s.eventually("four nginx:1.28 pods", Duration::from_secs(30), || {
        let now = images(&s, "app=web");
        if now.len() == 4 && now.iter().all(|i| i == "nginx:1.28") {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });

    let before: Vec<String> = s
        .kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect();
    let restarted = s.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    assert_eq!(restarted.trim(), "deployment.apps/web restarted");
    let restarted_at = s.jsonpath(
        "deployment/web",
        "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    );
    assert!(!restarted_at.is_empty());
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    s.eventually("four new pods", Duration::from_secs(30), || {
        let now: Vec<String> = s
            .kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"])
            .lines()
            .map(str::to_string)
            .collect();
        if now.len() == 4 && now.iter().all(|p| !before.contains(p)) {
            Ok(())
        } else {
            Err(format!("before {before:?}, now {now:?}"))
        }
    });
    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(revision_numbers(&history), ["1", "2", "3"], "{history}");
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=60s",
    ]);
}

fn pods_by_node(s: &Session<'_>, selector: &str) -> BTreeMap<String, usize> {
    let out = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    let mut counts = BTreeMap::new();
    for node in out.split_whitespace() {
        *counts.entry(node.to_string()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn scale_up_and_down_spreads_pods() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("scale");
    s.apply_stdin(&deployment("web", 3, "nginx:1.27"));
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let scaled = s.kubectl_ok(&["scale", "deployment/web", "--replicas=12"]);
    assert_eq!(scaled.trim(), "deployment.apps/web scaled");
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let ready = s.jsonpath("deployment/web", "{.status.readyReplicas}");
    assert_eq!(ready, "12");
    let spread = pods_by_node(&s, "app=web");
    assert_eq!(spread.values().sum::<usize>(), 12, "{spread:?}");
    assert_eq!(spread.len(), 3, "not on every node: {spread:?}");
    // Least-allocated scoring keeps equal nodes level.
    assert!(
        spread.values().all(|count| (3..=5).contains(count)),
        "uneven: {spread:?}"
    );

    s.kubectl_ok(&["scale", "deployment/web", "--replicas=2"]);
    s.eventually("2 pods", Duration::from_secs(60), || {
        let spread = pods_by_node(&s, "app=web");
        if spread.values().sum::<usize>() == 2 {
            Ok(())
        } else {
            Err(format!("{spread:?}"))
        }
    });
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let status = s.get_json(&["deployment/web"])["status"].clone();
    assert_eq!(status["replicas"], 2, "{status}");
    assert_eq!(status["availableReplicas"], 2, "{status}");
    assert_eq!(status["updatedReplicas"], 2, "{status}");
    // Still one ReplicaSet: scaling is not a rollout.
    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(revision_numbers(&history), ["1"], "{history}");
}

#[test]
fn recreate_removes_every_old_pod_before_creating_new_ones() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("recreate");
    s.apply_stdin(&deployment_with_strategy(
        "web",
        4,
        "nginx:1.27",
        "    type: Recreate",
    ));
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let samples = sampled(&s, "web", || {
        s.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.28"]);
        s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    });
    for sample in &samples {
        let all: Vec<&String> = sample
            .live_images
            .iter()
            .chain(&sample.terminating_images)
            .collect();
        let new = all.iter().any(|i| *i == "nginx:1.28");
        let old = all.iter().any(|i| *i == "nginx:1.27");
        assert!(!(new && old), "old and new pods at once: {sample:?}");
    }
    let now = images(&s, "app=web");
    assert_eq!(now, ["nginx:1.28"; 4]);
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Deployment,involvedObject.name=web",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}\n{end}",
    ]);
    assert!(
        events.lines().any(
            |l| l.starts_with("ScalingReplicaSet: Scaled down replica set web-")
                && l.ends_with("from 4 to 0")
        ),
        "{events}"
    );
}

/// A Deployment whose pods carry a finalizer, so they stay (Terminating) until the test lets
/// them go: foreground deletion is then observable.
fn held_deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
      finalizers:
      - example.com/hold
    spec:
      containers:
      - name: web
        image: nginx:1.27
"
    )
}

fn release_pods(s: &Session<'_>, selector: &str) {
    let pods = s.kubectl_ok(&["get", "pods", "-l", selector, "-o", "name"]);
    for pod in pods.lines() {
        s.kubectl_ok(&[
            "patch",
            pod,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ]);
    }
}

#[test]
fn foreground_deletion_waits_for_replica_sets_and_pods() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("gc-foreground");
    s.apply_stdin(&held_deployment("held"));
    s.kubectl_ok(&["rollout", "status", "deployment/held", "--timeout=60s"]);
    s.kubectl_ok(&[
        "delete",
        "deployment",
        "held",
        "--cascade=foreground",
        "--wait=false",
    ]);
    // The Deployment waits, with the foregroundDeletion finalizer, for its dependents.
    let d = s.get_json(&["deployment/held"]);
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    assert_eq!(d["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    s.eventually("pods being deleted", Duration::from_secs(30), || {
        let pods = s.get_json(&["pods", "-l", "app=held"]);
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        if items.len() == 2
            && items
                .iter()
                .all(|p| p["metadata"]["deletionTimestamp"].is_string())
        {
            Ok(())
        } else {
            Err(format!("{pods}"))
        }
    });
    let rs = s.get_json(&["rs", "-l", "app=held"]);
    assert_eq!(rs["items"].as_array().map(Vec::len), Some(1), "{rs}");
    assert_eq!(
        rs["items"][0]["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    let d = s.get_json(&["deployment/held"]);
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");

    release_pods(&s, "app=held");
    s.kubectl_ok(&["wait", "--for=delete", "deployment/held", "--timeout=60s"]);
    let left = s.kubectl_ok(&["get", "rs,pods", "-l", "app=held", "-o", "name"]);
    assert_eq!(left.trim(), "");
}

#[test]
fn orphan_and_background_deletion() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("gc-orphan");
    s.apply_stdin(&deployment("web", 3, "nginx:1.27"));
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let rs_name = s.jsonpath("rs", "{.items[0].metadata.name}");
    let deleted = s.kubectl_ok(&["delete", "deployment", "web", "--cascade=orphan"]);
    assert_eq!(
        deleted.trim(),
        "deployment.apps \"web\" deleted from gc-orphan namespace"
    );
    s.kubectl_fail(&["get", "deployment", "web"]);
    let rs = s.get_json(&[&format!("rs/{rs_name}")]);
    assert!(rs["metadata"]["deletionTimestamp"].is_null(), "{rs}");
    assert!(
        rs["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{rs}"
    );
    assert!(
        rs["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{rs}"
    );
    let pods = s.get_json(&["pods", "-l", "app=web"]);
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{pods}");
    for pod in &items {
        assert!(pod["metadata"]["deletionTimestamp"].is_null(), "{pod}");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], rs_name);
    }

    // A ReplicaSet deleted in the background (kubectl's default): its pods follow.
    s.kubectl_ok(&["delete", "rs", &rs_name]);
    s.eventually("pods collected", Duration::from_secs(30), || {
        let left = s.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });

    // And a Deployment deleted in the background takes its ReplicaSet and pods along.
    s.apply_stdin(&deployment("web", 2, "nginx:1.27"));
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    s.kubectl_ok(&["delete", "deployment", "web"]);
    s.eventually(
        "ReplicaSet and pods collected",
        Duration::from_secs(30),
        || {
            let left = s.kubectl_ok(&["get", "rs,pods", "-l", "app=web", "-o", "name"]);
            if left.trim().is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        },
    );
}

#[test]
fn deleting_a_namespace_removes_its_contents() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("ns-delete");
    let ns = s.extra_namespace("doomed");
    s.kubectl_stdin_ok(
        &["apply", "-n", &ns, "-f", "-"],
        &deployment("web", 3, "nginx:1.27"),
    );
    s.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        &ns,
        "--from-literal=a=b",
    ]);
    s.kubectl_ok(&[
        "rollout",
        "status",
        "-n",
        &ns,
        "deployment/web",
        "--timeout=60s",
    ]);
    let deleted = s.kubectl_ok(&["delete", "namespace", &ns, "--timeout=60s"]);
    assert_eq!(deleted.trim(), format!("namespace \"{ns}\" deleted"));
    let err = s.kubectl_fail(&["get", "ns", &ns]);
    assert_eq!(
        err.trim(),
        format!("Error from server (NotFound): namespaces \"{ns}\" not found")
    );
    let left = s.kubectl_ok(&[
        "get",
        "pods,rs,deployments,configmaps",
        "-n",
        &ns,
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "");
}

fn pod_with_cpu(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: c
    image: nginx:1.27
    resources:
      requests:
        cpu: \"{cpu}\"
"
    )
}

#[test]
fn unschedulable_pod_reports_upstream_message() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("unschedulable");
    s.apply_stdin(&pod_with_cpu("huge", "100"));
    let expected = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are \
                    available: 3 No preemption victims found for incoming pod.";
    let describe = s.eventually(
        "FailedScheduling in describe",
        Duration::from_secs(30),
        || {
            let out = s.kubectl_ok(&["describe", "pod", "huge"]);
            if out.contains("FailedScheduling") && out.contains(expected) {
                Ok(out)
            } else {
                Err(out)
            }
        },
    );
    assert!(
        describe.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells == ["PodScheduled", "False"]
        }),
        "{describe}"
    );
    let condition = s.jsonpath(
        "pod/huge",
        "{.status.conditions[?(@.type==\"PodScheduled\")].reason}",
    );
    assert_eq!(condition, "Unschedulable");
    assert_eq!(describe_field(&describe, "Node:"), "<none>");
    assert_eq!(describe_field(&describe, "Status:"), "Pending");

    // A NoSchedule taint shows up as its own reason, which preemption cannot help with.
    s.kubectl_ok(&["taint", "nodes", "sim-0", "key=value:NoSchedule"]);
    s.apply_stdin(&pod_with_cpu("tainted", "100"));
    let expected = "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, \
                    2 Insufficient cpu. preemption: 0/3 nodes are available: \
                    1 Preemption is not helpful for scheduling, \
                    2 No preemption victims found for incoming pod.";
    s.eventually("the taint in the message", Duration::from_secs(30), || {
        let out = s.kubectl_ok(&["describe", "pod", "tainted"]);
        if out.contains("FailedScheduling") && out.contains(expected) {
            Ok(())
        } else {
            Err(out)
        }
    });
    // A pod that fits is bound, never to the tainted node.
    s.kubectl_ok(&["delete", "pod", "tainted", "--wait=false"]);
    s.apply_stdin(&pod_with_cpu("small", "1"));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=PodScheduled",
        "pod/small",
        "--timeout=30s",
    ]);
    let node = s.jsonpath("pod/small", "{.spec.nodeName}");
    assert_ne!(node, "sim-0");
}

#[test]
fn replication_controller_keeps_scales_and_replaces_pods() {
    let (cluster, _nodes) = rollout_cluster();
    let s = cluster.session("replication-controller");
    s.apply_stdin(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 3
  selector:
    app: legacy
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: web
        image: nginx:1.27
",
    );
    let ready = |count: u32| {
        s.kubectl_ok(&[
            "wait",
            &format!("--for=jsonpath={{.status.readyReplicas}}={count}"),
            "rc/legacy",
            "--timeout=60s",
        ]);
    };
    ready(3);
    let pods = s.get_json(&["pods", "-l", "app=legacy"]);
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{pods}");
    for pod in &items {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicationController", "{pod}");
        assert_eq!(owner["apiVersion"], "v1", "{pod}");
        assert_eq!(owner["controller"], true, "{pod}");
        assert!(
            pod["metadata"]["generateName"] == "legacy-",
            "{}",
            pod["metadata"]
        );
    }

    let scaled = s.kubectl_ok(&["scale", "rc", "legacy", "--replicas=5"]);
    assert_eq!(scaled.trim(), "replicationcontroller/legacy scaled");
    ready(5);
    s.eventually("complete status", Duration::from_secs(30), || {
        let rc = s.get_json(&["rc/legacy"]);
        let status = &rc["status"];
        if status["replicas"] == 5
            && status["availableReplicas"] == 5
            && status["fullyLabeledReplicas"] == 5
            && status["observedGeneration"] == rc["metadata"]["generation"]
        {
            Ok(())
        } else {
            Err(format!("{status}"))
        }
    });
    let table = s.kubectl_ok(&["get", "rc", "legacy"]);
    let rows = crate::e2e::harness::table(&table);
    assert_eq!(rows[0][..4], ["NAME", "DESIRED", "CURRENT", "READY"]);
    assert_eq!(rows[1][..4], ["legacy", "5", "5", "5"]);

    // A deleted pod is replaced.
    let victim = s.jsonpath("pods", "{.items[0].metadata.name}");
    s.kubectl_ok(&["delete", "pod", &victim, "--wait=false"]);
    s.eventually("a replacement", Duration::from_secs(30), || {
        let names = s.kubectl_ok(&["get", "pods", "-l", "app=legacy", "-o", "name"]);
        let names: Vec<&str> = names.lines().collect();
        if names.len() == 5 && !names.contains(&format!("pod/{victim}").as_str()) {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
    let events = s.kubectl_ok(&["describe", "rc", "legacy"]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
    assert!(events.contains("replication-controller"), "{events}");

    s.kubectl_ok(&["scale", "rc", "legacy", "--replicas=1"]);
    ready(1);
    s.eventually("one pod", Duration::from_secs(30), || {
        let names = s.kubectl_ok(&["get", "pods", "-l", "app=legacy", "-o", "name"]);
        if names.lines().count() == 1 {
            Ok(())
        } else {
            Err(names)
        }
    });
    s.kubectl_ok(&["delete", "rc", "legacy"]);
    s.eventually("pods collected", Duration::from_secs(30), || {
        let names = s.kubectl_ok(&["get", "pods", "-l", "app=legacy", "-o", "name"]);
        if names.trim().is_empty() {
            Ok(())
        } else {
            Err(names)
        }
    });
}

#[test]
fn stuck_rollout_exceeds_its_progress_deadline() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    // Pods bound to these nodes never become ready within the test.
    let _nodes = cluster.sim_nodes("slow", 1, &["--start-delay-ms", "3600000"]);
    let s = cluster.session("progress-deadline");
    s.apply_stdin(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 2
  progressDeadlineSeconds: 5
  selector:
    matchLabels:
      app: stuck
  template:
    metadata:
      labels:
        app: stuck
    spec:
      containers:
      - name: web
        image: nginx:1.27
",
    );
    let out = s.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=60s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: deployment \"stuck\" exceeded its progress deadline"
    );
    let d = s.get_json(&["deployment/stuck"]);
    let conditions = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let find = |kind: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} condition: {d}"))
    };
    let progressing = find("Progressing");
    assert_eq!(progressing["status"], "False", "{progressing}");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    let rs = s.jsonpath("rs", "{.items[0].metadata.name}");
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"{rs}\" has timed out progressing.")
    );
    let available = find("Available");
    assert_eq!(available["status"], "False", "{available}");
    assert_eq!(available["reason"], "MinimumReplicasUnavailable");
    let describe = s.kubectl_ok(&["describe", "deployment", "stuck"]);
    assert!(
        describe.lines().any(|l| {
            l.split_whitespace().collect::<Vec<_>>()
                == ["Progressing", "False", "ProgressDeadlineExceeded"]
        }),
        "{describe}"
    );
}
