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
