//! CustomResourceDefinitions: schema validation, printer columns, status and scale.

use std::time::Duration;

use super::harness::{Session, fixture, is_age, table};

fn widget(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: e2e.timonel.dev/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

pub fn custom_resources_schema_columns_and_scale(s: &Session) {
    let crd_name = "widgets.e2e.timonel.dev";
    assert_eq!(
        s.apply_stdin(&fixture("crd-widgets.yaml", &[])),
        format!("customresourcedefinition.apiextensions.k8s.io/{crd_name} created\n")
    );
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{crd_name}"),
        "--timeout=30s",
    ]);

    let crds = s.kubectl_ok(&["get", "crd", crd_name]);
    let rows = table(&crds);
    assert_eq!(rows[0], ["NAME", "CREATED", "AT"], "{crds}");
    assert_eq!(rows[1][0], crd_name, "{crds}");
    assert!(
        rows[1][1].ends_with('Z') && rows[1][1].contains('T'),
        "CREATED AT is RFC 3339: {crds}"
    );

    // Discovery learns the new type (kubectl re-reads it when a type is unknown).
    let resources = s.kubectl_ok(&["api-resources", "--api-group=e2e.timonel.dev"]);
    let rows = table(&resources);
    assert!(
        rows.iter()
            .any(|row| row == &["widgets", "wdg", "e2e.timonel.dev/v1", "true", "Widget"]),
        "{resources}"
    );

    assert_eq!(
        s.create_stdin(&widget("w1", "  size: 3\n  color: blue\n  replicas: 1\n")),
        "widget.e2e.timonel.dev/w1 created\n"
    );
    let listed = s.kubectl_ok(&["get", "widgets"]);
    let rows = table(&listed);
    assert_eq!(rows[0], ["NAME", "SIZE", "COLOR", "AGE"], "{listed}");
    assert_eq!(rows[1][..3], ["w1", "3", "blue"], "{listed}");
    assert!(is_age(&rows[1][3]), "{listed}");
    assert_eq!(
        s.kubectl_ok(&["get", "wdg", "-o", "name"]),
        "widget.e2e.timonel.dev/w1\n"
    );

    assert_eq!(
        s.kubectl_ok(&[
            "patch",
            "widget",
            "w1",
            "--type=merge",
            "-p",
            r#"{"spec":{"color":"red"}}"#
        ]),
        "widget.e2e.timonel.dev/w1 patched\n"
    );
    assert_eq!(
        table(&s.kubectl_ok(&["get", "widget", "w1"]))[1][..3],
        ["w1", "3", "red"]
    );

    // Schema violations are rejected with the field path.
    let wrong_type =
        s.kubectl_stdin_fail(&["create", "-f", "-"], &widget("bad-type", "  size: big\n"));
    assert!(
        wrong_type.contains(r#"The Widget "bad-type" is invalid"#),
        "{wrong_type}"
    );
    assert!(wrong_type.contains("spec.size"), "{wrong_type}");
    assert!(
        wrong_type.contains("must be of type integer"),
        "{wrong_type}"
    );
    let wrong_enum = s.kubectl_stdin_fail(
        &["create", "-f", "-"],
        &widget("bad-enum", "  size: 1\n  color: purple\n"),
    );
    assert!(
        wrong_enum.contains(
            r#"spec.color: Unsupported value: "purple": supported values: "red", "green", "blue""#
        ),
        "{wrong_enum}"
    );
    let too_small = s.kubectl_stdin_fail(&["create", "-f", "-"], &widget("bad-min", "  size: 0\n"));
    assert!(
        too_small.contains("spec.size: Invalid value: 0"),
        "{too_small}"
    );
    assert!(
        too_small.contains("should be greater than or equal to 1"),
        "{too_small}"
    );
    let missing = s.kubectl_stdin_fail(
        &["create", "-f", "-"],
        &widget("bad-missing", "  color: red\n"),
    );
    assert!(missing.contains("spec.size: Required value"), "{missing}");
    let unknown = s.kubectl_stdin_fail(
        &["create", "-f", "-"],
        &widget("bad-field", "  size: 1\n  unknownField: x\n"),
    );
    assert!(
        unknown.contains(r#"strict decoding error: unknown field "spec.unknownField""#),
        "{unknown}"
    );
    for rejected in [
        "bad-type",
        "bad-enum",
        "bad-min",
        "bad-missing",
        "bad-field",
    ] {
        s.kubectl_fail(&["get", "widget", rejected]);
    }

    // The scale subresource maps to .spec.replicas / .status.replicas.
    assert_eq!(
        s.kubectl_ok(&["scale", "widget/w1", "--replicas=4"]),
        "widget.e2e.timonel.dev/w1 scaled\n"
    );
    assert_eq!(s.jsonpath("widget/w1", "{.spec.replicas}"), "4");
    assert_eq!(
        s.kubectl_ok(&[
            "patch",
            "widget",
            "w1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":4,"ready":true}}"#
        ]),
        "widget.e2e.timonel.dev/w1 patched\n"
    );
    assert_eq!(s.jsonpath("widget/w1", "{.status.ready}"), "true");
    let scale_path = format!(
        "/apis/e2e.timonel.dev/v1/namespaces/{}/widgets/w1/scale",
        s.ns
    );
    let scale: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "--raw", &scale_path])).expect("Scale JSON");
    assert_eq!(scale["kind"], "Scale", "{scale}");
    assert_eq!(scale["spec"]["replicas"], 4, "{scale}");
    assert_eq!(scale["status"]["replicas"], 4, "{scale}");

    s.kubectl_ok(&["delete", "widget", "w1"]);
    s.kubectl_fail(&["get", "widget", "w1"]);
    // A CRD's deletion finishes once its cleanup finalizer has run.
    s.kubectl_ok(&["delete", "crd", crd_name, "--wait=false"]);
    s.eventually(
        "the Widget type disappears",
        Duration::from_secs(30),
        || {
            let out = s.kubectl(&["get", "crd", crd_name]);
            if out.status.success() {
                Err(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Ok(())
            }
        },
    );
}
