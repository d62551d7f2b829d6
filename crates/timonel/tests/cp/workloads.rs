//! DaemonSets, StatefulSets and claim-bound pods on simulated nodes.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::e2e::harness::{Cluster, ClusterConfig, Session};

fn daemonset(name: &str, image: &str, node_selector: Option<(&str, &str)>) -> String {
    let selector = node_selector
        .map(|(k, v)| format!("      nodeSelector:\n        {k}: {v}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
spec:
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
{selector}      containers:
      - name: c
        image: {image}
"
    )
}

/// The nodes the pods labelled `app=<app>` are bound to (each once), and how many pods there are.
fn pod_nodes(s: &Session<'_>, app: &str) -> (BTreeSet<String>, usize) {
    let out = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
    ]);
    let nodes: Vec<String> = out.lines().map(str::to_string).collect();
    (nodes.iter().cloned().collect(), nodes.len())
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn daemonset_covers_every_node_including_new_and_selected_ones() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes("sim", 3, &["--start-delay-ms", "100"]);
    let s = cluster.session("daemonset-nodes");
    s.apply_stdin(&daemonset("agent", "busybox:1.36", None));
    s.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let (nodes, count) = pod_nodes(&s, "agent");
    assert_eq!((nodes, count), (set(&["sim-0", "sim-1", "sim-2"]), 3));
    let pod = s.get_json(&["pods", "-l", "app=agent"])["items"][0].clone();
    let labels = &pod["metadata"]["labels"];
    assert!(labels["controller-revision-hash"].is_string(), "{labels}");
    assert!(labels["pod-template-generation"].is_string(), "{labels}");
    let fields = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchFields"][0];
    assert_eq!(fields["key"], "metadata.name", "{pod}");
    assert_eq!(fields["values"][0], pod["spec"]["nodeName"], "{pod}");
    let status = s.get_json(&["ds", "agent"])["status"].clone();
    for field in [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "numberAvailable",
        "updatedNumberScheduled",
    ] {
        assert_eq!(status[field], 3, "{field}: {status}");
    }
    assert_eq!(status["numberMisscheduled"], 0, "{status}");
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.kind} {.reason} {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("DaemonSet SuccessfulCreate Created pod: agent-")),
        "{events}"
    );

    // A node added later gets its pod too.
    let _more = cluster.sim_nodes("extra", 1, &["--start-delay-ms", "100"]);
    s.eventually("a pod on extra-0", Duration::from_secs(60), || {
        let (nodes, count) = pod_nodes(&s, "agent");
        if nodes == set(&["sim-0", "sim-1", "sim-2", "extra-0"]) && count == 4 {
            Ok(())
        } else {
            Err(format!("{count} pods on {nodes:?}"))
        }
    });
    s.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);

    // A new template rolls out and is recorded in the history.
    s.kubectl_ok(&["set", "image", "ds/agent", "c=busybox:1.37"]);
    s.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    s.eventually(
        "every pod at the new image",
        Duration::from_secs(30),
        || {
            let images = s.kubectl_ok(&[
                "get",
                "pods",
                "-l",
                "app=agent",
                "-o",
                "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
            ]);
            let images: Vec<&str> = images.lines().collect();
            if images.len() == 4 && images.iter().all(|i| *i == "busybox:1.37") {
                Ok(())
            } else {
                Err(format!("images: {images:?}"))
            }
        },
    );
    let history = s.kubectl_ok(&["rollout", "history", "ds/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // A nodeSelector limits the DaemonSet to the labelled node.
    s.kubectl_ok(&["label", "node", "sim-1", "disk=ssd"]);
    s.apply_stdin(&daemonset(
        "ssd-agent",
        "busybox:1.36",
        Some(("disk", "ssd")),
    ));
    s.kubectl_ok(&["rollout", "status", "ds/ssd-agent", "--timeout=60s"]);
    let (nodes, count) = pod_nodes(&s, "ssd-agent");
    assert_eq!((nodes, count), (set(&["sim-1"]), 1));
    assert_eq!(
        s.jsonpath("ds/ssd-agent", "{.status.desiredNumberScheduled}"),
        "1"
    );
}

const STATEFULSET: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        volumeMounts:
        - name: data
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
";

#[test]
fn statefulset_creates_pods_in_order_with_claims_and_scales_down_from_the_top() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes("sim", 3, &["--start-delay-ms", "300"]);
    let s = cluster.session("statefulset-order");
    // Every state change of the set's pods, in the order the API server made them.
    let mut watch = s.spawn_kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--watch",
        "-o",
        "jsonpath={.metadata.name} {.status.phase} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.deletionTimestamp}{\"\\n\"}",
    ]);
    s.apply_stdin(STATEFULSET);
    s.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=90s"]);
    // web-1 appears only once web-0 is Running and Ready, web-2 only after web-1.
    let mut lines: Vec<String> = Vec::new();
    while !lines.iter().any(|l| l.starts_with("web-2 Running True")) {
        lines.push(watch.expect_line("web-2 Running and Ready", Duration::from_secs(60), |_| true));
    }
    let first = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix));
    for (before, after) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let ready = first(&format!("{before} Running True"));
        let seen = first(&format!("{after} "));
        assert!(
            ready.is_some() && seen > ready,
            "{after} appeared before {before} was Running and Ready:\n{}",
            lines.join("\n")
        );
    }
    drop(watch);

    let claims = s.kubectl_ok(&["get", "pvc", "-o", "name"]);
    let claims: Vec<&str> = claims.lines().collect();
    assert_eq!(
        claims,
        [
            "persistentvolumeclaim/data-web-0",
            "persistentvolumeclaim/data-web-1",
            "persistentvolumeclaim/data-web-2"
        ]
    );
    let pod = s.get_json(&["pod", "web-1"]);
    assert_eq!(pod["spec"]["hostname"], "web-1");
    assert_eq!(pod["spec"]["subdomain"], "nginx");
    assert_eq!(
        pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-1"
    );
    assert_eq!(
        pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "1"
    );
    let volume = pod["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "data"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"], "data-web-1",
        "{pod}"
    );
    let status = s.get_json(&["sts", "web"])["status"].clone();
    assert_eq!(status["readyReplicas"], 3, "{status}");
    assert_eq!(
        status["currentRevision"], status["updateRevision"],
        "{status}"
    );
    assert_eq!(
        pod["metadata"]["labels"]["controller-revision-hash"],
        status["updateRevision"]
    );
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.kind} {.reason} {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains(
            "StatefulSet SuccessfulCreate create Pod web-0 in StatefulSet web successful"
        ),
        "{events}"
    );
    assert!(
        events.contains(
            "StatefulSet SuccessfulCreate create Claim data-web-0 Pod web-0 in StatefulSet web success"
        ),
        "{events}"
    );

    // Scaling down removes web-2, then web-1. A pod may be deleted gracefully (a
    // deletionTimestamp first) or at once (only a DELETED event): either counts as going.
    // The watch lists first (three ADDED lines) and then watches from that list's
    // resourceVersion, so scaling only after the listing cannot slip past the watch.
    let mut watch = s.spawn_kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--watch",
        "--output-watch-events",
        "-o",
        "jsonpath={.type} {.object.metadata.name} {.object.metadata.deletionTimestamp}{\"\\n\"}",
    ]);
    for _ in 0..3 {
        watch.expect_line("the listing of a pod", Duration::from_secs(30), |l| {
            l.starts_with("ADDED ")
        });
    }
    s.kubectl_ok(&["scale", "sts/web", "--replicas=1"]);
    let going = |l: &str| l.starts_with("DELETED ") || l.split_whitespace().count() == 3;
    let first = watch.expect_line("a pod being deleted", Duration::from_secs(60), going);
    let name_of = |l: &str| l.split_whitespace().nth(1).unwrap_or("").to_string();
    assert_eq!(name_of(&first), "web-2", "web-2 goes first: {first}");
    let second = watch.expect_line("another pod being deleted", Duration::from_secs(60), |l| {
        going(l) && name_of(l) != "web-2"
    });
    assert_eq!(name_of(&second), "web-1", "then web-1: {second}");
    s.eventually("only web-0 left", Duration::from_secs(60), || {
        let names = s.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        if names.trim() == "pod/web-0" {
            Ok(())
        } else {
            Err(names)
        }
    });
    s.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    // Claims stay (persistentVolumeClaimRetentionPolicy whenScaled: Retain).
    assert_eq!(
        s.kubectl_ok(&["get", "pvc", "-o", "name"]).lines().count(),
        3
    );
}

fn pod_with_claim(name: &str, claim: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: c
    image: busybox
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: {claim}
"
    )
}

#[test]
fn claims_gate_scheduling_and_pin_pods_to_their_local_volume() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes("sim", 3, &["--start-delay-ms", "100"]);
    let s = cluster.session("claims");
    // No claim yet: no node can take the pod, for that reason.
    s.apply_stdin(&pod_with_claim("first", "data"));
    s.eventually(
        "FailedScheduling for the claim",
        Duration::from_secs(30),
        || {
            let out = s.kubectl_ok(&["describe", "pod", "first"]);
            if out.contains("FailedScheduling")
                && out.contains("persistentvolumeclaim \"data\" not found")
            {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
    // The claim (default class local-path, WaitForFirstConsumer) lets it schedule; the
    // volume is provisioned on the pod's node.
    s.apply_stdin(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
",
    );
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/first",
        "--timeout=60s",
    ]);
    let node = s.jsonpath("pod/first", "{.spec.nodeName}");
    assert_eq!(
        s.jsonpath(
            "pvc/data",
            "{.metadata.annotations.volume\\.kubernetes\\.io/selected-node}"
        ),
        node
    );
    s.eventually("the claim Bound", Duration::from_secs(30), || {
        match s.jsonpath("pvc/data", "{.status.phase}").as_str() {
            "Bound" => Ok(()),
            other => Err(other.to_string()),
        }
    });
    let volume = s.jsonpath("pvc/data", "{.spec.volumeName}");
    assert_eq!(
        s.jsonpath(
            &format!("pv/{volume}"),
            "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}"
        ),
        node
    );
    // Every later pod of the claim goes where the volume is.
    for i in 0..4 {
        let name = format!("later-{i}");
        s.apply_stdin(&pod_with_claim(&name, "data"));
        s.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=60s",
        ]);
        assert_eq!(s.jsonpath(&format!("pod/{name}"), "{.spec.nodeName}"), node);
    }
    // The claim deleted (once its pods are gone), the provisioned volume goes too.
    s.kubectl_ok(&["delete", "pods", "--all", "--grace-period=0", "--force"]);
    s.kubectl_ok(&["delete", "pvc", "data", "--timeout=60s"]);
    s.eventually("the volume deleted", Duration::from_secs(60), || {
        let out = s.kubectl(&["get", "pv", &volume]);
        if out.status.success() {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Ok(())
        }
    });
}
