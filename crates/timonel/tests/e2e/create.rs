//! `kubectl create <generator>`: client-go typed clients send these as protobuf.

use super::harness::{Session, scalar_text};

pub fn generators_send_protobuf_bodies(s: &Session) {
    let namespace = format!("{}-generated", s.ns);
    assert_eq!(
        s.kubectl_ok(&["create", "namespace", &namespace]),
        format!("namespace/{namespace} created\n")
    );
    let ns = s.get_json(&["namespace", &namespace]);
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        namespace.as_str(),
        "{ns}"
    );

    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=two"
        ]),
        "configmap/cfg created\n"
    );
    let cfg = s.get_json(&["configmap", "cfg"]);
    assert_eq!(
        cfg["data"],
        serde_json::json!({"a": "1", "b": "two"}),
        "{cfg}"
    );

    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "sec",
            "--from-literal=password=s3cr3t"
        ]),
        "secret/sec created\n"
    );
    let secret = s.get_json(&["secret", "sec"]);
    assert_eq!(secret["type"], "Opaque", "{secret}");
    assert_eq!(
        secret["data"]["password"], "czNjcjN0",
        "base64 of s3cr3t: {secret}"
    );

    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "deployment",
            "gen",
            "--image=nginx:1.27",
            "--replicas=2"
        ]),
        "deployment.apps/gen created\n"
    );
    let deploy = s.get_json(&["deployment", "gen"]);
    assert_eq!(scalar_text(&deploy["spec"]["replicas"]), "2", "{deploy}");
    assert_eq!(
        deploy["spec"]["selector"]["matchLabels"]["app"], "gen",
        "{deploy}"
    );
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx", "{deploy}");
    assert_eq!(container["image"], "nginx:1.27", "{deploy}");
    // Server-side defaults apply to protobuf bodies as to JSON ones.
    assert_eq!(
        deploy["spec"]["strategy"]["type"], "RollingUpdate",
        "{deploy}"
    );

    assert_eq!(
        s.kubectl_ok(&["create", "serviceaccount", "robot"]),
        "serviceaccount/robot created\n"
    );
    let listed = s.kubectl_ok(&[
        "get",
        "configmap,secret,deployment,serviceaccount",
        "-o",
        "name",
    ]);
    for wanted in [
        "configmap/cfg",
        "secret/sec",
        "deployment.apps/gen",
        "serviceaccount/robot",
    ] {
        assert!(
            listed.lines().any(|line| line == wanted),
            "{wanted} missing:\n{listed}"
        );
    }
}
