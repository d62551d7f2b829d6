//! Prints how long building the built-in schema registry and a few OpenAPI documents takes (the
//! server must be ready in under 100 ms, so this must stay well below that or be done off the
//! startup path with `SchemaRegistry::prewarm()`).

use std::time::Instant;

use timonel_schema::{OpenApiResource, SchemaRegistry};

fn resource(group: &str, kind: &str, plural: &str, definition: &str) -> OpenApiResource {
    OpenApiResource {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced: true,
        definition: definition.into(),
        subresources: vec!["status".into()],
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
        .map(|verb| verb.to_string())
        .collect(),
    }
}

fn main() {
    let start = Instant::now();
    let fresh = SchemaRegistry::build();
    let first = start.elapsed();

    let start = Instant::now();
    let again = SchemaRegistry::build();
    let second = start.elapsed();

    let start = Instant::now();
    let cached = SchemaRegistry::builtin();
    let lazy = start.elapsed();
    let start = Instant::now();
    let _ = SchemaRegistry::builtin();
    let hit = start.elapsed();

    println!(
        "definitions: {} ({} group/version/kinds)",
        fresh.len(),
        fresh.kinds().count()
    );
    println!("first build: {first:?}");
    println!("second build: {second:?} ({} definitions)", again.len());
    println!(
        "builtin() first call: {lazy:?} ({} definitions)",
        cached.len()
    );
    println!("builtin() cached call: {hit:?}");

    let apps = [
        resource(
            "apps",
            "Deployment",
            "deployments",
            "io.k8s.api.apps.v1.Deployment",
        ),
        resource(
            "apps",
            "StatefulSet",
            "statefulsets",
            "io.k8s.api.apps.v1.StatefulSet",
        ),
        resource(
            "apps",
            "DaemonSet",
            "daemonsets",
            "io.k8s.api.apps.v1.DaemonSet",
        ),
        resource(
            "apps",
            "ReplicaSet",
            "replicasets",
            "io.k8s.api.apps.v1.ReplicaSet",
        ),
    ];
    let start = Instant::now();
    let document = cached.v3_document("apps", "v1", &apps);
    let built = start.elapsed();
    let bytes = serde_json::to_vec(&document).map(|b| b.len()).unwrap_or(0);
    println!("apps/v1 v3 document: {built:?} to build, {bytes} bytes of JSON");
}
