//! `kubectl version`, `api-resources`, `api-versions`.

use super::harness::{Session, row_where, table};

pub fn version_reports_the_server(s: &Session) {
    let out = s.kubectl_ok(&["version"]);
    let server = out
        .lines()
        .find_map(|line| line.strip_prefix("Server Version: "))
        .unwrap_or_else(|| panic!("no `Server Version:` line in:\n{out}"));
    assert!(
        server.starts_with("v1."),
        "server version {server:?} is not v1.x"
    );

    let json: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["version", "-o", "json"])).expect("version JSON");
    let info = &json["serverVersion"];
    assert_eq!(info["gitVersion"], server, "{json}");
    assert_eq!(info["major"], "1", "{json}");
    // kubectl 1.35 warns beyond a skew of one minor version; we claim to be 1.35-compatible.
    let minor: u32 = info["minor"]
        .as_str()
        .and_then(|m| m.trim_end_matches('+').parse().ok())
        .unwrap_or_else(|| panic!("minor is not a number: {json}"));
    assert!(
        (34..=36).contains(&minor),
        "server minor {minor} out of kubectl 1.35's skew: {json}"
    );
    for field in [
        "gitCommit",
        "gitTreeState",
        "buildDate",
        "goVersion",
        "compiler",
        "platform",
    ] {
        assert!(
            info[field].is_string(),
            "serverVersion.{field} missing: {json}"
        );
    }
}

pub fn api_resources_lists_builtin_kinds(s: &Session) {
    let out = s.kubectl_ok(&["api-resources"]);
    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "{out}"
    );
    let expected: &[&[&str]] = &[
        &["deployments", "deploy", "apps/v1", "true", "Deployment"],
        &["pods", "po", "v1", "true", "Pod"],
        &["namespaces", "ns", "v1", "false", "Namespace"],
        &["configmaps", "cm", "v1", "true", "ConfigMap"],
        &["secrets", "v1", "true", "Secret"],
        &["services", "svc", "v1", "true", "Service"],
        &[
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition",
        ],
    ];
    for row in expected {
        assert_eq!(row_where(&rows, 0, row[0], &out), *row, "row of {}", row[0]);
    }

    let apps = s.kubectl_ok(&["api-resources", "--api-group=apps", "-o", "name"]);
    let names: Vec<&str> = apps.lines().collect();
    assert!(names.contains(&"deployments.apps"), "{apps}");
    assert!(names.contains(&"replicasets.apps"), "{apps}");
    assert!(names.iter().all(|name| name.ends_with(".apps")), "{apps}");

    let cluster_scoped = s.kubectl_ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    let names: Vec<&str> = cluster_scoped.lines().collect();
    assert!(names.contains(&"namespaces"), "{cluster_scoped}");
    assert!(!names.contains(&"pods"), "{cluster_scoped}");
}

pub fn api_versions_lists_groups(s: &Session) {
    let out = s.kubectl_ok(&["api-versions"]);
    let versions: Vec<&str> = out.lines().collect();
    for wanted in [
        "v1",
        "apps/v1",
        "apiextensions.k8s.io/v1",
        "authorization.k8s.io/v1",
    ] {
        assert!(versions.contains(&wanted), "{wanted} missing from:\n{out}");
    }
}
