use serde_json::{Value, json};
use timonel_schema::{FieldKind, REF_PREFIX, SchemaRegistry};

const KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Namespace"),
    ("", "v1", "Pod"),
    ("", "v1", "Service"),
    ("", "v1", "Endpoints"),
    ("", "v1", "Node"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("", "v1", "ServiceAccount"),
    ("", "v1", "Event"),
    ("", "v1", "PersistentVolume"),
    ("", "v1", "PersistentVolumeClaim"),
    ("", "v1", "ResourceQuota"),
    ("", "v1", "LimitRange"),
    ("", "v1", "ReplicationController"),
    ("", "v1", "Binding"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "ReplicaSet"),
    ("apps", "v1", "DaemonSet"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "ControllerRevision"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
    ("coordination.k8s.io", "v1", "Lease"),
    ("discovery.k8s.io", "v1", "EndpointSlice"),
    ("events.k8s.io", "v1", "Event"),
    ("autoscaling", "v1", "HorizontalPodAutoscaler"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"),
    ("autoscaling", "v1", "Scale"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    ("networking.k8s.io", "v1", "Ingress"),
    ("networking.k8s.io", "v1", "IngressClass"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("policy", "v1", "Eviction"),
    ("storage.k8s.io", "v1", "StorageClass"),
    ("scheduling.k8s.io", "v1", "PriorityClass"),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
    ("authentication.k8s.io", "v1", "TokenRequest"),
    ("", "v1", "Status"),
    ("", "v1", "DeleteOptions"),
    ("apps", "v1", "DeploymentList"),
    ("", "v1", "PodList"),
];

#[test]
fn every_listed_kind_has_a_tagged_definition() {
    let registry = SchemaRegistry::builtin();
    for (group, version, kind) in KINDS {
        let name = registry
            .definition_for(group, version, kind)
            .unwrap_or_else(|| panic!("no definition for {group}/{version} {kind}"));
        let schema = registry.definition(name).expect("definition present");
        let tags = schema["x-kubernetes-group-version-kind"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} lacks the gvk extension"));
        assert!(
            tags.contains(&json!({"group": group, "version": version, "kind": kind})),
            "{name} tags {tags:?}"
        );
    }
}

#[test]
fn core_and_events_group_events_are_distinct() {
    let registry = SchemaRegistry::builtin();
    assert_eq!(
        registry.definition_for("", "v1", "Event"),
        Some("io.k8s.api.core.v1.Event")
    );
    assert_eq!(
        registry.definition_for("events.k8s.io", "v1", "Event"),
        Some("io.k8s.api.events.v1.Event")
    );
    assert_eq!(
        registry.definition_for("autoscaling", "v2", "HorizontalPodAutoscaler"),
        Some("io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler")
    );
    assert_eq!(registry.definition_for("apps", "v1", "Nope"), None);
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves_inside_the_registry() {
    let registry = SchemaRegistry::builtin();
    let mut all = Vec::new();
    for name in registry.definition_names() {
        refs(registry.definition(name).unwrap(), &mut all);
    }
    assert!(all.len() > 500, "only {} refs", all.len());
    for reference in all {
        let name = reference
            .strip_prefix(REF_PREFIX)
            .unwrap_or_else(|| panic!("ref {reference} is not an OpenAPI v3 components ref"));
        assert!(
            registry.definition(name).is_some(),
            "dangling ref {reference}"
        );
    }
}

#[test]
fn field_types_navigate_refs_arrays_and_maps() {
    let registry = SchemaRegistry::builtin();
    let object = |name: &str| FieldKind::Object(name.to_owned());
    assert_eq!(
        registry.field_type("io.k8s.api.apps.v1.Deployment", "spec"),
        Some(object("io.k8s.api.apps.v1.DeploymentSpec"))
    );
    assert_eq!(
        registry.field_type("io.k8s.api.core.v1.PodSpec", "containers"),
        Some(FieldKind::Array(Box::new(object(
            "io.k8s.api.core.v1.Container"
        ))))
    );
    assert_eq!(
        registry.field_type("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "labels"),
        Some(FieldKind::Map(Box::new(FieldKind::Scalar)))
    );
    assert_eq!(
        registry.field_type("io.k8s.api.core.v1.ServicePort", "targetPort"),
        Some(FieldKind::Scalar)
    );
    assert_eq!(
        registry.field_type("io.k8s.api.core.v1.ResourceRequirements", "limits"),
        Some(FieldKind::Map(Box::new(FieldKind::Scalar)))
    );
    assert_eq!(
        registry.field_type(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "creationTimestamp"
        ),
        Some(FieldKind::Scalar)
    );
    assert_eq!(
        registry.field_type("io.k8s.api.apps.v1.ControllerRevision", "data"),
        Some(FieldKind::Unknown)
    );
    assert_eq!(
        registry.field_type(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
            "fieldsV1"
        ),
        Some(FieldKind::Unknown)
    );
    assert_eq!(
        registry.field_type("io.k8s.api.apps.v1.DeploymentSpec", "replicas"),
        Some(FieldKind::Scalar)
    );
    assert_eq!(
        registry.field_type("io.k8s.api.apps.v1.DeploymentSpec", "nope"),
        None
    );
    assert_eq!(registry.field_type("io.k8s.nope", "spec"), None);
}

#[test]
fn kind_definitions_keep_descriptions_for_explain() {
    let registry = SchemaRegistry::builtin();
    let spec = registry
        .definition("io.k8s.api.apps.v1.DeploymentSpec")
        .unwrap();
    let strategy = &spec["properties"]["strategy"];
    assert_eq!(
        strategy["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
    );
    assert!(
        strategy["description"]
            .as_str()
            .unwrap()
            .contains("deployment strategy")
    );
}
