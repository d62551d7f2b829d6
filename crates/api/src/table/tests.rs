use super::*;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 10, 12, 0, 0).unwrap()
}

fn column_names(table: &Value) -> Vec<String> {
    table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn cells(table: &Value, row: usize) -> Vec<Value> {
    table["rows"][row]["cells"].as_array().unwrap().clone()
}

#[test]
fn human_durations_match_upstream() {
    let d = chrono::TimeDelta::seconds;
    assert_eq!(human_duration(d(5)), "5s");
    assert_eq!(human_duration(d(119)), "119s");
    assert_eq!(human_duration(d(200)), "3m20s");
    assert_eq!(human_duration(d(180)), "3m");
    assert_eq!(human_duration(d(600)), "10m");
    assert_eq!(human_duration(d(3 * 3600 + 5 * 60)), "3h5m");
    assert_eq!(human_duration(d(10 * 3600)), "10h");
    assert_eq!(human_duration(d(51 * 3600)), "2d3h");
    assert_eq!(human_duration(d(10 * 86400)), "10d");
    assert_eq!(human_duration(d(800 * 86400)), "2y70d");
    assert_eq!(human_duration(d(-1)), "0s");
    assert_eq!(human_duration(d(-5)), "<invalid>");
}

fn crash_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
            "creationTimestamp": "2024-01-10T11:56:40Z"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-10T11:55:00Z"}}}]}})
}

#[test]
fn pod_columns_and_cells() {
    let t = table(
        "",
        "Pod",
        &[crash_pod()],
        now(),
        IncludeObject::Metadata,
        true,
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        column_names(&t),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web-1"),
            json!("1/2"),
            json!("CrashLoopBackOff"),
            json!("5 (5m ago)"),
            json!("3m20s"),
            json!("10.0.0.5"),
            json!("node-a"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": crash_pod()["metadata"].clone()})
    );
    let none = table("", "Pod", &[crash_pod()], now(), IncludeObject::None, false);
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(none["columnDefinitions"], json!([]));
    let full = table(
        "",
        "Pod",
        &[crash_pod()],
        now(),
        IncludeObject::Object,
        true,
    );
    assert_eq!(full["rows"][0]["object"], crash_pod());
}

#[test]
fn pod_status_variants() {
    let status_of = |pod: Value| {
        cells(
            &table("", "Pod", &[pod], now(), IncludeObject::None, true),
            0,
        )[2]
        .clone()
    };
    let mut init = crash_pod();
    init["spec"]["initContainers"] = json!([{"name": "init"}]);
    init["status"] = json!({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "restartCount": 0, "state": {"running": {}}}]});
    assert_eq!(status_of(init), "Init:0/1");
    let mut terminating = crash_pod();
    terminating["metadata"]["deletionTimestamp"] = json!("2024-01-10T11:59:00Z");
    assert_eq!(status_of(terminating), "Terminating");
    let completed = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
    let t = table(
        "",
        "Pod",
        std::slice::from_ref(&completed),
        now(),
        IncludeObject::None,
        true,
    );
    assert_eq!(cells(&t, 0)[2], "Completed");
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
    let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
    assert_eq!(
        cells(
            &table("", "Pod", &[pending], now(), IncludeObject::None, true),
            0
        )[1],
        "0/1"
    );
}

#[test]
fn workload_and_service_tables() {
    let deploy = json!({"metadata": {"name": "web", "creationTimestamp": "2024-01-08T09:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "side", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    let t = table(
        "apps",
        "Deployment",
        &[deploy],
        now(),
        IncludeObject::None,
        true,
    );
    assert_eq!(
        column_names(&t),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("2d3h"),
            json!("nginx,side"),
            json!("nginx:1.25,busybox"),
            json!("app=web")
        ]
    );
    let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2024-01-10T11:59:55Z"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"app": "web", "tier": "fe"}}});
    let t = table("", "Service", &[svc], now(), IncludeObject::None, true);
    assert_eq!(
        column_names(&t),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("5s"),
            json!("app=web,tier=fe")
        ]
    );
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": []}});
    let lb_cells = cells(
        &table("", "Service", &[lb], now(), IncludeObject::None, true),
        0,
    );
    assert_eq!(lb_cells[3], "<pending>");
    assert_eq!(lb_cells[4], "<none>");
    let job = json!({"metadata": {"name": "pi"}, "spec": {"completions": 1, "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {"succeeded": 1, "startTime": "2024-01-10T11:00:00Z", "completionTime": "2024-01-10T11:00:42Z",
            "conditions": [{"type": "Complete", "status": "True"}]}});
    let t = table("batch", "Job", &[job], now(), IncludeObject::None, true);
    assert_eq!(
        column_names(&t)[..5],
        ["Name", "Status", "Completions", "Duration", "Age"]
    );
    assert_eq!(
        cells(&t, 0)[1..4],
        [json!("Complete"), json!("1/1"), json!("42s")]
    );
}

#[test]
fn node_namespace_event_and_misc_tables() {
    let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
            "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "Debian"}}});
    let t = table("", "Node", &[node], now(), IncludeObject::None, true);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane"),
            json!("<unknown>"),
            json!("v1.35.0"),
            json!("192.168.1.2"),
            json!("<none>"),
            json!("Debian"),
            json!("<unknown>"),
            json!("<unknown>")
        ]
    );
    let ns = json!({"metadata": {"name": "dev", "creationTimestamp": "2024-01-10T11:50:00Z"}, "status": {"phase": "Active"}});
    let t = table("", "Namespace", &[ns], now(), IncludeObject::None, true);
    assert_eq!(column_names(&t), ["Name", "Status", "Age"]);
    assert_eq!(
        cells(&t, 0),
        vec![json!("dev"), json!("Active"), json!("10m")]
    );
    let event = json!({"metadata": {"name": "web.17a"}, "type": "Warning", "reason": "BackOff",
        "message": " Back-off restarting ", "count": 4,
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{b}"},
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": "2024-01-10T11:00:00Z", "lastTimestamp": "2024-01-10T11:59:30Z"});
    let t = table("", "Event", &[event], now(), IncludeObject::None, true);
    assert_eq!(
        column_names(&t)[..4],
        ["Last Seen", "Type", "Reason", "Object"]
    );
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("30s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-1"),
            json!("spec.containers{b}"),
            json!("kubelet, node-a"),
            json!("Back-off restarting"),
            json!("60m"),
            json!(4),
            json!("web.17a")
        ]
    );
    let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "", "b": ""}});
    assert_eq!(
        cells(
            &table("", "Secret", &[secret], now(), IncludeObject::None, true),
            0
        )[..3],
        [json!("s"), json!("Opaque"), json!(2)]
    );
    let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "node-a"}});
    assert_eq!(
        cells(
            &table(
                "coordination.k8s.io",
                "Lease",
                &[lease],
                now(),
                IncludeObject::None,
                true
            ),
            0
        )[1],
        "node-a"
    );
}

#[test]
fn default_table_for_unknown_kinds() {
    let crd = json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-01-01T00:00:00Z"}});
    let t = table(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        &[crd],
        now(),
        IncludeObject::None,
        true,
    );
    assert_eq!(column_names(&t), ["Name", "Created At"]);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(
        cells(&t, 0),
        vec![json!("widgets.example.com"), json!("2024-01-01T00:00:00Z")]
    );
}

#[test]
fn custom_resource_columns() {
    let columns = vec![
        json!({"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}),
        json!({"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1}),
        json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        json!({"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"}),
    ];
    let widget = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-01-10T11:00:00Z"},
        "spec": {"replicas": 3},
        "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
    let t = custom_resource_table(
        std::slice::from_ref(&widget),
        &columns,
        now(),
        IncludeObject::Metadata,
        true,
    );
    assert_eq!(
        column_names(&t),
        ["Name", "Replicas", "Ready", "Age", "Missing"]
    );
    assert_eq!(t["columnDefinitions"][2]["priority"], 1);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("w1"),
            json!(3),
            json!("True"),
            json!("60m"),
            Value::Null
        ]
    );
    let defaults = custom_resource_table(&[widget], &[], now(), IncludeObject::None, true);
    assert_eq!(column_names(&defaults), ["Name", "Age"]);
    assert_eq!(cells(&defaults, 0)[1], "60m");
}

#[test]
fn json_path_subset() {
    let doc = json!({"a": {"b.c": [1, 2, 3], "list": [{"k": "x", "v": 1}, {"k": "y", "v": 2}]}});
    let eval = |p: &str| {
        JsonPath::parse(p)
            .unwrap()
            .evaluate(&doc)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(eval(".a['b.c'][1]"), vec![json!(2)]);
    assert_eq!(eval("{.a['b.c'][-1]}"), vec![json!(3)]);
    assert_eq!(eval(".a.list[*].k"), vec![json!("x"), json!("y")]);
    assert_eq!(eval(".a.list[?(@.k=='y')].v"), vec![json!(2)]);
    assert_eq!(eval(".a.list[?(@.v!=1)].k"), vec![json!("y")]);
    assert!(eval(".nope.x").is_empty());
    assert!(JsonPath::parse(".a[").is_err());
}

#[test]
fn quota_and_claim_tables() {
    let quota = json!({"metadata": {"name": "q", "creationTimestamp": "2024-01-10T11:59:50Z"},
        "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"},
            "used": {"pods": "3", "requests.cpu": "500m"}}});
    let t = table(
        "",
        "ResourceQuota",
        &[quota],
        now(),
        IncludeObject::None,
        true,
    );
    assert_eq!(column_names(&t), ["Name", "Request", "Limit", "Age"]);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("q"),
            json!("pods: 3/10, requests.cpu: 500m/1"),
            json!("limits.cpu: 0/2"),
            json!("10s")
        ]
    );
    let pvc = json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv-1", "storageClassName": "fast", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"]}});
    let t = table(
        "",
        "PersistentVolumeClaim",
        &[pvc],
        now(),
        IncludeObject::None,
        true,
    );
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("data"),
            json!("Bound"),
            json!("pv-1"),
            json!("1Gi"),
            json!("RWO,ROX"),
            json!("fast"),
            json!("<unset>"),
            json!("<unknown>"),
            json!("Filesystem")
        ]
    );
}
