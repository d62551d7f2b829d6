use serde_json::{Value, json};
use timonel_schema::{IssueKind, SchemaRegistry};

const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "500m", "memory": 134217728}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}}
                    }],
                    "nodeSelector": null
                }
            }
        },
        "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2024-01-01T00:00:00Z"}]}
    })
}

#[test]
fn valid_deployment_has_no_issues() {
    let issues = SchemaRegistry::builtin().check_fields(DEPLOYMENT, &deployment());
    assert_eq!(issues, vec![]);
}

#[test]
fn unknown_nested_container_field_is_reported_with_its_path() {
    let mut object = deployment();
    object["spec"]["template"]["spec"]["containers"][0]["imagex"] = json!("x");
    object["spec"]["replicasx"] = json!(1);
    let issues = SchemaRegistry::builtin().check_fields(DEPLOYMENT, &object);
    let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            // Document order: `replicasx` was appended after `template`.
            "unknown field \"spec.template.spec.containers[0].imagex\"",
            "unknown field \"spec.replicasx\"",
        ]
    );
    assert!(issues.iter().all(|i| i.kind == IssueKind::Unknown));
    assert_eq!(issues[0].path, "spec.template.spec.containers[0].imagex");
}

#[test]
fn unknown_metadata_and_status_fields_are_reported() {
    let mut object = deployment();
    object["metadata"]["labelz"] = json!({});
    object["status"]["bogus"] = json!(1);
    let issues = SchemaRegistry::builtin().check_fields(DEPLOYMENT, &object);
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, vec!["metadata.labelz", "status.bogus"]);
}

#[test]
fn wrong_type_for_replicas_uses_go_json_message() {
    let mut object = deployment();
    object["spec"]["replicas"] = json!("three");
    let issues = SchemaRegistry::builtin().check_fields(DEPLOYMENT, &object);
    assert_eq!(issues.len(), 1);
    assert_eq!(
        issues[0].message,
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
    );
    assert_eq!(
        issues[0].kind,
        IssueKind::WrongType {
            expected: "int32".into(),
            found: "string".into()
        }
    );
    assert_eq!(issues[0].path, "spec.replicas");
}

#[test]
fn wrong_types_deeper_name_the_innermost_struct() {
    let registry = SchemaRegistry::builtin();
    let mut object = deployment();
    object["spec"]["template"]["spec"]["containers"][0]["image"] = json!(5);
    let issues = registry.check_fields(DEPLOYMENT, &object);
    assert_eq!(
        issues[0].message,
        "json: cannot unmarshal number into Go struct field Container.spec.template.spec.containers.image of type string"
    );

    let mut object = deployment();
    object["metadata"]["labels"]["app"] = json!(true);
    let issues = registry.check_fields(DEPLOYMENT, &object);
    assert_eq!(
        issues[0].message,
        "json: cannot unmarshal bool into Go struct field ObjectMeta.metadata.labels of type string"
    );

    let mut object = deployment();
    object["spec"]["template"]["spec"]["containers"] = json!({"name": "x"});
    let issues = registry.check_fields(DEPLOYMENT, &object);
    assert_eq!(
        issues[0].message,
        "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type []v1.Container"
    );

    let mut object = deployment();
    object["spec"] = json!([]);
    let issues = registry.check_fields(DEPLOYMENT, &object);
    assert_eq!(
        issues[0].message,
        "json: cannot unmarshal array into Go struct field Deployment.spec of type v1.DeploymentSpec"
    );

    let mut object = deployment();
    object["spec"]["replicas"] = json!(1.5);
    let issues = registry.check_fields(DEPLOYMENT, &object);
    assert_eq!(
        issues[0].message,
        "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"
    );
}

#[test]
fn int_or_string_and_quantity_accept_both_forms() {
    let registry = SchemaRegistry::builtin();
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "alt", "port": 8080, "targetPort": 8080}
        ], "selector": {"app": "web"}}
    });
    assert_eq!(
        registry.check_fields("io.k8s.api.core.v1.Service", &service),
        vec![]
    );

    let mut bad = service.clone();
    bad["spec"]["ports"][0]["targetPort"] = json!(true);
    bad["spec"]["ports"][1]["port"] = json!("80");
    let issues = registry.check_fields("io.k8s.api.core.v1.Service", &bad);
    let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "json: cannot unmarshal bool into Go struct field ServicePort.spec.ports.targetPort of type int32",
            "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32",
        ]
    );

    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": 0.5, "memory": "64Mi"}, "limits": {"cpu": "1e3", "memory": "1Gi"}}}]}
    });
    assert_eq!(
        registry.check_fields("io.k8s.api.core.v1.Pod", &pod),
        vec![]
    );
    let mut bad_pod = pod.clone();
    bad_pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("lots");
    let issues = registry.check_fields("io.k8s.api.core.v1.Pod", &bad_pod);
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].path, "spec.containers[0].resources.requests.cpu");
    assert!(
        issues[0]
            .message
            .starts_with("quantities must match the regular expression")
    );
}

#[test]
fn raw_extension_and_fields_v1_accept_anything() {
    let registry = SchemaRegistry::builtin();
    let revision = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": "r", "managedFields": [{"manager": "m", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
        "revision": 1,
        "data": {"anything": [1, "two"]}
    });
    assert_eq!(
        registry.check_fields("io.k8s.api.apps.v1.ControllerRevision", &revision),
        vec![]
    );
}

#[test]
fn root_value_of_the_wrong_type_is_reported() {
    let issues = SchemaRegistry::builtin().check_fields(DEPLOYMENT, &json!([1]));
    assert_eq!(
        issues[0].message,
        "json: cannot unmarshal array into Go value of type v1.Deployment"
    );
}

#[test]
fn duplicate_keys_are_found_in_raw_bodies() {
    let body = br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","name":"b"},
        "spec":{"replicas":1,"replicas":2,"selector":{},"template":{"spec":{"containers":[{"name":"c","image":"i","image":"j"}]}}}}"#;
    let (value, issues) = SchemaRegistry::builtin()
        .check_fields_raw(DEPLOYMENT, body)
        .unwrap();
    let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "duplicate field \"metadata.name\"",
            "duplicate field \"spec.replicas\"",
            "duplicate field \"spec.template.spec.containers[0].image\"",
        ]
    );
    assert!(issues.iter().all(|i| i.kind == IssueKind::Duplicate));
    // The last occurrence wins, as in Go.
    assert_eq!(value["spec"]["replicas"], 2);
    assert_eq!(value["metadata"]["name"], "b");
    assert!(
        SchemaRegistry::builtin()
            .check_fields_raw(DEPLOYMENT, b"{\"a\":")
            .is_err()
    );
    assert!(
        SchemaRegistry::builtin()
            .check_fields_raw(DEPLOYMENT, b"{} x")
            .is_err()
    );
}
