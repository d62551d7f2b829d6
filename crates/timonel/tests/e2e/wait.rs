//! `kubectl wait` for a status condition (set via the status subresource), a JSONPath value,
//! and deletion.

use std::time::Duration;

use super::harness::{Session, fixture};

const WAIT_EXIT: Duration = Duration::from_secs(60);

pub fn wait_for_condition_jsonpath_and_delete(s: &Session) {
    let crd = "customresourcedefinition.apiextensions.k8s.io/gadgets.e2e.timonel.dev";
    let applied = s.apply_stdin(&fixture("crd-gadgets.yaml", &[]));
    assert_eq!(applied, format!("{crd} created\n"));
    assert_eq!(
        s.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd/gadgets.e2e.timonel.dev",
            "--timeout=30s"
        ]),
        format!("{crd} condition met\n")
    );
    s.create_stdin("apiVersion: e2e.timonel.dev/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  mode: auto\n");

    // Not ready yet: a short wait times out.
    let stderr = s.kubectl_fail(&["wait", "--for=condition=Ready", "gadget/g1", "--timeout=1s"]);
    assert!(
        stderr.contains("timed out waiting for the condition on gadgets/g1"),
        "{stderr}"
    );

    let waiter = s.spawn_kubectl(&[
        "wait",
        "--for=condition=Ready",
        "gadget/g1",
        "--timeout=60s",
    ]);
    let ready = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Tested","message":"set by the e2e test"}]}}"#;
    assert_eq!(
        s.kubectl_ok(&[
            "patch",
            "gadget",
            "g1",
            "--subresource=status",
            "--type=merge",
            "-p",
            ready
        ]),
        "gadget.e2e.timonel.dev/g1 patched\n"
    );
    let (status, stdout, stderr) = waiter.finish(WAIT_EXIT);
    assert!(
        status.success(),
        "kubectl wait failed ({status}): {stdout}\n{stderr}"
    );
    assert_eq!(stdout, "gadget.e2e.timonel.dev/g1 condition met");

    // With a status subresource, the main resource ignores changes to status.
    let not_ready = r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#;
    s.kubectl_ok(&["patch", "gadget", "g1", "--type=merge", "-p", not_ready]);
    assert_eq!(
        s.jsonpath("gadget/g1", "{.status.conditions[0].status}"),
        "True"
    );

    // --for=jsonpath on a ConfigMap changed after the wait started.
    s.create_stdin(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flag\ndata:\n  state: pending\n",
    );
    let waiter = s.spawn_kubectl(&[
        "wait",
        "--for=jsonpath={.data.state}=ready",
        "configmap/flag",
        "--timeout=60s",
    ]);
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "flag",
        "--type=merge",
        "-p",
        r#"{"data":{"state":"ready"}}"#,
    ]);
    let (status, stdout, stderr) = waiter.finish(WAIT_EXIT);
    assert!(
        status.success(),
        "kubectl wait failed ({status}): {stdout}\n{stderr}"
    );
    assert_eq!(stdout, "configmap/flag condition met");

    // --for=delete on an object a finalizer keeps alive until the wait is running.
    s.create_stdin(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: doomed\n  finalizers:\n  - example.com/hold\n",
    );
    s.kubectl_ok(&["delete", "configmap", "doomed", "--wait=false"]);
    let stderr = s.kubectl_fail(&["wait", "--for=delete", "configmap/doomed", "--timeout=1s"]);
    assert!(
        stderr.contains("timed out waiting for the condition on configmaps/doomed"),
        "{stderr}"
    );
    let waiter = s.spawn_kubectl(&["wait", "--for=delete", "configmap/doomed", "--timeout=60s"]);
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "doomed",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let (status, stdout, stderr) = waiter.finish(WAIT_EXIT);
    assert!(
        status.success(),
        "kubectl wait --for=delete failed ({status}): {stdout}\n{stderr}"
    );
    // If the object was gone before kubectl's first GET, kubectl succeeds silently; the 1 s
    // wait above already showed that it does not succeed while the object exists.
    assert!(
        stdout.is_empty() || stdout == "configmap/doomed condition met",
        "{stdout}"
    );
}
