//! Adapters between the API server and the pure crates (schema, patch, api tables).
//!
//! Kept in one place so each pure crate stays ignorant of the others.

use std::sync::Arc;

use serde_json::Value;
use timonel_api::registry::ResourceInfo;
use timonel_patch::{FieldType, TypeResolver};
use timonel_schema::{FieldKind, SchemaRegistry};

/// The built-in OpenAPI schemas (built on first use, off the start-up path).
pub fn schemas() -> &'static SchemaRegistry {
    SchemaRegistry::builtin()
}

/// Lets the patch crate walk the OpenAPI schemas.
pub struct SchemaTypes(pub &'static SchemaRegistry);

fn convert(kind: FieldKind) -> FieldType {
    match kind {
        FieldKind::Object(def) => FieldType::Object(def),
        FieldKind::Array(inner) => FieldType::Array(Box::new(convert(*inner))),
        FieldKind::Map(inner) => FieldType::Map(Box::new(convert(*inner))),
        FieldKind::Scalar => FieldType::Scalar,
        FieldKind::Unknown => FieldType::Unknown,
    }
}

impl TypeResolver for SchemaTypes {
    fn field_type(&self, def: &str, field: &str) -> Option<FieldType> {
        self.0.field_type(def, field).map(convert)
    }
}

/// Renders objects of `info` as a `meta.k8s.io/v1` Table.
pub fn table(
    info: &Arc<ResourceInfo>,
    objects: &[Value],
    include: timonel_api::table::IncludeObject,
    with_column_definitions: bool,
) -> Value {
    let now = chrono::Utc::now();
    match &info.custom {
        Some(custom) => timonel_api::table::custom_resource_table(
            objects,
            &custom.printer_columns,
            now,
            include,
            with_column_definitions,
        ),
        None => timonel_api::table::table(
            &info.group,
            &info.kind,
            objects,
            now,
            include,
            with_column_definitions,
        ),
    }
}

/// Adds upstream's patch extensions (`x-kubernetes-patch-strategy`, `-patch-merge-key`,
/// `-list-type`, `-list-map-keys`) to an OpenAPI document's schemas. kubectl's client-side
/// apply reads them to compute strategic merge patches; without them it treats every list as
/// atomic and sends whole lists, which the server then merges by key (removed items survive).
pub fn add_patch_extensions(doc: &mut Value) {
    use timonel_patch::{ListStrategy, ListType, list_meta};
    let Some(schemas) = doc
        .get_mut("components")
        .and_then(|c| c.get_mut("schemas"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (def, schema) in schemas.iter_mut() {
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (field, prop) in properties.iter_mut() {
            let Some(meta) = list_meta(def, field) else {
                continue;
            };
            let Some(prop) = prop.as_object_mut() else {
                continue;
            };
            let strategy = match meta.strategy {
                ListStrategy::Merge => Some("merge"),
                ListStrategy::RetainKeys => Some("retainKeys"),
                ListStrategy::MergeRetainKeys => Some("merge,retainKeys"),
                ListStrategy::Replace => None,
            };
            if let Some(strategy) = strategy {
                prop.insert("x-kubernetes-patch-strategy".into(), Value::from(strategy));
            }
            if let Some(key) = meta.merge_key {
                prop.insert("x-kubernetes-patch-merge-key".into(), Value::from(key));
            }
            if prop.get("type").and_then(Value::as_str) == Some("array") {
                match meta.list_type {
                    ListType::Atomic => {
                        prop.insert("x-kubernetes-list-type".into(), Value::from("atomic"));
                    }
                    ListType::Set => {
                        prop.insert("x-kubernetes-list-type".into(), Value::from("set"));
                    }
                    ListType::Map(keys) => {
                        prop.insert("x-kubernetes-list-type".into(), Value::from("map"));
                        prop.insert(
                            "x-kubernetes-list-map-keys".into(),
                            Value::from(keys.to_vec()),
                        );
                    }
                }
            }
        }
    }
}

/// kubectl's OpenAPI reader ignores siblings of `$ref`, so a field's own description must sit
/// beside an `allOf: [{$ref}]` wrapper, as upstream's v3 documents do.
pub fn wrap_described_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // A `properties` map may have a property named `$ref` (JSONSchemaProps does):
            // only a string `$ref` is a reference.
            if map.len() > 1
                && map.get("$ref").is_some_and(Value::is_string)
                && let Some(reference) = map.remove("$ref")
            {
                map.insert("allOf".into(), serde_json::json!([{"$ref": reference}]));
            }
            for child in map.values_mut() {
                wrap_described_refs(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_described_refs),
        _ => {}
    }
}
