//! Discovery (aggregated `apidiscovery.k8s.io/v2` and legacy) and OpenAPI documents.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use timonel_api::registry::ResourceInfo;
use timonel_api::status::ApiError;

use crate::glue;
use crate::server::{Reply, State};

/// The Kubernetes version we are compatible with.
pub const KUBE_MINOR: &str = "35";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "emulationMajor": "1",
        "emulationMinor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0+timonel-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "unknown",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("g=apidiscovery.k8s.io") && first.contains("v=v2"))
    })
}

/// Answers discovery and OpenAPI paths; None for anything else.
pub fn handle(
    state: &Arc<State>,
    method: &Method,
    path: &str,
    accept: Option<&str>,
) -> Option<Result<Reply, ApiError>> {
    if *method != Method::GET && *method != Method::HEAD {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
    let reply = match parts.as_slice() {
        ["api"] if wants_aggregated(accept) => {
            Reply::typed(StatusCode::OK, aggregated(state, true), AGGREGATED)
        }
        ["apis"] if wants_aggregated(accept) => {
            Reply::typed(StatusCode::OK, aggregated(state, false), AGGREGATED)
        }
        ["api"] => Reply::json(
            StatusCode::OK,
            json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
            }),
        ),
        ["apis"] => Reply::json(StatusCode::OK, group_list(state)),
        ["api", "v1"] => Reply::json(StatusCode::OK, resource_list(state, "", "v1")?),
        ["apis", group] => Reply::json(StatusCode::OK, group_of(state, group)?),
        ["apis", group, version] => {
            Reply::json(StatusCode::OK, resource_list(state, group, version)?)
        }
        ["openapi", "v3"] => Reply::json(StatusCode::OK, openapi_index(state)),
        ["openapi", "v3", "api", "v1"] => {
            Reply::json(StatusCode::OK, cached_openapi_document(state, "", "v1")?)
        }
        ["openapi", "v3", "apis", group, version] => Reply::json(
            StatusCode::OK,
            cached_openapi_document(state, group, version)?,
        ),
        ["openapi", "v2"] => {
            return Some(Err(not_found()));
        }
        _ => return None,
    };
    Some(Ok(reply))
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

fn group_list(state: &State) -> Value {
    let groups: Vec<Value> = state
        .registry
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_entry(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_of(state: &State, group: &str) -> Option<Value> {
    state
        .registry
        .groups()
        .iter()
        .find(|(g, _)| g == group && !g.is_empty())
        .map(|(g, v)| {
            let mut entry = group_entry(g, v);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            entry
        })
}

fn resource_list(state: &State, group: &str, version: &str) -> Option<Value> {
    let resources = state.registry.resources_in(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in &resources {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for sub in &r.subresources {
            let (g, v, k) = &sub.response_kind;
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": sub.verbs,
            });
            if g != group || v != version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            list.push(entry);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": list,
    }))
}

fn discovery_resource(r: &ResourceInfo) -> Value {
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        entry["subresources"] = Value::Array(
            r.subresources
                .iter()
                .map(|s| {
                    let (g, v, k) = &s.response_kind;
                    json!({
                        "subresource": s.name,
                        "responseKind": {"group": g, "version": v, "kind": k},
                        "verbs": s.verbs,
                    })
                })
                .collect(),
        );
    }
    entry
}

fn aggregated(state: &State, core: bool) -> Value {
    let mut items = Vec::new();
    for (group, versions) in state.registry.groups() {
        if group.is_empty() != core {
            continue;
        }
        let versions: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = state
                    .registry
                    .resources_in(&group, v)
                    .iter()
                    .map(|r| discovery_resource(r))
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions}),
        );
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn openapi_resources(
    state: &State,
    group: &str,
    version: &str,
) -> Vec<timonel_schema::OpenApiResource> {
    state
        .registry
        .resources_in(group, version)
        .iter()
        .map(|r| timonel_schema::OpenApiResource {
            group: r.group.clone(),
            version: r.version.clone(),
            kind: r.kind.clone(),
            plural: r.plural.clone(),
            namespaced: r.namespaced,
            definition: if r.definition.is_empty() {
                custom_definition_name(r)
            } else {
                r.definition.clone()
            },
            subresources: r.subresources.iter().map(|s| s.name.clone()).collect(),
            verbs: r.verbs.clone(),
        })
        .collect()
}

/// OpenAPI definition name of a custom resource: reversed group, version, kind (as upstream).
pub fn custom_definition_name(r: &ResourceInfo) -> String {
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
}

/// Changes whenever the group-version's resources change (CRDs come and go).
fn gv_hash(state: &State, group: &str, version: &str) -> String {
    let mut hasher = Sha256::new();
    for r in state.registry.resources_in(group, version) {
        hasher.update(r.plural.as_bytes());
        if let Some(c) = &r.custom {
            hasher.update(c.schema.as_ref().map(|s| s.to_string()).unwrap_or_default());
        }
    }
    hex::encode(&hasher.finalize()[..16])
}

fn openapi_index(state: &State) -> Value {
    let mut paths = Vec::new();
    for (group, versions) in state.registry.groups() {
        for v in versions {
            let path = if group.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{group}/{v}")
            };
            paths.push((path, gv_hash(state, &group, &v)));
        }
    }
    glue::schemas().v3_index(&paths)
}

/// Group-version documents are large (hundreds of KB) and only change with CRDs: build each
/// once per hash.
fn cached_openapi_document(state: &State, group: &str, version: &str) -> Option<Value> {
    let key = format!("{group}/{version}");
    let hash = gv_hash(state, group, version);
    if let Some((cached_hash, doc)) = state.openapi_cache.lock().expect("openapi cache").get(&key)
        && *cached_hash == hash
    {
        return Some((**doc).clone());
    }
    let doc = openapi_document(state, group, version)?;
    state
        .openapi_cache
        .lock()
        .expect("openapi cache")
        .insert(key, (hash, Arc::new(doc.clone())));
    Some(doc)
}

fn openapi_document(state: &State, group: &str, version: &str) -> Option<Value> {
    let resources = openapi_resources(state, group, version);
    if resources.is_empty() {
        return None;
    }
    // Custom resources' schemas come from their CRDs, overlaid on the built-in definitions.
    let mut dynamic = timonel_schema::DynamicSchemas::new();
    let crd_names: std::collections::BTreeSet<String> = state
        .registry
        .resources_in(group, version)
        .iter()
        .filter_map(|r| r.custom.as_ref().map(|c| c.crd_name.clone()))
        .collect();
    for name in crd_names {
        let key = format!("/registry/apiextensions.k8s.io/customresourcedefinitions/{name}");
        if let Some(crd) = state.cache.get(&key)
            && let Err(errors) = dynamic.add_crd(&crd.value())
        {
            tracing::warn!("OpenAPI schema of CRD {name}: {}", errors.join("; "));
        }
    }
    let mut doc = glue::schemas()
        .with_dynamic(&dynamic)
        .v3_document(group, version, &resources);
    glue::add_patch_extensions(&mut doc);
    if let Some(schemas) = doc.get_mut("components") {
        glue::wrap_described_refs(schemas);
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_accept_header_is_recognised() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(Some(kubectl)));
        assert!(!wants_aggregated(Some("application/json")));
        assert!(!wants_aggregated(None));
    }

    #[test]
    fn version_reports_1_35() {
        let v = version();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "35");
        assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.35."));
    }
}
