//! OpenAPI v3 documents for discovery-driven clients (kubectl validation and explain, Helm).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::registry::{
    DELETE_OPTIONS, PATCH, REF_PREFIX, STATUS, SchemaRegistry, SchemaView, WATCH_EVENT,
};

/// One resource served in a group-version, as the OpenAPI document describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiResource {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Plural resource name, e.g. `deployments`.
    pub plural: String,
    pub namespaced: bool,
    /// OpenAPI definition name, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub definition: String,
    /// e.g. `status`, `scale`, `eviction`, `binding`, `token`, `log`, `exec`.
    pub subresources: Vec<String>,
    /// Kube verbs: get, list, watch, create, update, patch, delete, deletecollection.
    pub verbs: Vec<String>,
}

/// The kubernetes version the built-in schemas come from (k8s-openapi feature `v1_35`).
const SPEC_VERSION: &str = "v1.35.0";

const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const EVICTION: &str = "io.k8s.api.policy.v1.Eviction";
const BINDING: &str = "io.k8s.api.core.v1.Binding";
const TOKEN_REQUEST: &str = "io.k8s.api.authentication.v1.TokenRequest";

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed";
const FIELD_MANAGER: &str = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.";
const FIELD_MANAGER_PATCH: &str = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).";
const FIELD_VALIDATION: &str = "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.";
const FORCE: &str = "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.";

fn query_parameter(name: &str, description: &str, schema_type: &str) -> Value {
    json!({
        "description": description,
        "in": "query",
        "name": name,
        "schema": {"type": schema_type, "uniqueItems": true}
    })
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "description": description,
        "in": "path",
        "name": name,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true}
    })
}

fn write_parameters(patch: bool) -> Vec<Value> {
    let mut parameters = vec![query_parameter("dryRun", DRY_RUN, "string")];
    if patch {
        parameters.push(query_parameter("force", FORCE, "boolean"));
        parameters.push(query_parameter(
            "fieldManager",
            FIELD_MANAGER_PATCH,
            "string",
        ));
    } else {
        parameters.push(query_parameter("fieldManager", FIELD_MANAGER, "string"));
    }
    parameters.push(query_parameter(
        "fieldValidation",
        FIELD_VALIDATION,
        "string",
    ));
    parameters
}

fn delete_parameters() -> Vec<Value> {
    vec![
        query_parameter("dryRun", DRY_RUN, "string"),
        query_parameter(
            "gracePeriodSeconds",
            "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
            "integer",
        ),
        query_parameter(
            "orphanDependents",
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
            "boolean",
        ),
        query_parameter(
            "propagationPolicy",
            "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
            "string",
        ),
    ]
}

fn list_parameters() -> Vec<Value> {
    vec![
        query_parameter(
            "allowWatchBookmarks",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion.",
            "boolean",
        ),
        query_parameter(
            "continue",
            "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue).",
            "string",
        ),
        query_parameter(
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
            "string",
        ),
        query_parameter(
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
            "string",
        ),
        query_parameter(
            "limit",
            "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.",
            "integer",
        ),
        query_parameter(
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
            "string",
        ),
        query_parameter(
            "resourceVersionMatch",
            "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
            "string",
        ),
        query_parameter(
            "sendInitialEvents",
            "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection.",
            "boolean",
        ),
        query_parameter(
            "timeoutSeconds",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
            "integer",
        ),
        query_parameter(
            "watch",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
            "boolean",
        ),
    ]
}

fn schema_ref(definition: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{definition}")})
}

fn content(definition: &str, media_types: &[&str]) -> Value {
    let mut map = Map::new();
    for media_type in media_types {
        map.insert(
            (*media_type).to_owned(),
            json!({"schema": schema_ref(definition)}),
        );
    }
    Value::Object(map)
}

const RESPONSE_TYPES: [&str; 3] = [
    "application/json",
    "application/vnd.kubernetes.protobuf",
    "application/yaml",
];
const LIST_RESPONSE_TYPES: [&str; 5] = [
    "application/json",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf;stream=watch",
    "application/yaml",
];

fn responses(definition: &str, codes: &[(&str, &str)]) -> Value {
    let mut map = Map::new();
    for (code, description) in codes {
        map.insert(
            (*code).to_owned(),
            json!({"content": content(definition, &RESPONSE_TYPES), "description": description}),
        );
    }
    map.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(map)
}

/// `""` → `Core`, `rbac.authorization.k8s.io` → `RbacAuthorization`, `stable.example.com` →
/// `StableExampleCom`, as upstream builds operation ids.
fn group_identifier(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    trimmed.split(['.', '-']).map(capitalize).collect()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Builds the operations of one resource.
struct ResourcePaths<'r> {
    resource: &'r OpenApiResource,
    /// e.g. `AppsV1`.
    prefix_id: String,
    tag: String,
    gvk: Value,
}

impl<'r> ResourcePaths<'r> {
    fn new(resource: &'r OpenApiResource) -> Self {
        let group_id = group_identifier(&resource.group);
        let tag_group = if resource.group.is_empty() {
            "core".to_owned()
        } else {
            resource
                .group
                .strip_suffix(".k8s.io")
                .unwrap_or(&resource.group)
                .replace('.', "")
        };
        ResourcePaths {
            resource,
            prefix_id: format!("{group_id}{}", capitalize(&resource.version)),
            tag: format!("{tag_group}_{}", resource.version),
            gvk: json!({"group": resource.group, "kind": resource.kind, "version": resource.version}),
        }
    }

    fn has(&self, verb: &str) -> bool {
        self.resource.verbs.iter().any(|v| v == verb)
    }

    #[allow(clippy::too_many_arguments)]
    fn operation(
        &self,
        action: &str,
        id_verb: &str,
        id_suffix: &str,
        description: String,
        parameters: Vec<Value>,
        request: Option<Value>,
        responses: Value,
        gvk: &Value,
    ) -> Value {
        let mut op = Map::new();
        op.insert("description".into(), json!(description));
        op.insert(
            "operationId".into(),
            json!(format!("{id_verb}{}{id_suffix}", self.prefix_id)),
        );
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(request) = request {
            op.insert("requestBody".into(), request);
        }
        op.insert("responses".into(), responses);
        op.insert("tags".into(), json!([self.tag]));
        op.insert("x-kubernetes-action".into(), json!(action));
        op.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        Value::Object(op)
    }

    fn patch_request(&self, definition_is_custom: bool) -> Value {
        let mut types = vec![
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        if !definition_is_custom {
            types.push("application/strategic-merge-patch+json");
        }
        json!({"content": content(PATCH, &types), "required": true})
    }

    fn body_request(definition: &str) -> Value {
        json!({"content": content(definition, &["*/*"]), "required": true})
    }

    /// Adds the collection, item and subresource paths to `paths`; returns definitions used.
    fn add_to(&self, paths: &mut Map<String, Value>, custom: bool) -> Vec<String> {
        let r = self.resource;
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let scope = if r.namespaced { "Namespaced" } else { "" };
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let list_definition = format!("{}List", r.definition);
        let mut used = vec![
            r.definition.clone(),
            STATUS.to_owned(),
            PATCH.to_owned(),
            DELETE_OPTIONS.to_owned(),
        ];
        let kind = &r.kind;
        let namespace_parameter = path_parameter(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        );
        let pretty = query_parameter(
            "pretty",
            "If 'true', then the output is pretty printed.",
            "string",
        );

        // Collection: list, create, deletecollection.
        let mut collection_item = Map::new();
        if self.has("list") {
            used.push(list_definition.clone());
            used.push(WATCH_EVENT.to_owned());
            let mut list_responses = Map::new();
            list_responses.insert(
                "200".into(),
                json!({"content": content(&list_definition, &LIST_RESPONSE_TYPES), "description": "OK"}),
            );
            list_responses.insert("401".into(), json!({"description": "Unauthorized"}));
            collection_item.insert(
                "get".into(),
                self.operation(
                    "list",
                    "list",
                    &format!("{scope}{kind}"),
                    format!("list or watch objects of kind {kind}"),
                    list_parameters(),
                    None,
                    Value::Object(list_responses.clone()),
                    &self.gvk,
                ),
            );
            if r.namespaced {
                let mut all_namespaces = Map::new();
                all_namespaces.insert(
                    "get".into(),
                    self.operation(
                        "list",
                        "list",
                        &format!("{kind}ForAllNamespaces"),
                        format!("list or watch objects of kind {kind}"),
                        Vec::new(),
                        None,
                        Value::Object(list_responses),
                        &self.gvk,
                    ),
                );
                let mut parameters = list_parameters();
                parameters.push(pretty.clone());
                all_namespaces.insert("parameters".into(), Value::Array(parameters));
                paths.insert(
                    format!("{base}/{}", r.plural),
                    Value::Object(all_namespaces),
                );
            }
        }
        if self.has("create") {
            collection_item.insert(
                "post".into(),
                self.operation(
                    "post",
                    "create",
                    &format!("{scope}{kind}"),
                    format!("create a {kind}"),
                    write_parameters(false),
                    Some(Self::body_request(&r.definition)),
                    responses(
                        &r.definition,
                        &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                    ),
                    &self.gvk,
                ),
            );
        }
        if self.has("deletecollection") {
            let mut parameters = delete_parameters();
            parameters.extend(
                list_parameters()
                    .into_iter()
                    .filter(|p| p["name"] != "watch" && p["name"] != "allowWatchBookmarks"),
            );
            collection_item.insert(
                "delete".into(),
                self.operation(
                    "deletecollection",
                    "deletecollection",
                    &format!("{scope}{kind}"),
                    format!("delete collection of {kind}"),
                    parameters,
                    Some(Self::body_request(DELETE_OPTIONS)),
                    responses(STATUS, &[("200", "OK")]),
                    &self.gvk,
                ),
            );
        }
        if !collection_item.is_empty() {
            let mut parameters = Vec::new();
            if r.namespaced {
                parameters.push(namespace_parameter.clone());
            }
            parameters.push(pretty.clone());
            collection_item.insert("parameters".into(), Value::Array(parameters));
            paths.insert(collection.clone(), Value::Object(collection_item));
        }

        // Item: read, replace, patch, delete.
        let item_path = format!("{collection}/{{name}}");
        let mut item = Map::new();
        if self.has("get") {
            item.insert(
                "get".into(),
                self.operation(
                    "get",
                    "read",
                    &format!("{scope}{kind}"),
                    format!("read the specified {kind}"),
                    Vec::new(),
                    None,
                    responses(&r.definition, &[("200", "OK")]),
                    &self.gvk,
                ),
            );
        }
        if self.has("update") {
            item.insert(
                "put".into(),
                self.operation(
                    "put",
                    "replace",
                    &format!("{scope}{kind}"),
                    format!("replace the specified {kind}"),
                    write_parameters(false),
                    Some(Self::body_request(&r.definition)),
                    responses(&r.definition, &[("200", "OK"), ("201", "Created")]),
                    &self.gvk,
                ),
            );
        }
        if self.has("patch") {
            item.insert(
                "patch".into(),
                self.operation(
                    "patch",
                    "patch",
                    &format!("{scope}{kind}"),
                    format!("partially update the specified {kind}"),
                    write_parameters(true),
                    Some(self.patch_request(custom)),
                    responses(&r.definition, &[("200", "OK"), ("201", "Created")]),
                    &self.gvk,
                ),
            );
        }
        if self.has("delete") {
            item.insert(
                "delete".into(),
                self.operation(
                    "delete",
                    "delete",
                    &format!("{scope}{kind}"),
                    format!("delete a {kind}"),
                    delete_parameters(),
                    Some(Self::body_request(DELETE_OPTIONS)),
                    responses(STATUS, &[("200", "OK"), ("202", "Accepted")]),
                    &self.gvk,
                ),
            );
        }
        let item_parameters = {
            let mut parameters = vec![path_parameter("name", &format!("name of the {kind}"))];
            if r.namespaced {
                parameters.push(namespace_parameter.clone());
            }
            parameters.push(pretty.clone());
            parameters
        };
        if !item.is_empty() {
            item.insert("parameters".into(), Value::Array(item_parameters.clone()));
            paths.insert(item_path.clone(), Value::Object(item));
        }

        for subresource in &r.subresources {
            let suffix = format!("{scope}{kind}{}", capitalize(subresource));
            let mut sub = Map::new();
            match subresource.as_str() {
                "status" | "scale" => {
                    let (definition, gvk) = if subresource == "scale" {
                        (
                            SCALE,
                            json!({"group": "autoscaling", "kind": "Scale", "version": "v1"}),
                        )
                    } else {
                        (r.definition.as_str(), self.gvk.clone())
                    };
                    used.push(definition.to_owned());
                    sub.insert(
                        "get".into(),
                        self.operation(
                            "get",
                            "read",
                            &suffix,
                            format!("read {subresource} of the specified {kind}"),
                            Vec::new(),
                            None,
                            responses(definition, &[("200", "OK")]),
                            &gvk,
                        ),
                    );
                    sub.insert(
                        "put".into(),
                        self.operation(
                            "put",
                            "replace",
                            &suffix,
                            format!("replace {subresource} of the specified {kind}"),
                            write_parameters(false),
                            Some(Self::body_request(definition)),
                            responses(definition, &[("200", "OK"), ("201", "Created")]),
                            &gvk,
                        ),
                    );
                    sub.insert(
                        "patch".into(),
                        self.operation(
                            "patch",
                            "patch",
                            &suffix,
                            format!("partially update {subresource} of the specified {kind}"),
                            write_parameters(true),
                            Some(self.patch_request(custom)),
                            responses(definition, &[("200", "OK"), ("201", "Created")]),
                            &gvk,
                        ),
                    );
                }
                "eviction" | "binding" | "token" => {
                    let (definition, gvk) = match subresource.as_str() {
                        "eviction" => (
                            EVICTION,
                            json!({"group": "policy", "kind": "Eviction", "version": "v1"}),
                        ),
                        "binding" => (
                            BINDING,
                            json!({"group": "", "kind": "Binding", "version": "v1"}),
                        ),
                        _ => (
                            TOKEN_REQUEST,
                            json!({"group": "authentication.k8s.io", "kind": "TokenRequest", "version": "v1"}),
                        ),
                    };
                    used.push(definition.to_owned());
                    sub.insert(
                        "post".into(),
                        self.operation(
                            "post",
                            "create",
                            &suffix,
                            format!("create {subresource} of a {kind}"),
                            write_parameters(false),
                            Some(Self::body_request(definition)),
                            responses(
                                definition,
                                &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                            ),
                            &gvk,
                        ),
                    );
                }
                "log" => {
                    let mut log = Map::new();
                    log.insert("200".into(), json!({"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "OK"}));
                    log.insert("401".into(), json!({"description": "Unauthorized"}));
                    sub.insert(
                        "get".into(),
                        self.operation(
                            "get",
                            "read",
                            &suffix,
                            format!("read log of the specified {kind}"),
                            Vec::new(),
                            None,
                            Value::Object(log),
                            &self.gvk,
                        ),
                    );
                }
                _ => {
                    // exec, attach, portforward, proxy: streaming upgrades.
                    let mut ok = Map::new();
                    ok.insert("200".into(), json!({"content": {"*/*": {"schema": {"type": "string"}}}, "description": "OK"}));
                    ok.insert("401".into(), json!({"description": "Unauthorized"}));
                    let ok = Value::Object(ok);
                    sub.insert(
                        "get".into(),
                        self.operation(
                            "connect",
                            "connectGet",
                            &suffix,
                            format!("connect GET requests to {subresource} of {kind}"),
                            Vec::new(),
                            None,
                            ok.clone(),
                            &self.gvk,
                        ),
                    );
                    sub.insert(
                        "post".into(),
                        self.operation(
                            "connect",
                            "connectPost",
                            &suffix,
                            format!("connect POST requests to {subresource} of {kind}"),
                            Vec::new(),
                            None,
                            ok,
                            &self.gvk,
                        ),
                    );
                }
            }
            sub.insert("parameters".into(), Value::Array(item_parameters.clone()));
            paths.insert(format!("{item_path}/{subresource}"), Value::Object(sub));
        }
        used
    }
}

impl<'a> SchemaView<'a> {
    /// The `/openapi/v3` index: `group_versions` are (`api/v1` or `apis/apps/v1`, hash).
    pub fn v3_index(&self, group_versions: &[(String, String)]) -> Value {
        v3_index(group_versions)
    }

    /// The OpenAPI 3.0 document of one group-version: paths of `resources` and every definition
    /// reachable from them. Custom resources resolve through the view's dynamic schemas.
    pub fn v3_document(&self, group: &str, version: &str, resources: &[OpenApiResource]) -> Value {
        let mut paths = Map::new();
        let mut roots: Vec<String> = Vec::new();
        for resource in resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
        {
            let custom = self
                .dynamic
                .is_some_and(|dynamic| dynamic.definitions.contains_key(&resource.definition));
            roots.extend(ResourcePaths::new(resource).add_to(&mut paths, custom));
        }
        roots.push(STATUS.to_owned());
        let schemas = self.reachable(&roots);
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": SPEC_VERSION},
            "paths": Value::Object(paths),
            "components": {"schemas": Value::Object(schemas)}
        })
    }

    /// The definitions named in `roots` and all they refer to, sorted by name.
    pub fn reachable(&self, roots: &[String]) -> Map<String, Value> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut pending: Vec<String> = roots.to_vec();
        while let Some(name) = pending.pop() {
            if seen.contains(&name) {
                continue;
            }
            let Some(schema) = self.definition(&name) else {
                continue;
            };
            seen.insert(name);
            collect_refs(schema, &mut pending);
        }
        let mut schemas = Map::new();
        for name in seen {
            if let Some(schema) = self.definition(&name) {
                schemas.insert(name, schema.clone());
            }
        }
        schemas
    }
}

impl SchemaRegistry {
    pub fn v3_index(&self, group_versions: &[(String, String)]) -> Value {
        v3_index(group_versions)
    }

    /// See [`SchemaView::v3_document`]; use `with_dynamic(..).v3_document(..)` for custom resources.
    pub fn v3_document(&self, group: &str, version: &str, resources: &[OpenApiResource]) -> Value {
        self.view().v3_document(group, version, resources)
    }
}

fn v3_index(group_versions: &[(String, String)]) -> Value {
    let mut paths = Map::new();
    for (group_version, hash) in group_versions {
        paths.insert(
            group_version.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{group_version}?hash={hash}")}),
        );
    }
    json!({"paths": Value::Object(paths)})
}

/// Definition names referenced (`$ref`) anywhere inside `schema`.
pub(crate) fn collect_refs(schema: &Value, into: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
            {
                into.push(name.to_owned());
            }
            map.values().for_each(|child| collect_refs(child, into));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_refs(child, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::group_identifier;

    #[test]
    fn operation_id_group_names() {
        assert_eq!(group_identifier(""), "Core");
        assert_eq!(group_identifier("apps"), "Apps");
        assert_eq!(
            group_identifier("rbac.authorization.k8s.io"),
            "RbacAuthorization"
        );
        assert_eq!(group_identifier("apiextensions.k8s.io"), "Apiextensions");
        assert_eq!(group_identifier("stable.example.com"), "StableExampleCom");
    }
}
