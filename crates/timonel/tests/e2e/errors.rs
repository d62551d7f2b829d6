//! Errors carry upstream `Status` reasons, which kubectl turns into its usual messages.

use super::harness::Session;

pub fn errors_carry_upstream_reasons(s: &Session) {
    let dup = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\ndata:\n  k: v\n";
    s.create_stdin(dup);
    let stderr = s.kubectl_stdin_fail(&["create", "-f", "-"], dup);
    assert!(
        stderr.contains(r#"Error from server (AlreadyExists): error when creating "STDIN": configmaps "dup" already exists"#),
        "{stderr}"
    );

    let bad_name = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Foo_Bar\n";
    let stderr = s.kubectl_stdin_fail(&["create", "-f", "-"], bad_name);
    assert!(
        stderr.contains(r#"The ConfigMap "Foo_Bar" is invalid: metadata.name: Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"#),
        "{stderr}"
    );

    let unknown_field =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\nbogusField: 1\n";
    let stderr = s.kubectl_stdin_fail(&["create", "-f", "-"], unknown_field);
    assert!(
        stderr.contains("Error from server (BadRequest)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"strict decoding error: unknown field "bogusField""#),
        "{stderr}"
    );
    // --validate=false sends fieldValidation=Ignore: the field is dropped, the object created.
    let created = s.kubectl_stdin_ok(&["create", "--validate=false", "-f", "-"], unknown_field);
    assert_eq!(created, "configmap/strict created\n");
    // --validate=warn: created, with the server's warning printed.
    let lenient = unknown_field.replace("name: strict", "name: lenient");
    let out = s.kubectl_stdin(&["create", "--validate=warn", "-f", "-"], &lenient);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains(r#"Warning: unknown field "bogusField""#),
        "{warning}"
    );

    let missing_ns = format!("{}-missing", s.ns);
    let stderr = s.kubectl_stdin_fail(
        &["create", "-f", "-", "--namespace", &missing_ns],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: orphan\n",
    );
    assert!(
        stderr.contains(&format!(
            r#"Error from server (NotFound): error when creating "STDIN": namespaces "{missing_ns}" not found"#
        )),
        "{stderr}"
    );

    let stderr = s.kubectl_fail(&["get", "configmap", "nope"]);
    assert_eq!(
        stderr.trim(),
        r#"Error from server (NotFound): configmaps "nope" not found"#
    );

    let malformed = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n";
    let stderr = s.kubectl_stdin_fail(&["create", "-f", "-"], malformed);
    assert!(stderr.contains("error converting YAML to JSON"), "{stderr}");

    let stderr = s.kubectl_fail(&["get", "frobnicators"]);
    assert!(
        stderr.contains(r#"the server doesn't have a resource type "frobnicators""#),
        "{stderr}"
    );

    // A Deployment's selector is immutable after creation: Invalid, naming the field.
    let wrong_immutable = r#"{"spec":{"selector":{"matchLabels":{"app":"other"}}}}"#;
    s.create_stdin(&super::harness::deployment("immutable", 1, "nginx:1.27"));
    let stderr = s.kubectl_fail(&[
        "patch",
        "deploy",
        "immutable",
        "--type=merge",
        "-p",
        wrong_immutable,
    ]);
    assert!(
        stderr.contains(r#"The Deployment "immutable" is invalid"#),
        "{stderr}"
    );
    assert!(stderr.contains("spec.selector"), "{stderr}");
    assert!(stderr.contains("field is immutable"), "{stderr}");
}
