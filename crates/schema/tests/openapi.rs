use serde_json::{Value, json};
use timonel_schema::{DynamicSchemas, OpenApiResource, REF_PREFIX, SchemaRegistry};

fn resource(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    definition: &str,
    subresources: &[&str],
) -> OpenApiResource {
    OpenApiResource {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        definition: definition.into(),
        subresources: subresources.iter().map(|s| s.to_string()).collect(),
        verbs: [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    }
}

fn all_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| all_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| all_refs(v, out)),
        _ => {}
    }
}

fn assert_refs_resolve(document: &Value) {
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    let mut refs = Vec::new();
    all_refs(document, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix(REF_PREFIX)
            .unwrap_or_else(|| panic!("bad ref {reference}"));
        assert!(schemas.contains_key(name), "unresolved {reference}");
    }
}

fn parameter_names(operation: &Value) -> Vec<String> {
    operation["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn apps_v1_document_supports_strict_validation_and_explain() {
    let registry = SchemaRegistry::builtin();
    let resources = vec![
        resource(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            "io.k8s.api.apps.v1.Deployment",
            &["status", "scale"],
        ),
        resource(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            "io.k8s.api.apps.v1.StatefulSet",
            &["status", "scale"],
        ),
        // Another group-version's resource is left out of this document.
        resource(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            "io.k8s.api.core.v1.Pod",
            &["status"],
        ),
    ];
    let document = registry.v3_document("apps", "v1", &resources);
    let text = serde_json::to_string(&document).unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["openapi"], "3.0.0");
    assert_refs_resolve(&document);

    let paths = document["paths"].as_object().unwrap();
    let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    let patch = &item["patch"];
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let names = parameter_names(patch);
    for expected in ["dryRun", "force", "fieldManager", "fieldValidation"] {
        assert!(
            names.iter().any(|n| n == expected),
            "patch lacks {expected}: {names:?}"
        );
    }
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    assert!(parameter_names(&item["put"]).contains(&"fieldValidation".to_owned()));
    assert!(parameter_names(item).contains(&"namespace".to_owned()));
    let collection = &paths["/apis/apps/v1/namespaces/{namespace}/deployments"];
    assert!(parameter_names(&collection["post"]).contains(&"fieldValidation".to_owned()));
    assert_eq!(collection["get"]["x-kubernetes-action"], "list");
    assert!(parameter_names(&collection["get"]).contains(&"labelSelector".to_owned()));
    assert!(paths.contains_key("/apis/apps/v1/deployments"));
    let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
    assert!(parameter_names(scale).contains(&"fieldValidation".to_owned()));
    assert!(paths.contains_key("/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/status"));
    assert!(!paths.keys().any(|p| p.contains("pods")));

    let schemas = document["components"]["schemas"].as_object().unwrap();
    assert_eq!(
        schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    // kubectl explain deployment.spec.strategy walks these.
    let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
    assert!(strategy["description"].is_string());
    assert!(
        schemas["io.k8s.api.apps.v1.DeploymentStrategy"]["properties"]["rollingUpdate"].is_object()
    );
    assert!(schemas.contains_key("io.k8s.api.core.v1.Container"));
    assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.Patch"));
    assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
}

#[test]
fn cluster_scoped_and_core_paths() {
    let registry = SchemaRegistry::builtin();
    let resources = vec![
        resource(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            "io.k8s.api.core.v1.Namespace",
            &["status"],
        ),
        resource(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            "io.k8s.api.core.v1.Pod",
            &["status", "eviction", "binding", "log", "exec"],
        ),
    ];
    let document = registry.v3_document("", "v1", &resources);
    assert_refs_resolve(&document);
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(
        paths["/api/v1/namespaces/{name}"]["patch"]["operationId"],
        "patchCoreV1Namespace"
    );
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]["x-kubernetes-group-version-kind"]
            ["kind"],
        "Eviction"
    );
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["get"]["x-kubernetes-action"],
        "connect"
    );
    assert!(document["components"]["schemas"]["io.k8s.api.policy.v1.Eviction"].is_object());
}

#[test]
fn custom_resource_documents_include_the_crd_schema() {
    let mut dynamic = DynamicSchemas::new();
    dynamic
        .add_crd(&json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Widget", "plural": "widgets"},
                "scope": "Cluster",
                "versions": [{"name": "v1alpha1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}
                }}}]
            }
        }))
        .unwrap();
    let view = SchemaRegistry::builtin().with_dynamic(&dynamic);
    let resources = vec![resource(
        "example.com",
        "v1alpha1",
        "Widget",
        "widgets",
        false,
        "com.example.v1alpha1.Widget",
        &["status"],
    )];
    let document = view.v3_document("example.com", "v1alpha1", &resources);
    assert_refs_resolve(&document);
    let patch = &document["paths"]["/apis/example.com/v1alpha1/widgets/{name}"]["patch"];
    assert_eq!(patch["operationId"], "patchExampleComV1alpha1Widget");
    assert!(parameter_names(patch).contains(&"fieldValidation".to_owned()));
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_null());
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["com.example.v1alpha1.Widget"]["properties"]["spec"]["properties"]["size"]["type"],
        "integer"
    );
    assert!(schemas["com.example.v1alpha1.WidgetList"].is_object());
    assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
}

#[test]
fn index_lists_group_versions_with_hashes() {
    let index = SchemaRegistry::builtin().v3_index(&[
        ("api/v1".to_owned(), "ABC".to_owned()),
        ("apis/apps/v1".to_owned(), "DEF".to_owned()),
    ]);
    assert_eq!(
        index,
        json!({"paths": {
            "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=ABC"},
            "apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=DEF"}
        }})
    );
}
