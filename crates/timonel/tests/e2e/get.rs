//! `kubectl get` against Deployments: server-side Tables, output formats, selectors, sorting.

use super::harness::{Session, deployment, is_age, row_where, table};

pub fn deployment_table_and_output_formats(s: &Session) {
    let created = s.create_stdin(&deployment("web", 2, "nginx:1.27"));
    assert_eq!(created, "deployment.apps/web created\n");

    // The default table comes from the server's Table columns.
    let out = s.kubectl_ok(&["get", "deploy"]);
    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert_eq!(rows.len(), 2, "{out}");
    let web = &rows[1];
    assert_eq!(web[0], "web");
    // No node agent runs, so no pod can be ready or available.
    assert_eq!(web[1], "0/2", "{out}");
    let up_to_date: u32 = web[2]
        .parse()
        .unwrap_or_else(|_| panic!("UP-TO-DATE not a number: {out}"));
    assert!(up_to_date <= 2, "{out}");
    assert_eq!(web[3], "0", "{out}");
    assert!(is_age(&web[4]), "AGE {:?} in:\n{out}", web[4]);

    // A single-object GET is a one-row Table too.
    let one = table(&s.kubectl_ok(&["get", "deployment", "web"]));
    assert_eq!(one.len(), 2);
    assert_eq!(one[1][0], "web");

    // Priority-1 columns appear with -o wide.
    let wide = s.kubectl_ok(&["get", "deploy", "-o", "wide"]);
    let rows = table(&wide);
    assert_eq!(
        rows[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{wide}"
    );
    assert_eq!(rows[1][0], "web");
    assert_eq!(rows[1][5..], ["web", "nginx:1.27", "app=web"], "{wide}");

    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "-o", "name"]),
        "deployment.apps/web\n"
    );
    assert_eq!(s.jsonpath("deploy/web", "{.spec.replicas}"), "2");
    let columns = "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas,\
                   IMAGE:.spec.template.spec.containers[0].image";
    let custom = s.kubectl_ok(&["get", "deploy", "web", "-o", columns]);
    assert_eq!(
        table(&custom),
        [["NAME", "REPLICAS", "IMAGE"], ["web", "2", "nginx:1.27"]],
        "{custom}"
    );

    // -o yaml shows the object as stored, with the defaults a real API server applies.
    let yaml = s.kubectl_ok(&["get", "deploy", "web", "-o", "yaml"]);
    let obj: serde_json::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
    assert_eq!(obj["apiVersion"], "apps/v1", "{yaml}");
    assert_eq!(obj["kind"], "Deployment", "{yaml}");
    assert_eq!(obj["metadata"]["name"], "web", "{yaml}");
    assert_eq!(obj["metadata"]["namespace"], s.ns.as_str(), "{yaml}");
    assert_eq!(obj["metadata"]["generation"], 1, "{yaml}");
    for field in ["uid", "resourceVersion", "creationTimestamp"] {
        let value = obj["metadata"][field].as_str().unwrap_or_default();
        assert!(!value.is_empty(), "metadata.{field} missing:\n{yaml}");
    }
    let spec = &obj["spec"];
    assert_eq!(spec["replicas"], 2, "{yaml}");
    assert_eq!(spec["revisionHistoryLimit"], 10, "{yaml}");
    assert_eq!(spec["progressDeadlineSeconds"], 600, "{yaml}");
    assert_eq!(spec["strategy"]["type"], "RollingUpdate", "{yaml}");
    assert_eq!(
        spec["strategy"]["rollingUpdate"]["maxSurge"], "25%",
        "{yaml}"
    );
    assert_eq!(
        spec["strategy"]["rollingUpdate"]["maxUnavailable"], "25%",
        "{yaml}"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always", "{yaml}");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst", "{yaml}");
    assert_eq!(pod["schedulerName"], "default-scheduler", "{yaml}");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30, "{yaml}");
    let container = &pod["containers"][0];
    assert_eq!(container["imagePullPolicy"], "IfNotPresent", "{yaml}");
    assert_eq!(
        container["terminationMessagePath"], "/dev/termination-log",
        "{yaml}"
    );
    assert_eq!(container["terminationMessagePolicy"], "File", "{yaml}");
    assert_eq!(container["ports"][0]["protocol"], "TCP", "{yaml}");

    let json = s.get_json(&["deploy", "web"]);
    assert_eq!(json["kind"], "Deployment");
    assert_eq!(json["metadata"]["uid"], obj["metadata"]["uid"]);
    assert_eq!(
        json["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );

    let list = s.get_json(&["deploy"]);
    assert_eq!(
        list["kind"], "List",
        "kubectl wraps lists it prints as List: {list}"
    );
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
}

pub fn selectors_sorting_labels_and_all_namespaces(s: &Session) {
    // Replica counts run opposite to the names, so the two sort orders differ.
    let manifests = [
        deployment("alpha", 3, "nginx:1.27"),
        deployment("web", 2, "nginx:1.27"),
        deployment("zulu", 1, "nginx:1.27"),
    ]
    .join("---\n");
    let created = s.create_stdin(&manifests);
    assert_eq!(
        created,
        "deployment.apps/alpha created\ndeployment.apps/web created\ndeployment.apps/zulu created\n"
    );

    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "-l", "app=web", "-o", "name"]),
        "deployment.apps/web\n"
    );
    let others = sorted_lines(&s.kubectl_ok(&["get", "deploy", "-l", "app!=web", "-o", "name"]));
    assert_eq!(others, ["deployment.apps/alpha", "deployment.apps/zulu"]);
    let set_based =
        sorted_lines(&s.kubectl_ok(&["get", "deploy", "-l", "app in (alpha,zulu)", "-o", "name"]));
    assert_eq!(set_based, ["deployment.apps/alpha", "deployment.apps/zulu"]);
    let none = s.kubectl(&["get", "deploy", "-l", "app=nothing"]);
    assert!(none.status.success());
    assert_eq!(String::from_utf8_lossy(&none.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&none.stderr).trim(),
        format!("No resources found in {} namespace.", s.ns)
    );
    let by_field = s.kubectl_ok(&[
        "get",
        "deploy",
        "--field-selector",
        "metadata.name=zulu",
        "-o",
        "name",
    ]);
    assert_eq!(by_field, "deployment.apps/zulu\n");

    let by_name = table(&s.kubectl_ok(&["get", "deploy", "--sort-by=.metadata.name"]));
    assert_eq!(first_column(&by_name), ["alpha", "web", "zulu"]);
    let by_replicas = table(&s.kubectl_ok(&["get", "deploy", "--sort-by=.spec.replicas"]));
    assert_eq!(first_column(&by_replicas), ["zulu", "web", "alpha"]);

    let labelled = s.kubectl_ok(&["get", "deploy", "web", "--show-labels"]);
    let rows = table(&labelled);
    assert_eq!(
        rows[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "LABELS"],
        "{labelled}"
    );
    assert_eq!(rows[1][5], "app=web,tier=frontend", "{labelled}");
    let label_column = s.kubectl_ok(&["get", "deploy", "web", "-L", "tier"]);
    let rows = table(&label_column);
    assert_eq!(
        rows[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "TIER"],
        "{label_column}"
    );
    assert_eq!(rows[1][5], "frontend", "{label_column}");

    // -A lists across namespaces and adds a NAMESPACE column.
    let other_ns = s.extra_namespace("other");
    let created = s.kubectl_stdin_ok(
        &["create", "-f", "-", "--namespace", &other_ns],
        &deployment("web", 1, "nginx:1.27"),
    );
    assert_eq!(created, "deployment.apps/web created\n");
    let all = s.kubectl_ok(&["get", "deploy", "-A"]);
    let rows = table(&all);
    assert_eq!(
        rows[0],
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE"
        ],
        "{all}"
    );
    let mine: Vec<&str> = rows
        .iter()
        .filter(|row| row[0] == s.ns)
        .map(|row| row[1].as_str())
        .collect();
    assert_eq!(sorted(mine), ["alpha", "web", "zulu"], "{all}");
    let theirs = row_where(&rows, 0, &other_ns, &all);
    assert_eq!(theirs[1..3], ["web", "0/1"], "{all}");

    // Several types at once: each name is prefixed with its kind.
    let configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  k: v\n";
    s.create_stdin(configmap);
    let mixed = s.kubectl_ok(&["get", "deploy,cm", "-o", "name"]);
    let lines: Vec<&str> = mixed.lines().collect();
    assert!(lines.contains(&"deployment.apps/alpha"), "{mixed}");
    assert!(lines.contains(&"configmap/settings"), "{mixed}");
    let mixed_table = s.kubectl_ok(&["get", "deploy,cm"]);
    assert!(
        mixed_table
            .lines()
            .any(|l| l.starts_with("deployment.apps/web ")),
        "{mixed_table}"
    );
    assert!(
        mixed_table
            .lines()
            .any(|l| l.starts_with("configmap/settings ")),
        "{mixed_table}"
    );
}

fn first_column(rows: &[Vec<String>]) -> Vec<&str> {
    rows[1..].iter().map(|row| row[0].as_str()).collect()
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort_unstable();
    lines
}

fn sorted(mut items: Vec<&str>) -> Vec<&str> {
    items.sort_unstable();
    items
}
