//! The registry of OpenAPI definitions of the built-in kinds, generated from `k8s-openapi`'s
//! `schemars` implementations, plus the overlay of custom resource schemas.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions_v1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta_v1;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// Prefix of every `$ref` in the registry and in the documents it serves.
pub const REF_PREFIX: &str = "#/components/schemas/";

pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(crate) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(crate) const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
pub(crate) const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
pub(crate) const TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
pub(crate) const MICRO_TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime";
/// Definitions whose value is arbitrary JSON (decoded raw upstream), never checked inside.
pub(crate) const RAW_DEFINITIONS: [&str; 3] = [
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
];

/// A group, version and kind; group is `""` for the core group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Gvk {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({"group": self.group, "kind": self.kind, "version": self.version})
    }
}

/// The shape of a field, as the patch engine needs it to pick merge strategies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// A struct, named by its definition.
    Object(String),
    Array(Box<FieldKind>),
    /// A map with string keys.
    Map(Box<FieldKind>),
    /// A string, number, boolean, or a type serialized as one (IntOrString, Quantity, Time).
    Scalar,
    /// Arbitrary JSON (RawExtension, FieldsV1, preserved unknown fields) or a missing schema.
    Unknown,
}

/// Definitions of the built-in kinds, keyed by OpenAPI definition name.
#[derive(Debug)]
pub struct SchemaRegistry {
    pub(crate) definitions: Map<String, Value>,
    pub(crate) by_gvk: HashMap<Gvk, String>,
}

static BUILTIN: OnceLock<SchemaRegistry> = OnceLock::new();

impl SchemaRegistry {
    /// The registry of built-in kinds, built on first use (a few milliseconds; call it from a
    /// background thread at startup to keep it off the first request's path).
    pub fn builtin() -> &'static SchemaRegistry {
        BUILTIN.get_or_init(SchemaRegistry::build)
    }

    /// Starts building the built-in registry on a background thread, so that the first request
    /// needing it does not wait. Safe to call any number of times.
    pub fn prewarm() {
        // If no thread can be spawned, `builtin()` simply builds on first use.
        let _ = std::thread::Builder::new()
            .name("schema-registry".into())
            .spawn(|| {
                SchemaRegistry::builtin();
            });
    }

    /// Builds a fresh registry; `builtin()` caches one.
    pub fn build() -> SchemaRegistry {
        let mut settings = SchemaSettings::draft2020_12();
        settings.definitions_path = "/components/schemas".into();
        settings.meta_schema = None;
        let mut generator = settings.into_generator();
        let mut kinds: Vec<(Gvk, String, bool)> = Vec::new();

        macro_rules! kinds {
            ($($ty:ty => ($group:expr, $version:expr, $kind:expr, $listable:expr)),* $(,)?) => {
                $(
                    generator.subschema_for::<$ty>();
                    kinds.push((
                        Gvk::new($group, $version, $kind),
                        <$ty as schemars::JsonSchema>::schema_name().into_owned(),
                        $listable,
                    ));
                )*
            };
        }

        kinds! {
            api::core::v1::Namespace => ("", "v1", "Namespace", true),
            api::core::v1::Pod => ("", "v1", "Pod", true),
            api::core::v1::PodTemplate => ("", "v1", "PodTemplate", true),
            api::core::v1::Service => ("", "v1", "Service", true),
            api::core::v1::Endpoints => ("", "v1", "Endpoints", true),
            api::core::v1::Node => ("", "v1", "Node", true),
            api::core::v1::ConfigMap => ("", "v1", "ConfigMap", true),
            api::core::v1::Secret => ("", "v1", "Secret", true),
            api::core::v1::ServiceAccount => ("", "v1", "ServiceAccount", true),
            api::core::v1::Event => ("", "v1", "Event", true),
            api::core::v1::PersistentVolume => ("", "v1", "PersistentVolume", true),
            api::core::v1::PersistentVolumeClaim => ("", "v1", "PersistentVolumeClaim", true),
            api::core::v1::ResourceQuota => ("", "v1", "ResourceQuota", true),
            api::core::v1::LimitRange => ("", "v1", "LimitRange", true),
            api::core::v1::ReplicationController => ("", "v1", "ReplicationController", true),
            api::core::v1::Binding => ("", "v1", "Binding", false),
            api::apps::v1::Deployment => ("apps", "v1", "Deployment", true),
            api::apps::v1::ReplicaSet => ("apps", "v1", "ReplicaSet", true),
            api::apps::v1::DaemonSet => ("apps", "v1", "DaemonSet", true),
            api::apps::v1::StatefulSet => ("apps", "v1", "StatefulSet", true),
            api::apps::v1::ControllerRevision => ("apps", "v1", "ControllerRevision", true),
            api::batch::v1::Job => ("batch", "v1", "Job", true),
            api::batch::v1::CronJob => ("batch", "v1", "CronJob", true),
            api::coordination::v1::Lease => ("coordination.k8s.io", "v1", "Lease", true),
            api::discovery::v1::EndpointSlice => ("discovery.k8s.io", "v1", "EndpointSlice", true),
            api::events::v1::Event => ("events.k8s.io", "v1", "Event", true),
            api::autoscaling::v1::HorizontalPodAutoscaler => ("autoscaling", "v1", "HorizontalPodAutoscaler", true),
            api::autoscaling::v1::Scale => ("autoscaling", "v1", "Scale", false),
            api::autoscaling::v2::HorizontalPodAutoscaler => ("autoscaling", "v2", "HorizontalPodAutoscaler", true),
            api::rbac::v1::Role => ("rbac.authorization.k8s.io", "v1", "Role", true),
            api::rbac::v1::ClusterRole => ("rbac.authorization.k8s.io", "v1", "ClusterRole", true),
            api::rbac::v1::RoleBinding => ("rbac.authorization.k8s.io", "v1", "RoleBinding", true),
            api::rbac::v1::ClusterRoleBinding => ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", true),
            api::networking::v1::Ingress => ("networking.k8s.io", "v1", "Ingress", true),
            api::networking::v1::IngressClass => ("networking.k8s.io", "v1", "IngressClass", true),
            api::networking::v1::NetworkPolicy => ("networking.k8s.io", "v1", "NetworkPolicy", true),
            api::policy::v1::PodDisruptionBudget => ("policy", "v1", "PodDisruptionBudget", true),
            api::policy::v1::Eviction => ("policy", "v1", "Eviction", false),
            api::storage::v1::StorageClass => ("storage.k8s.io", "v1", "StorageClass", true),
            api::scheduling::v1::PriorityClass => ("scheduling.k8s.io", "v1", "PriorityClass", true),
            apiextensions_v1::CustomResourceDefinition => ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", true),
            api::authorization::v1::SelfSubjectAccessReview => ("authorization.k8s.io", "v1", "SelfSubjectAccessReview", false),
            api::authentication::v1::TokenRequest => ("authentication.k8s.io", "v1", "TokenRequest", false),
            meta_v1::Status => ("", "v1", "Status", false),
        }
        // Not kinds of their own, but every group-version document refers to them.
        generator.subschema_for::<meta_v1::DeleteOptions>();
        generator.subschema_for::<meta_v1::Patch>();
        generator.subschema_for::<meta_v1::ListMeta>();
        generator.subschema_for::<meta_v1::WatchEvent<api::core::v1::Pod>>();

        let mut definitions = generator.take_definitions(false);
        for schema in definitions.values_mut() {
            rewrite_refs(schema);
        }

        let mut registry = SchemaRegistry {
            definitions,
            by_gvk: HashMap::new(),
        };
        let mut group_versions: Vec<(String, String)> = Vec::new();
        for (gvk, definition, listable) in kinds {
            if !group_versions.contains(&(gvk.group.clone(), gvk.version.clone())) {
                group_versions.push((gvk.group.clone(), gvk.version.clone()));
            }
            if listable {
                let list_gvk = Gvk::new(&gvk.group, &gvk.version, &format!("{}List", gvk.kind));
                let list_name = format!("{definition}List");
                registry
                    .definitions
                    .insert(list_name.clone(), list_definition(&gvk.kind, &definition));
                registry.tag(list_gvk, &list_name);
            }
            registry.tag(gvk, &definition);
        }
        // Upstream registers DeleteOptions in every group-version (DELETE bodies carry them).
        for (group, version) in group_versions {
            registry.tag(Gvk::new(&group, &version, "DeleteOptions"), DELETE_OPTIONS);
        }
        registry
    }

    /// Records `gvk` as served by `definition` and adds it to the definition's
    /// `x-kubernetes-group-version-kind` list.
    fn tag(&mut self, gvk: Gvk, definition: &str) {
        if let Some(Value::Object(schema)) = self.definitions.get_mut(definition) {
            add_gvk_extension(schema, &gvk);
        }
        self.by_gvk.insert(gvk, definition.to_owned());
    }

    /// Number of definitions.
    pub fn len(&self) -> usize {
        self.definitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty()
    }

    /// Names of all definitions.
    pub fn definition_names(&self) -> impl Iterator<Item = &str> {
        self.definitions.keys().map(String::as_str)
    }

    /// Every group/version/kind with a definition.
    pub fn kinds(&self) -> impl Iterator<Item = (&Gvk, &str)> {
        self.by_gvk.iter().map(|(gvk, name)| (gvk, name.as_str()))
    }

    /// A view combining the built-in definitions with custom resource definitions.
    pub fn with_dynamic<'a>(&'a self, dynamic: &'a DynamicSchemas) -> SchemaView<'a> {
        SchemaView {
            builtin: self,
            dynamic: Some(dynamic),
        }
    }

    /// A view of the built-in definitions alone.
    pub fn view(&self) -> SchemaView<'_> {
        SchemaView {
            builtin: self,
            dynamic: None,
        }
    }

    pub fn definition_for(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.view().definition_for(group, version, kind)
    }

    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.view().definition(name)
    }

    pub fn field_type(&self, def: &str, field: &str) -> Option<FieldKind> {
        self.view().field_type(def, field)
    }
}

pub(crate) fn add_gvk_extension(schema: &mut Map<String, Value>, gvk: &Gvk) {
    let entry = schema
        .entry("x-kubernetes-group-version-kind")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = entry {
        let tag = gvk.to_json();
        if !list.contains(&tag) {
            list.push(tag);
        }
    }
}

/// Rewrites schemars' default `#/$defs/X` references to OpenAPI v3's `#/components/schemas/X`.
fn rewrite_refs(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && let Some(name) = reference.strip_prefix("#/$defs/")
            {
                *reference = format!("{REF_PREFIX}{name}");
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

pub(crate) const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
pub(crate) const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// The `<Kind>List` definition (k8s-openapi models lists generically, so they are built here).
pub(crate) fn list_definition(kind: &str, item_definition: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{REF_PREFIX}{item_definition}")}
            },
            "kind": {"description": KIND_DESCRIPTION, "type": "string"},
            "metadata": {
                "$ref": format!("{REF_PREFIX}{LIST_META}"),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
            }
        },
        "required": ["items"]
    })
}

/// Definitions of custom resources, layered over the built-in registry.
///
/// The server keeps one (behind a lock), adds each CRD when it is established and removes it when
/// the CRD is deleted, then uses `SchemaRegistry::builtin().with_dynamic(&dynamic)` for
/// `field_type`, `check_fields` and the OpenAPI documents.
#[derive(Debug, Default, Clone)]
pub struct DynamicSchemas {
    pub(crate) definitions: Map<String, Value>,
    pub(crate) by_gvk: HashMap<Gvk, String>,
    /// CRD name → definitions it contributed, for removal.
    owned: HashMap<String, Vec<(Gvk, String)>>,
}

/// Upstream's definition name for a custom resource: the group reversed, then version and kind
/// (`stable.example.com`, `v1`, `CronTab` → `com.example.stable.v1.CronTab`).
pub fn custom_resource_definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

impl DynamicSchemas {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every served version of a CustomResourceDefinition (as JSON) that has a schema,
    /// replacing what the same CRD registered before. Returns the definition names registered.
    pub fn add_crd(&mut self, crd: &Value) -> Result<Vec<String>, Vec<String>> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| vec!["metadata.name: Required value".to_owned()])?;
        let spec = crd
            .get("spec")
            .ok_or_else(|| vec!["spec: Required value".to_owned()])?;
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = spec.pointer("/names/kind").and_then(Value::as_str);
        let Some(kind) = kind else {
            return Err(vec!["spec.names.kind: Required value".to_owned()]);
        };
        let list_kind = spec
            .pointer("/names/listKind")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{kind}List"));
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();

        let mut prepared = Vec::new();
        let mut errors = Vec::new();
        for (index, version) in versions.iter().enumerate() {
            if version.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let Some(version_name) = version.get("name").and_then(Value::as_str) else {
                errors.push(format!("spec.versions[{index}].name: Required value"));
                continue;
            };
            let schema = version
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or_else(
                    || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                );
            if !schema.is_object() {
                errors.push(format!(
                    "spec.versions[{index}].schema.openAPIV3Schema: Invalid value: must be an object"
                ));
                continue;
            }
            prepared.push((version_name.to_owned(), schema));
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        self.remove_crd(name);
        let mut registered = Vec::new();
        let mut owned = Vec::new();
        for (version, schema) in prepared {
            let definition = custom_resource_definition_name(group, &version, kind);
            let gvk = Gvk::new(group, &version, kind);
            let list_gvk = Gvk::new(group, &version, &list_kind);
            let list_name = custom_resource_definition_name(group, &version, &list_kind);
            let mut list = list_definition(kind, &definition);
            if let Value::Object(map) = &mut list {
                add_gvk_extension(map, &list_gvk);
            }
            self.definitions
                .insert(definition.clone(), custom_resource_schema(schema, &gvk));
            self.definitions.insert(list_name.clone(), list);
            self.by_gvk.insert(gvk.clone(), definition.clone());
            self.by_gvk.insert(list_gvk.clone(), list_name.clone());
            owned.push((gvk, definition.clone()));
            owned.push((list_gvk, list_name));
            registered.push(definition);
        }
        self.owned.insert(name.to_owned(), owned);
        Ok(registered)
    }

    /// Forgets the definitions a CRD registered. Returns whether it had any.
    pub fn remove_crd(&mut self, crd_name: &str) -> bool {
        let Some(owned) = self.owned.remove(crd_name) else {
            return false;
        };
        for (gvk, definition) in owned {
            self.by_gvk.remove(&gvk);
            self.definitions.remove(&definition);
        }
        true
    }

    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }
}

/// The served definition of a custom resource: its schema with `apiVersion`, `kind` and
/// `metadata` declared as upstream does, and the gvk extension.
fn custom_resource_schema(schema: Value, gvk: &Gvk) -> Value {
    let Value::Object(mut map) = schema else {
        return schema;
    };
    map.entry("type").or_insert_with(|| json!("object"));
    let properties = map
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        properties.insert(
            "apiVersion".into(),
            json!({"description": API_VERSION_DESCRIPTION, "type": "string"}),
        );
        properties.insert(
            "kind".into(),
            json!({"description": KIND_DESCRIPTION, "type": "string"}),
        );
        properties.insert(
            "metadata".into(),
            json!({
                "$ref": format!("{REF_PREFIX}{OBJECT_META}"),
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
            }),
        );
    }
    add_gvk_extension(&mut map, gvk);
    Value::Object(map)
}

/// Built-in definitions, optionally overlaid with custom resource definitions.
#[derive(Debug, Clone, Copy)]
pub struct SchemaView<'a> {
    pub(crate) builtin: &'a SchemaRegistry,
    pub(crate) dynamic: Option<&'a DynamicSchemas>,
}

impl<'a> SchemaView<'a> {
    /// The definition serving a group/version/kind.
    pub fn definition_for(&self, group: &str, version: &str, kind: &str) -> Option<&'a str> {
        let gvk = Gvk::new(group, version, kind);
        if let Some(dynamic) = self.dynamic
            && let Some(name) = dynamic.by_gvk.get(&gvk)
        {
            return Some(name.as_str());
        }
        self.builtin.by_gvk.get(&gvk).map(String::as_str)
    }

    /// A definition by name. Names of the form `Definition/json/pointer` address a schema nested
    /// inside a definition (how `FieldKind::Object` names inline objects of CRD schemas).
    pub fn definition(&self, name: &str) -> Option<&'a Value> {
        if let Some((base, pointer)) = name.split_once('/') {
            return self.definition(base)?.pointer(&format!("/{pointer}"));
        }
        if let Some(dynamic) = self.dynamic
            && let Some(schema) = dynamic.definitions.get(name)
        {
            return Some(schema);
        }
        self.builtin.definitions.get(name)
    }

    /// Follows `$ref` and single-element `allOf` wrappers. Returns the schema reached and the
    /// name of the last definition entered (with a JSON-pointer suffix for inline schemas).
    pub(crate) fn resolve(
        &self,
        schema: &'a Value,
        name: Option<String>,
    ) -> (&'a Value, Option<String>) {
        let mut current = schema;
        let mut current_name = name;
        // Bounded so that a cyclic `$ref` chain cannot loop forever.
        for _ in 0..16 {
            if let Some(reference) = current.get("$ref").and_then(Value::as_str) {
                let Some(target_name) = reference.strip_prefix(REF_PREFIX) else {
                    break;
                };
                let Some(target) = self.definition(target_name) else {
                    break;
                };
                current = target;
                current_name = Some(target_name.to_owned());
                continue;
            }
            if let Some(Value::Array(all_of)) = current.get("allOf")
                && all_of.len() == 1
                && current.get("properties").is_none()
                && current.get("type").is_none()
            {
                current = &all_of[0];
                continue;
            }
            break;
        }
        (current, current_name)
    }

    /// The kind of a field of a definition (`def` may carry a JSON-pointer suffix, see
    /// [`SchemaView::definition`]).
    pub fn field_type(&self, def: &str, field: &str) -> Option<FieldKind> {
        let root = self.definition(def)?;
        let (schema, name) = self.resolve(root, Some(def.to_owned()));
        let property = schema.get("properties")?.get(field)?;
        let base = name.unwrap_or_else(|| def.to_owned());
        Some(self.classify(
            property,
            &format!("{base}/properties/{}", escape_pointer(field)),
        ))
    }

    /// Classifies a schema; `inline_name` names it when it is an inline object.
    pub(crate) fn classify(&self, schema: &'a Value, inline_name: &str) -> FieldKind {
        let (resolved, name) = self.resolve(schema, None);
        if let Some(name) = &name {
            if name == INT_OR_STRING || name == QUANTITY || name == TIME || name == MICRO_TIME {
                return FieldKind::Scalar;
            }
            if RAW_DEFINITIONS.contains(&name.as_str()) {
                return FieldKind::Unknown;
            }
        }
        let own_name = name.unwrap_or_else(|| inline_name.to_owned());
        if resolved
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            == Some(true)
        {
            return FieldKind::Scalar;
        }
        match resolved.get("type").and_then(Value::as_str) {
            Some("array") => match resolved.get("items") {
                Some(items) => {
                    FieldKind::Array(Box::new(self.classify(items, &format!("{own_name}/items"))))
                }
                None => FieldKind::Array(Box::new(FieldKind::Unknown)),
            },
            Some("object") | None => {
                if resolved.get("properties").is_some() {
                    FieldKind::Object(own_name)
                } else if let Some(additional) = resolved
                    .get("additionalProperties")
                    .filter(|a| a.is_object())
                {
                    FieldKind::Map(Box::new(
                        self.classify(additional, &format!("{own_name}/additionalProperties")),
                    ))
                } else {
                    FieldKind::Unknown
                }
            }
            Some(_) => FieldKind::Scalar,
        }
    }
}

/// Escapes a property name for use in a JSON pointer.
pub(crate) fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}
