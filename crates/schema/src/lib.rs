//! OpenAPI schemas of the Kubernetes kinds: strict field checking, OpenAPI v3 documents, explain.
//!
//! - [`SchemaRegistry::builtin`]: definitions of the built-in kinds, generated once from
//!   `k8s-openapi`'s `schemars` implementations (`$ref`s point at `#/components/schemas/X`; kind
//!   definitions carry `x-kubernetes-group-version-kind`).
//! - [`DynamicSchemas`]: custom resource definitions, layered over the built-ins with
//!   [`SchemaRegistry::with_dynamic`]; the resulting [`SchemaView`] answers `field_type`,
//!   `check_fields` and builds OpenAPI documents for both.
//! - [`StructuralSchema`]: structural checks, validation and pruning of custom objects.
//! - [`SchemaView::v3_document`] / [`SchemaView::v3_index`]: OpenAPI v3 for kubectl and Helm.
//!
//! Building the built-in registry takes about 10 ms (`examples/schema_build_time.rs`); call
//! [`SchemaRegistry::prewarm`] at startup to do it off the request path. A group-version document
//! takes about 10 ms to assemble, so cache it per hash.

mod fields;
mod openapi;
mod registry;
mod structural;

pub use fields::{FieldIssue, IssueKind, parse_tracking_duplicates};
pub use openapi::OpenApiResource;
pub use registry::{
    DynamicSchemas, FieldKind, Gvk, REF_PREFIX, SchemaRegistry, SchemaView,
    custom_resource_definition_name,
};
pub use structural::{FieldError, StructuralSchema};
