//! Types of the generated message tables (`generated.rs`).

/// Protobuf scalar types used by the Kubernetes API (no unsigned or fixed-width integers occur).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScalarKind {
    String,
    Bytes,
    Int32,
    Int64,
    Bool,
    Double,
}

/// Value type of a `map<string, V>` field.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MapValue {
    Scalar(ScalarKind),
    /// Index into `MESSAGES`.
    Message(usize),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum FieldKind {
    Scalar(ScalarKind),
    /// Index into `MESSAGES`.
    Message(usize),
    /// A string-keyed map (the only key type Kubernetes uses).
    Map(MapValue),
}

#[derive(Debug)]
pub(crate) struct FieldDef {
    pub tag: u32,
    /// JSON property name; empty for inlined (embedded Go struct) fields.
    pub json: &'static str,
    pub kind: FieldKind,
    pub repeated: bool,
    /// The nested message's fields belong to the enclosing JSON object (`json:",inline"`).
    pub inline: bool,
    /// Go writes non-pointer strings to protobuf even when empty, while their JSON form omits
    /// them; set for optional fields where an empty string therefore means "absent".
    pub omit_empty_string: bool,
}

/// How a message maps to JSON.
#[derive(Debug)]
pub(crate) enum Shape {
    /// A JSON object of the listed fields.
    Object(&'static [FieldDef]),
    /// meta/v1 Time {1: seconds, 2: nanos} -> RFC 3339 with second precision.
    Time,
    /// meta/v1 MicroTime -> RFC 3339 with microseconds.
    MicroTime,
    /// meta/v1 Duration {1: nanoseconds} -> Go duration string.
    Duration,
    /// resource.Quantity {1: string} -> string.
    Quantity,
    /// intstr.IntOrString {1: type, 2: intVal, 3: strVal} -> number or string.
    IntOrString,
    /// {1: raw JSON bytes} (RawExtension, FieldsV1, apiextensions JSON) -> parsed JSON.
    RawJson,
    /// A Go named `[]string` (ExtraValue, Verbs) {1: repeated string} -> array.
    StringList,
    /// JSONSchemaPropsOrArray {1: schema, 2: repeated schema}; carries the JSONSchemaProps index.
    SchemaOrArray(usize),
    /// JSONSchemaPropsOrBool {1: allows, 2: schema}.
    SchemaOrBool(usize),
    /// JSONSchemaPropsOrStringArray {1: schema, 2: repeated string}.
    SchemaOrStringArray(usize),
}

#[derive(Debug)]
pub(crate) struct MessageDef {
    /// Proto package path and message name, e.g. `api.core.v1.Pod`.
    pub name: &'static str,
    pub shape: Shape,
}
