//! Client-side apply (3-way strategic merge) and server-side apply (field ownership).

use super::harness::{Session, fixture};

pub fn client_side_apply_three_way_merge(s: &Session) {
    let v1 = fixture("deployment-env-v1.yaml", &[]);
    let v2 = fixture("deployment-env-v2.yaml", &[]);
    let env_names = "{.spec.template.spec.containers[0].env[*].name}";

    assert_eq!(s.apply_stdin(&v1), "deployment.apps/envtest created\n");
    assert_eq!(s.jsonpath("deploy/envtest", env_names), "KEEP DROP");
    let annotations = s.get_json(&["deploy", "envtest"])["metadata"]["annotations"].clone();
    let last_applied = annotations["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap_or_else(|| panic!("no last-applied annotation: {annotations}"));
    let last_applied: serde_json::Value =
        serde_json::from_str(last_applied).expect("last-applied is JSON");
    assert_eq!(last_applied["spec"]["replicas"], 1);

    // A label added by someone else is not in last-applied, so apply must leave it alone.
    assert_eq!(
        s.kubectl_ok(&["label", "deploy", "envtest", "added-by=hand"]),
        "deployment.apps/envtest labeled\n"
    );

    // DROP is in last-applied but not in v2: the strategic merge patch deletes it.
    assert_eq!(s.apply_stdin(&v2), "deployment.apps/envtest configured\n");
    assert_eq!(s.jsonpath("deploy/envtest", env_names), "KEEP");
    assert_eq!(
        s.jsonpath(
            "deploy/envtest",
            "{.spec.template.spec.containers[0].env[0].value}"
        ),
        "changed"
    );
    assert_eq!(s.jsonpath("deploy/envtest", "{.spec.replicas}"), "2");
    assert_eq!(
        s.jsonpath("deploy/envtest", "{.metadata.labels.added-by}"),
        "hand"
    );
    assert_eq!(s.jsonpath("deploy/envtest", "{.metadata.generation}"), "2");

    assert_eq!(s.apply_stdin(&v2), "deployment.apps/envtest unchanged\n");
    // An unchanged apply writes nothing.
    assert_eq!(s.jsonpath("deploy/envtest", "{.metadata.generation}"), "2");
}

fn configmap(name: &str, data: &[(&str, &str)]) -> String {
    let mut yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if !data.is_empty() {
        yaml.push_str("data:\n");
    }
    for (key, value) in data {
        yaml.push_str(&format!("  {key}: \"{value}\"\n"));
    }
    yaml
}

/// `(manager, operation)` of each managedFields entry, and the entry of `manager` itself.
fn managers(s: &Session, name: &str) -> (Vec<(String, String)>, serde_json::Value) {
    let obj = s.get_json(&["configmap", name, "--show-managed-fields"]);
    let entries = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap_or_else(|| panic!("no managedFields: {obj}"))
        .clone();
    let pairs = entries
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or_default().to_string(),
                e["operation"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (pairs, serde_json::Value::Array(entries))
}

fn fields_of<'v>(entries: &'v serde_json::Value, manager: &str) -> &'v serde_json::Value {
    entries
        .as_array()
        .and_then(|all| all.iter().find(|e| e["manager"] == manager))
        .map(|e| &e["fieldsV1"])
        .unwrap_or_else(|| panic!("no managedFields entry for {manager}: {entries}"))
}

pub fn server_side_apply_conflicts_and_force(s: &Session) {
    let first = configmap("ssa", &[("key", "one"), ("owned", "by-kubectl")]);
    assert_eq!(
        s.kubectl_stdin_ok(&["apply", "--server-side", "-f", "-"], &first),
        "configmap/ssa serverside-applied\n"
    );
    let (pairs, entries) = managers(s, "ssa");
    assert_eq!(
        pairs,
        [("kubectl".to_string(), "Apply".to_string())],
        "{entries}"
    );
    let kubectl_fields = fields_of(&entries, "kubectl");
    assert!(kubectl_fields["f:data"]["f:key"].is_object(), "{entries}");
    assert!(kubectl_fields["f:data"]["f:owned"].is_object(), "{entries}");

    // Another manager claiming .data.key conflicts with kubectl's ownership.
    let second = configmap("ssa", &[("key", "two")]);
    let stderr = s.kubectl_stdin_fail(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &second,
    );
    assert!(
        stderr.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .data.key"#),
        "{stderr}"
    );
    assert!(
        stderr.contains("--force-conflicts"),
        "kubectl's advice is missing: {stderr}"
    );
    assert_eq!(s.jsonpath("configmap/ssa", "{.data.key}"), "one");

    assert_eq!(
        s.kubectl_stdin_ok(
            &[
                "apply",
                "--server-side",
                "--field-manager=other",
                "--force-conflicts",
                "-f",
                "-"
            ],
            &second
        ),
        "configmap/ssa serverside-applied\n"
    );
    assert_eq!(s.jsonpath("configmap/ssa", "{.data.key}"), "two");
    assert_eq!(s.jsonpath("configmap/ssa", "{.data.owned}"), "by-kubectl");
    let (mut pairs, entries) = managers(s, "ssa");
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("kubectl".to_string(), "Apply".to_string()),
            ("other".to_string(), "Apply".to_string())
        ],
        "{entries}"
    );
    // The forced apply moved .data.key from kubectl to other.
    assert!(
        fields_of(&entries, "kubectl")["f:data"]
            .get("f:key")
            .is_none(),
        "{entries}"
    );
    assert!(
        fields_of(&entries, "kubectl")["f:data"]["f:owned"].is_object(),
        "{entries}"
    );
    assert!(
        fields_of(&entries, "other")["f:data"]["f:key"].is_object(),
        "{entries}"
    );

    // kubectl applies again without .data.owned: as its only owner, it removes the field;
    // .data.key belongs to other and stays.
    let third = configmap("ssa", &[]);
    assert_eq!(
        s.kubectl_stdin_ok(&["apply", "--server-side", "-f", "-"], &third),
        "configmap/ssa serverside-applied\n"
    );
    assert_eq!(s.jsonpath("configmap/ssa", "{.data.owned}"), "");
    assert_eq!(s.jsonpath("configmap/ssa", "{.data.key}"), "two");
}
