//! `kubectl explain` (OpenAPI v3), `describe`, `auth can-i`.

use super::harness::{Session, deployment, describe_field};

pub fn explain_describe_and_auth(s: &Session) {
    let explained = s.kubectl_ok(&["explain", "deployment.spec.strategy"]);
    assert_eq!(describe_field(&explained, "GROUP:"), "apps", "{explained}");
    assert_eq!(
        describe_field(&explained, "KIND:"),
        "Deployment",
        "{explained}"
    );
    assert_eq!(describe_field(&explained, "VERSION:"), "v1", "{explained}");
    assert!(
        explained.contains("FIELD: strategy <DeploymentStrategy>"),
        "{explained}"
    );
    // kubectl wraps descriptions at 78 columns: compare with whitespace squashed.
    let words = explained.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("The deployment strategy to use to replace existing pods with new ones."),
        "{explained}"
    );
    assert!(
        explained.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{explained}"
    );
    assert!(explained.contains("type\t<string>"), "{explained}");

    let recursive = s.kubectl_ok(&["explain", "configmap", "--recursive"]);
    assert_eq!(
        describe_field(&recursive, "KIND:"),
        "ConfigMap",
        "{recursive}"
    );
    assert!(
        recursive.contains("binaryData\t<map[string]string>"),
        "{recursive}"
    );
    assert!(
        recursive.contains("data\t<map[string]string>"),
        "{recursive}"
    );

    s.create_stdin(&deployment("described", 2, "nginx:1.27"));
    let described = s.kubectl_ok(&["describe", "deployment", "described"]);
    assert_eq!(
        describe_field(&described, "Name:"),
        "described",
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "Namespace:"),
        s.ns,
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "Selector:"),
        "app=described",
        "{described}"
    );
    assert!(
        describe_field(&described, "Replicas:").starts_with("2 desired | "),
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "StrategyType:"),
        "RollingUpdate",
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "RollingUpdateStrategy:"),
        "25% max unavailable, 25% max surge",
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "    Image:"),
        "nginx:1.27",
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "    Port:"),
        "80/TCP",
        "{described}"
    );

    // JSON create: the protobuf generators have a test of their own.
    s.create_stdin(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: described\ndata:\n  greeting: hello\n",
    );
    let described = s.kubectl_ok(&["describe", "configmap", "described"]);
    assert_eq!(
        describe_field(&described, "Name:"),
        "described",
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "Namespace:"),
        s.ns,
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "Labels:"),
        "<none>",
        "{described}"
    );
    assert!(
        described.contains("Data\n====\ngreeting:\n----\nhello\n"),
        "{described}"
    );
    assert_eq!(
        describe_field(&described, "Events:"),
        "<none>",
        "{described}"
    );

    assert_eq!(s.kubectl_ok(&["auth", "can-i", "create", "pods"]), "yes\n");
    assert_eq!(
        s.kubectl_ok(&[
            "auth",
            "can-i",
            "delete",
            "deployments.apps",
            "--all-namespaces"
        ]),
        "yes\n"
    );
}
