//! Strict field checking of built-in objects, mirroring what upstream's decoder reports: unknown
//! fields (`fieldValidation=Strict|Warn`) and JSON type mismatches (always fatal upstream).

use serde_json::Value;

use crate::registry::{
    INT_OR_STRING, MICRO_TIME, QUANTITY, RAW_DEFINITIONS, SchemaRegistry, SchemaView, TIME,
};

/// One problem found by [`SchemaView::check_fields`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// Path of the field, e.g. `spec.template.spec.containers[0].imagex`.
    pub path: String,
    pub kind: IssueKind,
    /// The message upstream gives, e.g. `unknown field "spec.replicasx"` or
    /// `json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueKind {
    /// A field the schema does not declare (only an error with `fieldValidation=Strict`).
    Unknown,
    /// A key given twice in one object (only detectable from raw bytes, see `check_fields_raw`).
    Duplicate,
    /// A value of the wrong JSON type: upstream fails the request whatever the validation mode.
    WrongType { expected: String, found: String },
}

impl FieldIssue {
    pub fn is_wrong_type(&self) -> bool {
        matches!(self.kind, IssueKind::WrongType { .. })
    }
}

/// Where the walk is: the strict path (with indices) and Go's error context (innermost struct and
/// the field stack without indices or map keys, as `encoding/json` reports it).
struct Position<'p> {
    path: &'p str,
    go_struct: Option<&'p str>,
    go_field: &'p str,
}

impl<'a> SchemaView<'a> {
    /// Checks `value` against definition `def`. Issues come in document order; upstream reports
    /// only the first type mismatch, and all unknown fields (joined by ", ").
    pub fn check_fields(&self, def: &str, value: &Value) -> Vec<FieldIssue> {
        let mut issues = Vec::new();
        let Some(schema) = self.definition(def) else {
            return issues;
        };
        let position = Position {
            path: "",
            go_struct: None,
            go_field: "",
        };
        self.check_value(schema, Some(def.to_owned()), value, &position, &mut issues);
        issues
    }

    fn check_value(
        &self,
        schema: &'a Value,
        name: Option<String>,
        value: &Value,
        position: &Position<'_>,
        issues: &mut Vec<FieldIssue>,
    ) {
        // JSON null leaves a Go value untouched: never an error.
        if value.is_null() {
            return;
        }
        let (schema, name) = self.resolve(schema, name);
        let definition = name.as_deref().filter(|n| !n.contains('/'));
        match definition {
            Some(def) if RAW_DEFINITIONS.contains(&def) => return,
            Some(INT_OR_STRING) => {
                if !value.is_string()
                    && !fits_integer(value, i64::from(i32::MIN), i64::from(i32::MAX))
                {
                    issues.push(type_issue(position, value, "int32"));
                }
                return;
            }
            Some(QUANTITY) => {
                let valid = match value {
                    Value::String(text) => is_quantity(text.trim()),
                    Value::Number(number) => is_quantity(&number.to_string()),
                    _ => false,
                };
                if !valid {
                    issues.push(FieldIssue {
                        path: position.path.to_owned(),
                        kind: IssueKind::WrongType {
                            expected: "resource.Quantity".into(),
                            found: json_kind(value).into(),
                        },
                        message: "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".into(),
                    });
                }
                return;
            }
            Some(TIME) | Some(MICRO_TIME) => {
                if !value.is_string() {
                    issues.push(type_issue(position, value, "string"));
                }
                return;
            }
            _ => {}
        }
        if schema
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            == Some(true)
        {
            if !value.is_string() && !value.is_i64() && !value.is_u64() {
                issues.push(type_issue(position, value, "int32"));
            }
            return;
        }
        let preserve_unknown = schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        match schema.get("type").and_then(Value::as_str) {
            Some("object") | None => {
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    let Value::Object(object) = value else {
                        issues.push(type_issue(
                            position,
                            value,
                            &self.go_type(schema, definition),
                        ));
                        return;
                    };
                    let struct_name = definition.map(short_name).or(position.go_struct);
                    for (key, child) in object {
                        let path = join_path(position.path, key);
                        match properties.get(key) {
                            Some(property) => {
                                let go_field = join_path(position.go_field, key);
                                let child_position = Position {
                                    path: &path,
                                    go_struct: struct_name,
                                    go_field: &go_field,
                                };
                                self.check_value(property, None, child, &child_position, issues);
                            }
                            None if preserve_unknown => {}
                            // Type metadata is always accepted at the root, declared or not.
                            None if position.path.is_empty()
                                && (key == "apiVersion" || key == "kind") => {}
                            None => issues.push(FieldIssue {
                                message: format!("unknown field \"{path}\""),
                                path,
                                kind: IssueKind::Unknown,
                            }),
                        }
                    }
                } else if let Some(additional) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    let Value::Object(object) = value else {
                        issues.push(type_issue(
                            position,
                            value,
                            &self.go_type(schema, definition),
                        ));
                        return;
                    };
                    for (key, child) in object {
                        let path = join_path(position.path, key);
                        let child_position = Position {
                            path: &path,
                            go_struct: position.go_struct,
                            go_field: position.go_field,
                        };
                        self.check_value(additional, None, child, &child_position, issues);
                    }
                } else if schema.get("type").is_some() && !preserve_unknown && !value.is_object() {
                    // A free-form object (map[string]interface{} upstream).
                    issues.push(type_issue(position, value, "map[string]interface {}"));
                }
            }
            Some("array") => {
                let Value::Array(items) = value else {
                    issues.push(type_issue(
                        position,
                        value,
                        &self.go_type(schema, definition),
                    ));
                    return;
                };
                let Some(item_schema) = schema.get("items") else {
                    return;
                };
                for (index, item) in items.iter().enumerate() {
                    let path = format!("{}[{index}]", position.path);
                    let child_position = Position {
                        path: &path,
                        go_struct: position.go_struct,
                        go_field: position.go_field,
                    };
                    self.check_value(item_schema, None, item, &child_position, issues);
                }
            }
            Some("string") => {
                if !value.is_string() {
                    issues.push(type_issue(
                        position,
                        value,
                        &self.go_type(schema, definition),
                    ));
                }
            }
            Some("boolean") => {
                if !value.is_boolean() {
                    issues.push(type_issue(position, value, "bool"));
                }
            }
            Some("integer") => {
                let (low, high) = match schema.get("format").and_then(Value::as_str) {
                    Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                if !fits_integer(value, low, high) {
                    issues.push(type_issue(
                        position,
                        value,
                        &self.go_type(schema, definition),
                    ));
                }
            }
            Some("number") => {
                if !value.is_number() {
                    issues.push(type_issue(position, value, "float64"));
                }
            }
            Some(_) => {}
        }
    }

    /// The Go type upstream names in `cannot unmarshal … of type T`.
    fn go_type(&self, schema: &'a Value, definition: Option<&str>) -> String {
        if let Some(def) = definition
            && schema.get("properties").is_some()
        {
            return go_qualified_name(def);
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("array") => {
                let item = schema.get("items").map(|items| {
                    let (resolved, name) = self.resolve(items, None);
                    self.go_type(resolved, name.as_deref().filter(|n| !n.contains('/')))
                });
                format!("[]{}", item.unwrap_or_else(|| "interface {}".into()))
            }
            Some("object") | None => match schema
                .get("additionalProperties")
                .filter(|a| a.is_object())
            {
                Some(additional) => {
                    let (resolved, name) = self.resolve(additional, None);
                    let value_type = match name.as_deref() {
                        Some(QUANTITY) => "resource.Quantity".to_owned(),
                        _ => self.go_type(resolved, name.as_deref().filter(|n| !n.contains('/'))),
                    };
                    format!("map[string]{value_type}")
                }
                None => "map[string]interface {}".into(),
            },
            Some("string") => match schema.get("format").and_then(Value::as_str) {
                Some("byte") => "[]uint8".into(),
                _ => "string".into(),
            },
            Some("integer") => match schema.get("format").and_then(Value::as_str) {
                Some("int32") => "int32".into(),
                _ => "int64".into(),
            },
            Some("number") => "float64".into(),
            Some("boolean") => "bool".into(),
            Some(other) => other.to_owned(),
        }
    }
}

impl SchemaRegistry {
    pub fn check_fields(&self, def: &str, value: &Value) -> Vec<FieldIssue> {
        self.view().check_fields(def, value)
    }

    pub fn check_fields_raw(
        &self,
        def: &str,
        body: &[u8],
    ) -> Result<(Value, Vec<FieldIssue>), serde_json::Error> {
        self.view().check_fields_raw(def, body)
    }
}

impl SchemaView<'_> {
    /// Parses a JSON body and checks it: duplicate keys (which a parsed `Value` no longer shows;
    /// the last occurrence wins, as in Go) come first, then [`SchemaView::check_fields`] issues.
    /// Returns the parsed value so the body is parsed once.
    pub fn check_fields_raw(
        &self,
        def: &str,
        body: &[u8],
    ) -> Result<(Value, Vec<FieldIssue>), serde_json::Error> {
        let (value, duplicates) = parse_tracking_duplicates(body)?;
        let mut issues: Vec<FieldIssue> = duplicates
            .into_iter()
            .map(|path| FieldIssue {
                message: format!("duplicate field \"{path}\""),
                path,
                kind: IssueKind::Duplicate,
            })
            .collect();
        issues.extend(self.check_fields(def, &value));
        Ok((value, issues))
    }
}

/// Parses JSON, recording the path of every key repeated within one object.
pub fn parse_tracking_duplicates(body: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut duplicates = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = TrackedValue {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((value, duplicates))
}

/// A `Value` deserializer that knows where it is, to name duplicate keys by path.
struct TrackedValue<'d> {
    path: String,
    duplicates: &'d mut Vec<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for TrackedValue<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TrackedValue<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(TrackedValue {
            path: format!("{}[{}]", self.path, items.len()),
            duplicates: &mut *self.duplicates,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join_path(&self.path, &key);
            let value = map.next_value_seed(TrackedValue {
                path: path.clone(),
                duplicates: &mut *self.duplicates,
            })?;
            if object.insert(key, value).is_some() {
                self.duplicates.push(path);
            }
        }
        Ok(Value::Object(object))
    }
}

fn join_path(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// `io.k8s.api.apps.v1.DeploymentSpec` → `DeploymentSpec`.
fn short_name(definition: &str) -> &str {
    definition.rsplit('.').next().unwrap_or(definition)
}

/// `io.k8s.api.apps.v1.DeploymentSpec` → `v1.DeploymentSpec` (Go package name and type).
fn go_qualified_name(definition: &str) -> String {
    let mut parts = definition.rsplit('.');
    let type_name = parts.next().unwrap_or(definition);
    match parts.next() {
        Some(package) => format!("{package}.{type_name}"),
        None => type_name.to_owned(),
    }
}

/// How Go's `UnmarshalTypeError` describes the offending JSON value.
fn go_value_description(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        // Go says just "number" when a number lands in a non-numeric type, and adds the literal
        // when it does not fit a numeric one; callers choose via `type_issue`.
        Value::Number(number) => format!("number {number}"),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
    }
}

fn type_issue(position: &Position<'_>, value: &Value, go_type: &str) -> FieldIssue {
    let numeric_target =
        go_type.starts_with("int") || go_type.starts_with("uint") || go_type.starts_with("float");
    let described = match value {
        Value::Number(_) if !numeric_target => "number".to_owned(),
        other => go_value_description(other),
    };
    let message = match position.go_struct {
        Some(go_struct) if !position.go_field.is_empty() => format!(
            "json: cannot unmarshal {described} into Go struct field {go_struct}.{} of type {go_type}",
            position.go_field
        ),
        _ => format!("json: cannot unmarshal {described} into Go value of type {go_type}"),
    };
    FieldIssue {
        path: position.path.to_owned(),
        kind: IssueKind::WrongType {
            expected: go_type.to_owned(),
            found: json_kind(value).to_owned(),
        },
        message,
    }
}

fn fits_integer(value: &Value, low: i64, high: i64) -> bool {
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(integer) => (low..=high).contains(&integer),
            None => false,
        },
        _ => false,
    }
}

/// Checks the shape of a resource quantity: a signed decimal number followed by an optional
/// binary-SI, decimal-SI or exponent suffix.
pub(crate) fn is_quantity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return false;
    }
    const SUFFIXES: [&str; 14] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T",
    ];
    if SUFFIXES.contains(&suffix) || suffix == "P" || suffix == "E" {
        return true;
    }
    // Decimal exponent: e/E followed by a signed integer.
    match suffix.strip_prefix(['e', 'E']) {
        Some(exponent) => {
            let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_quantity;

    #[test]
    fn quantity_shapes() {
        for good in [
            "1", "100m", "1.5Gi", "-2", "+3k", "1e3", "2E-2", ".5", "64Mi", "1000.0",
        ] {
            assert!(is_quantity(good), "{good} should parse");
        }
        for bad in ["", "Gi", "1.2.3", "1Gb", "lots", "1e", "--1", "1 Gi"] {
            assert!(!is_quantity(bad), "{bad} should not parse");
        }
    }
}
