//! Helm 4: install (server-side apply, protobuf release Secrets), list, upgrade, uninstall.

use super::harness::{Session, describe_field, scalar_text};

/// The one release in `helm list -o json`.
fn only_release(s: &Session) -> serde_json::Value {
    let listed = s.helm_ok(&["list", "-o", "json"]);
    let releases: serde_json::Value = serde_json::from_str(&listed).expect("helm list JSON");
    let all = releases
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {listed}"));
    assert_eq!(all.len(), 1, "{listed}");
    all[0].clone()
}

pub fn helm_install_upgrade_uninstall(s: &Session) {
    let created = s.helm_ok(&["create", "mychart"]);
    assert_eq!(created.trim(), "Creating mychart");
    let chart = s.home.join("mychart");
    let chart = chart.to_str().expect("UTF-8 path");

    // No --wait: nothing runs pods yet.
    let installed = s.helm_ok(&["install", "rel", chart]);
    assert_eq!(describe_field(&installed, "NAME:"), "rel", "{installed}");
    assert_eq!(
        describe_field(&installed, "NAMESPACE:"),
        s.ns,
        "{installed}"
    );
    assert_eq!(
        describe_field(&installed, "STATUS:"),
        "deployed",
        "{installed}"
    );
    assert_eq!(describe_field(&installed, "REVISION:"), "1", "{installed}");

    let release = only_release(s);
    assert_eq!(release["name"], "rel", "{release}");
    assert_eq!(release["namespace"], s.ns.as_str(), "{release}");
    assert_eq!(scalar_text(&release["revision"]), "1", "{release}");
    assert_eq!(release["status"], "deployed", "{release}");
    assert_eq!(release["chart"], "mychart-0.1.0", "{release}");
    let table = s.helm_ok(&["list"]);
    let row = table
        .lines()
        .find(|line| line.starts_with("rel"))
        .unwrap_or_else(|| panic!("no row for rel:\n{table}"));
    assert!(
        row.contains("deployed") && row.contains("mychart-0.1.0"),
        "{table}"
    );

    // The chart's objects exist, labelled as Helm's.
    assert_eq!(s.jsonpath("deploy/rel-mychart", "{.spec.replicas}"), "1");
    assert_eq!(
        s.jsonpath(
            "deploy/rel-mychart",
            "{.metadata.labels.app\\.kubernetes\\.io/managed-by}"
        ),
        "Helm"
    );
    assert_eq!(
        s.jsonpath(
            "deploy/rel-mychart",
            "{.metadata.annotations.meta\\.helm\\.sh/release-name}"
        ),
        "rel"
    );
    assert_eq!(
        s.jsonpath("service/rel-mychart", "{.spec.ports[0].port}"),
        "80"
    );
    assert_eq!(
        s.jsonpath("serviceaccount/rel-mychart", "{.metadata.name}"),
        "rel-mychart"
    );
    let secrets = s.kubectl_ok(&["get", "secrets", "-l", "owner=helm", "-o", "name"]);
    assert_eq!(secrets, "secret/sh.helm.release.v1.rel.v1\n");
    assert_eq!(
        s.jsonpath("secret/sh.helm.release.v1.rel.v1", "{.type}"),
        "helm.sh/release.v1"
    );

    let status = s.helm_ok(&["status", "rel"]);
    assert_eq!(describe_field(&status, "STATUS:"), "deployed", "{status}");

    let upgraded = s.helm_ok(&["upgrade", "rel", chart, "--set", "replicaCount=2"]);
    assert!(
        upgraded.contains(r#"Release "rel" has been upgraded. Happy Helming!"#),
        "{upgraded}"
    );
    assert_eq!(describe_field(&upgraded, "REVISION:"), "2", "{upgraded}");
    let release = only_release(s);
    assert_eq!(scalar_text(&release["revision"]), "2", "{release}");
    assert_eq!(release["status"], "deployed", "{release}");
    assert_eq!(s.jsonpath("deploy/rel-mychart", "{.spec.replicas}"), "2");
    let mut secrets: Vec<String> = s
        .kubectl_ok(&["get", "secrets", "-l", "owner=helm", "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect();
    secrets.sort();
    assert_eq!(
        secrets,
        [
            "secret/sh.helm.release.v1.rel.v1",
            "secret/sh.helm.release.v1.rel.v2"
        ]
    );
    assert_eq!(
        s.jsonpath(
            "secret/sh.helm.release.v1.rel.v1",
            "{.metadata.labels.status}"
        ),
        "superseded"
    );
    assert_eq!(
        s.jsonpath(
            "secret/sh.helm.release.v1.rel.v2",
            "{.metadata.labels.status}"
        ),
        "deployed"
    );

    let uninstalled = s.helm_ok(&["uninstall", "rel"]);
    assert_eq!(uninstalled.trim(), r#"release "rel" uninstalled"#);
    assert_eq!(s.helm_ok(&["list", "-o", "json"]).trim(), "[]");
    let deployments = s.kubectl(&["get", "deploy"]);
    assert!(deployments.status.success());
    assert_eq!(String::from_utf8_lossy(&deployments.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&deployments.stderr).trim(),
        format!("No resources found in {} namespace.", s.ns)
    );
    s.kubectl_fail(&["get", "service", "rel-mychart"]);
    assert_eq!(
        s.kubectl_ok(&["get", "secrets", "-l", "owner=helm", "-o", "name"]),
        ""
    );
}
