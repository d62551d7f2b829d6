//! `kubectl delete` by name, file, selector and `--all`; finalizers hold a deletion.

use std::time::Duration;

use super::harness::Session;

fn configmap(name: &str, labels: &[(&str, &str)]) -> String {
    let mut yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if !labels.is_empty() {
        yaml.push_str("  labels:\n");
    }
    for (key, value) in labels {
        yaml.push_str(&format!("    {key}: {value}\n"));
    }
    yaml.push_str("data:\n  k: v\n");
    yaml
}

fn assert_gone(s: &Session, name: &str) {
    let stderr = s.kubectl_fail(&["get", "configmap", name]);
    assert_eq!(
        stderr.trim(),
        format!(r#"Error from server (NotFound): configmaps "{name}" not found"#)
    );
}

pub fn delete_by_name_file_selector_and_all(s: &Session) {
    let manifests = [
        configmap("by-name", &[]),
        configmap("by-file", &[]),
        configmap("labelled-1", &[("group", "doomed")]),
        configmap("labelled-2", &[("group", "doomed")]),
        configmap("spared", &[("group", "kept")]),
        configmap("last", &[]),
    ]
    .join("---\n");
    s.create_stdin(&manifests);
    let deleted = |name: &str| format!("configmap \"{name}\" deleted from {} namespace", s.ns);

    assert_eq!(
        s.kubectl_ok(&["delete", "configmap", "by-name"]),
        deleted("by-name") + "\n"
    );
    assert_gone(s, "by-name");

    let manifest = s.write_file("by-file.yaml", &configmap("by-file", &[]));
    let by_file = s.kubectl_ok(&["delete", "-f", manifest.to_str().expect("UTF-8 path")]);
    assert_eq!(by_file, deleted("by-file") + "\n");
    assert_gone(s, "by-file");

    let by_label = s.kubectl_ok(&["delete", "configmap", "-l", "group=doomed"]);
    let mut lines: Vec<&str> = by_label.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [deleted("labelled-1"), deleted("labelled-2")],
        "{by_label}"
    );
    assert_gone(s, "labelled-1");
    assert_gone(s, "labelled-2");
    assert_eq!(s.jsonpath("configmap/spared", "{.metadata.name}"), "spared");

    let all = s.kubectl_ok(&["delete", "configmap", "--all"]);
    let lines: Vec<&str> = all.lines().collect();
    assert!(lines.contains(&deleted("spared").as_str()), "{all}");
    assert!(lines.contains(&deleted("last").as_str()), "{all}");
    assert_gone(s, "spared");
    assert_gone(s, "last");

    let stderr = s.kubectl_fail(&["delete", "configmap", "by-name"]);
    assert_eq!(
        stderr.trim(),
        r#"Error from server (NotFound): configmaps "by-name" not found"#
    );
    let ignored = s.kubectl_ok(&["delete", "configmap", "by-name", "--ignore-not-found"]);
    assert_eq!(ignored, "");
}

pub fn finalizer_holds_deletion(s: &Session) {
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers:\n  - example.com/hold\ndata:\n  k: v\n";
    s.create_stdin(held);
    let out = s.kubectl_ok(&["delete", "configmap", "held", "--wait=false"]);
    assert_eq!(
        out,
        format!("configmap \"held\" deleted from {} namespace\n", s.ns)
    );

    // Still there, marked for deletion, finalizer intact.
    let obj = s.get_json(&["configmap", "held"]);
    let stamp = obj["metadata"]["deletionTimestamp"]
        .as_str()
        .unwrap_or_default();
    assert!(stamp.ends_with('Z'), "deletionTimestamp not set: {obj}");
    assert_eq!(
        obj["metadata"]["finalizers"],
        serde_json::json!(["example.com/hold"]),
        "{obj}"
    );
    // A terminating object accepts no new finalizers.
    let add = r#"{"metadata":{"finalizers":["example.com/hold","example.com/another"]}}"#;
    let stderr = s.kubectl_fail(&["patch", "configmap", "held", "--type=merge", "-p", add]);
    assert!(
        stderr.contains("no new finalizers can be added if the object is being deleted"),
        "{stderr}"
    );

    let released = s.kubectl_ok(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    assert_eq!(released, "configmap/held patched\n");
    s.eventually("configmap held is deleted", Duration::from_secs(30), || {
        let out = s.kubectl(&["get", "configmap", "held"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains(r#"configmaps "held" not found"#) {
            Ok(())
        } else {
            Err(format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)))
        }
    });
}
