//! `diff`, `replace`, `patch` (strategic, merge, JSON), `label`, `annotate`, `scale`.

use super::harness::{Session, deployment};

pub fn diff_reports_changes_without_persisting(s: &Session) {
    assert_eq!(
        s.apply_stdin(&deployment("differ", 2, "nginx:1.27")),
        "deployment.apps/differ created\n"
    );

    let same = s.kubectl_stdin(&["diff", "-f", "-"], &deployment("differ", 2, "nginx:1.27"));
    assert_eq!(
        same.status.code(),
        Some(0),
        "diff of an unchanged manifest\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&same.stdout),
        String::from_utf8_lossy(&same.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&same.stdout), "");

    let changed = s.kubectl_stdin(&["diff", "-f", "-"], &deployment("differ", 3, "nginx:1.27"));
    let stdout = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(
        changed.status.code(),
        Some(1),
        "diff of a changed manifest\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"-  replicas: 2"), "{stdout}");
    assert!(lines.contains(&"+  replicas: 3"), "{stdout}");
    // diff is a dry run: nothing changed on the server.
    assert_eq!(s.jsonpath("deploy/differ", "{.spec.replicas}"), "2");
    assert_eq!(s.jsonpath("deploy/differ", "{.metadata.generation}"), "1");
}

pub fn replace_and_optimistic_concurrency(s: &Session) {
    s.create_stdin(&deployment("replaced", 2, "nginx:1.27"));
    let stale = s.get_json(&["deploy", "replaced"]);

    let replaced = s.kubectl_stdin_ok(
        &["replace", "-f", "-"],
        &deployment("replaced", 4, "nginx:1.28"),
    );
    assert_eq!(replaced, "deployment.apps/replaced replaced\n");
    assert_eq!(s.jsonpath("deploy/replaced", "{.spec.replicas}"), "4");
    assert_eq!(
        s.jsonpath(
            "deploy/replaced",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.28"
    );
    assert_eq!(s.jsonpath("deploy/replaced", "{.metadata.generation}"), "2");

    // A PUT carrying the old resourceVersion must lose the race.
    let mut outdated = stale.clone();
    outdated["spec"]["replicas"] = serde_json::json!(7);
    let stderr = s.kubectl_stdin_fail(&["replace", "-f", "-"], &outdated.to_string());
    assert!(stderr.contains("Error from server (Conflict)"), "{stderr}");
    assert!(
        stderr.contains(
            r#"Operation cannot be fulfilled on deployments.apps "replaced": the object has been modified; please apply your changes to the latest version and try again"#
        ),
        "{stderr}"
    );
    assert_eq!(s.jsonpath("deploy/replaced", "{.spec.replicas}"), "4");
}

pub fn patch_strategic_merge_and_json(s: &Session) {
    s.create_stdin(&deployment("patched", 2, "nginx:1.27"));
    let names = "{.spec.template.spec.containers[*].name}";

    // Strategic merge: containers merge by name, so the port survives an image change.
    let image_patch =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}"#;
    assert_eq!(
        s.kubectl_ok(&["patch", "deploy", "patched", "-p", image_patch]),
        "deployment.apps/patched patched\n"
    );
    assert_eq!(
        s.jsonpath(
            "deploy/patched",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.28"
    );
    assert_eq!(
        s.jsonpath(
            "deploy/patched",
            "{.spec.template.spec.containers[0].ports[0].containerPort}"
        ),
        "80"
    );
    // The same patch again changes nothing, and kubectl can tell.
    assert_eq!(
        s.kubectl_ok(&[
            "patch",
            "deploy",
            "patched",
            "--type=strategic",
            "-p",
            image_patch
        ]),
        "deployment.apps/patched patched (no change)\n"
    );
    let sidecar = r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}"#;
    s.kubectl_ok(&[
        "patch",
        "deploy",
        "patched",
        "--type=strategic",
        "-p",
        sidecar,
    ]);
    assert_eq!(s.jsonpath("deploy/patched", names), "web sidecar");

    // JSON merge patch: a list is replaced as a whole.
    let merge =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.29"}]}}}}"#;
    assert_eq!(
        s.kubectl_ok(&["patch", "deploy", "patched", "--type=merge", "-p", merge]),
        "deployment.apps/patched patched\n"
    );
    assert_eq!(s.jsonpath("deploy/patched", names), "web");
    assert_eq!(
        s.jsonpath(
            "deploy/patched",
            "{.spec.template.spec.containers[0].ports}"
        ),
        ""
    );
    assert_eq!(
        s.jsonpath(
            "deploy/patched",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.29"
    );
    let null_removes = r#"{"metadata":{"labels":{"tier":null}}}"#;
    s.kubectl_ok(&[
        "patch",
        "deploy",
        "patched",
        "--type=merge",
        "-p",
        null_removes,
    ]);
    assert_eq!(
        s.jsonpath("deploy/patched", "{.metadata.labels}"),
        r#"{"app":"patched"}"#
    );

    // JSON patch.
    let json_patch = r#"[{"op":"replace","path":"/spec/replicas","value":5},{"op":"add","path":"/metadata/annotations","value":{"via":"json-patch"}}]"#;
    assert_eq!(
        s.kubectl_ok(&[
            "patch",
            "deploy",
            "patched",
            "--type=json",
            "-p",
            json_patch
        ]),
        "deployment.apps/patched patched\n"
    );
    assert_eq!(s.jsonpath("deploy/patched", "{.spec.replicas}"), "5");
    assert_eq!(
        s.jsonpath("deploy/patched", "{.metadata.annotations.via}"),
        "json-patch"
    );
    // A failing `test` operation rejects the whole patch.
    let failing = r#"[{"op":"test","path":"/spec/replicas","value":4},{"op":"replace","path":"/spec/replicas","value":9}]"#;
    s.kubectl_fail(&["patch", "deploy", "patched", "--type=json", "-p", failing]);
    assert_eq!(s.jsonpath("deploy/patched", "{.spec.replicas}"), "5");
}

pub fn label_annotate_and_scale(s: &Session) {
    s.create_stdin(&deployment("labeled", 2, "nginx:1.27"));

    let stderr = s.kubectl_fail(&["label", "deploy", "labeled", "tier=backend"]);
    assert!(
        stderr.contains("'tier' already has a value (frontend), and --overwrite is false"),
        "{stderr}"
    );
    assert_eq!(
        s.kubectl_ok(&["label", "deploy", "labeled", "tier=backend", "--overwrite"]),
        "deployment.apps/labeled labeled\n"
    );
    s.kubectl_ok(&["label", "deploy", "labeled", "extra=yes"]);
    let labels = &s.get_json(&["deploy", "labeled"])["metadata"]["labels"];
    assert_eq!(
        *labels,
        serde_json::json!({"app": "labeled", "tier": "backend", "extra": "yes"})
    );
    assert_eq!(
        s.kubectl_ok(&["label", "deploy", "labeled", "extra-"]),
        "deployment.apps/labeled unlabeled\n"
    );
    assert_eq!(
        s.jsonpath("deploy/labeled", "{.metadata.labels}"),
        r#"{"app":"labeled","tier":"backend"}"#
    );

    assert_eq!(
        s.kubectl_ok(&["annotate", "deploy", "labeled", "note=hello world"]),
        "deployment.apps/labeled annotated\n"
    );
    assert_eq!(
        s.jsonpath("deploy/labeled", "{.metadata.annotations.note}"),
        "hello world"
    );

    assert_eq!(
        s.kubectl_ok(&["scale", "deploy/labeled", "--replicas=3"]),
        "deployment.apps/labeled scaled\n"
    );
    assert_eq!(s.jsonpath("deploy/labeled", "{.spec.replicas}"), "3");
    let stderr = s.kubectl_fail(&[
        "scale",
        "deploy/labeled",
        "--current-replicas=2",
        "--replicas=4",
    ]);
    assert!(
        stderr.contains("Expected replicas to be 2, was 3"),
        "{stderr}"
    );
    assert_eq!(s.jsonpath("deploy/labeled", "{.spec.replicas}"), "3");

    let scale_path = format!(
        "/apis/apps/v1/namespaces/{}/deployments/labeled/scale",
        s.ns
    );
    let scale: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "--raw", &scale_path])).expect("Scale JSON");
    assert_eq!(scale["kind"], "Scale", "{scale}");
    assert_eq!(scale["apiVersion"], "autoscaling/v1", "{scale}");
    assert_eq!(scale["spec"]["replicas"], 3, "{scale}");
    assert_eq!(scale["status"]["selector"], "app=labeled", "{scale}");
}
