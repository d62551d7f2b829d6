//! Structural schemas of custom resources (apiextensions.k8s.io/v1 `openAPIV3Schema`):
//! structural checks at CRD registration, validation and pruning of custom objects.

use std::fmt;

use regex::Regex;
use serde_json::{Map, Value};

/// A validation failure, shaped like upstream's `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.replicas` or `spec.ports[0].name`.
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`,
    /// `FieldValueTypeInvalid`, `FieldValueTooLong`, `FieldValueTooMany`.
    pub reason: &'static str,
    /// Upstream's error body without the field, e.g.
    /// `Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A CRD version's schema that passed the structural checks, with its patterns compiled.
#[derive(Debug, Clone)]
pub struct StructuralSchema {
    root: Value,
    patterns: Vec<(String, Regex)>,
}

const REASON_INVALID: &str = "FieldValueInvalid";
const REASON_REQUIRED: &str = "FieldValueRequired";
const REASON_NOT_SUPPORTED: &str = "FieldValueNotSupported";
const REASON_TYPE_INVALID: &str = "FieldValueTypeInvalid";
const REASON_TOO_LONG: &str = "FieldValueTooLong";
const REASON_TOO_MANY: &str = "FieldValueTooMany";

const KNOWN_TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];
const JUNCTORS: [&str; 4] = ["allOf", "anyOf", "oneOf", "not"];

impl StructuralSchema {
    /// Checks that `schema` is structural; errors are relative to the schema root
    /// (`properties[spec].type: Required value: …`).
    pub fn new(schema: &Value) -> Result<Self, Vec<String>> {
        Self::new_at(schema, "")
    }

    /// Like [`StructuralSchema::new`], with errors prefixed by `base_path`
    /// (e.g. `spec.versions[0].schema.openAPIV3Schema`).
    pub fn new_at(schema: &Value, base_path: &str) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut patterns = Vec::new();
        let Some(root) = schema.as_object() else {
            return Err(vec![format!(
                "{}: Invalid value: must be an object",
                display_path(base_path)
            )]);
        };
        match root.get("type").and_then(Value::as_str) {
            Some("object") => {}
            Some(other) => errors.push(format!(
                "{}: Invalid value: \"{other}\": must be object at the root",
                child(base_path, "type")
            )),
            None => errors.push(format!(
                "{}: Required value: must not be empty at the root",
                child(base_path, "type")
            )),
        }
        if let Some(metadata) = root.get("properties").and_then(|p| p.get("metadata")) {
            check_root_metadata(
                metadata,
                &format!("{}[metadata]", child(base_path, "properties")),
                &mut errors,
            );
        }
        check_node(schema, base_path, false, &mut errors, &mut patterns);
        if errors.is_empty() {
            Ok(StructuralSchema {
                root: schema.clone(),
                patterns,
            })
        } else {
            Err(errors)
        }
    }

    /// The schema JSON.
    pub fn schema(&self) -> &Value {
        &self.root
    }

    /// Validates a custom object. `apiVersion`, `kind` and `metadata` at the root are validated by
    /// the server as for any object, not here.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let Some(object) = obj.as_object() else {
            errors.push(type_error("", obj, "object"));
            return errors;
        };
        let mut root_fields = object.clone();
        for reserved in ["apiVersion", "kind", "metadata"] {
            root_fields.remove(reserved);
        }
        self.validate_node(&self.root, &Value::Object(root_fields), "", &mut errors);
        errors
    }

    /// Removes fields the schema does not declare (keeping `apiVersion`, `kind`, `metadata` at
    /// the root and in embedded resources). Returns the removed paths, e.g. `spec.foo`.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune_node(&self.root, obj, "", true, &mut pruned);
        pruned
    }

    fn validate_node(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let nullable = flag(schema, "nullable");
        if value.is_null() {
            // Without `nullable`, null is a type mismatch for any typed node.
            if !nullable && let Some(expected) = schema.get("type").and_then(Value::as_str) {
                errors.push(type_error(path, value, expected));
            }
            return;
        }
        if flag(schema, "x-kubernetes-int-or-string") {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                errors.push(type_error(path, value, "integer,string"));
                return;
            }
        } else if let Some(expected) = schema.get("type").and_then(Value::as_str)
            && !matches_type(value, expected)
        {
            errors.push(type_error(path, value, expected));
            return;
        }

        self.validate_value_constraints(schema, value, path, errors);
        self.validate_junctors(schema, value, path, errors);

        match value {
            Value::Object(object) => self.validate_object(schema, object, path, errors),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.validate_node(item_schema, item, &format!("{path}[{index}]"), errors);
                    }
                }
            }
            _ => {}
        }
    }

    fn validate_object(
        &self,
        schema: &Value,
        object: &Map<String, Value>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    errors.push(FieldError {
                        field: child(path, name),
                        reason: REASON_REQUIRED,
                        message: "Required value".into(),
                    });
                }
            }
        }
        if flag(schema, "x-kubernetes-embedded-resource") {
            for name in ["apiVersion", "kind"] {
                let present = object
                    .get(name)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if !present {
                    errors.push(FieldError {
                        field: child(path, name),
                        reason: REASON_REQUIRED,
                        message: "Required value: must not be empty".into(),
                    });
                }
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                if let Some(child_value) = object.get(name) {
                    self.validate_node(property, child_value, &child(path, name), errors);
                }
            }
        }
        if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            for (key, child_value) in object {
                self.validate_node(
                    additional,
                    child_value,
                    &format!("{}[{key}]", display_path(path)),
                    errors,
                );
            }
        }
        let count = object.len() as u64;
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && count > max
        {
            errors.push(FieldError {
                field: path.to_owned(),
                reason: REASON_TOO_MANY,
                message: format!("Too many: {count}: must have at most {max} items"),
            });
        }
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && count < min
        {
            errors.push(invalid(
                path,
                &Value::from(count),
                &format!("should have at least {min} properties"),
            ));
        }
    }

    fn validate_value_constraints(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let supported: Vec<String> = allowed.iter().map(render_value).collect();
            errors.push(FieldError {
                field: path.to_owned(),
                reason: REASON_NOT_SUPPORTED,
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    render_value(value),
                    supported.join(", ")
                ),
            });
        }
        match value {
            Value::String(text) => {
                let length = text.chars().count() as u64;
                if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                    && length > max
                {
                    errors.push(FieldError {
                        field: path.to_owned(),
                        reason: REASON_TOO_LONG,
                        message: format!("Too long: may not be more than {max} bytes"),
                    });
                }
                if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                    && length < min
                {
                    errors.push(invalid(
                        path,
                        value,
                        &format!("should be at least {min} chars long"),
                    ));
                }
                if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                    && let Some((_, regex)) =
                        self.patterns.iter().find(|(source, _)| source == pattern)
                    && !regex.is_match(text)
                {
                    errors.push(invalid(path, value, &format!("should match '{pattern}'")));
                }
                if let Some(format) = schema.get("format").and_then(Value::as_str)
                    && !matches_format(text, format)
                {
                    errors.push(invalid(path, value, &format!("must be of type {format}")));
                }
            }
            Value::Number(number) => {
                let Some(actual) = number.as_f64() else {
                    return;
                };
                if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64) {
                    let exclusive = flag(schema, "exclusiveMinimum");
                    if actual < minimum || (exclusive && actual == minimum) {
                        let relation = if exclusive {
                            "greater than"
                        } else {
                            "greater than or equal to"
                        };
                        errors.push(invalid(
                            path,
                            value,
                            &format!("should be {relation} {}", render_number(minimum)),
                        ));
                    }
                }
                if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64) {
                    let exclusive = flag(schema, "exclusiveMaximum");
                    if actual > maximum || (exclusive && actual == maximum) {
                        let relation = if exclusive {
                            "less than"
                        } else {
                            "less than or equal to"
                        };
                        errors.push(invalid(
                            path,
                            value,
                            &format!("should be {relation} {}", render_number(maximum)),
                        ));
                    }
                }
                if let Some(multiple) = schema.get("multipleOf").and_then(Value::as_f64)
                    && multiple > 0.0
                    && (actual / multiple).fract() != 0.0
                {
                    errors.push(invalid(
                        path,
                        value,
                        &format!("should be a multiple of {}", render_number(multiple)),
                    ));
                }
                if schema.get("format").and_then(Value::as_str) == Some("int32")
                    && number.as_i64().is_none_or(|n| i32::try_from(n).is_err())
                {
                    errors.push(FieldError {
                        field: path.to_owned(),
                        reason: REASON_TYPE_INVALID,
                        message: format!(
                            "Invalid value: \"integer\": {} in body must be of type int32: \"{number}\"",
                            display_path(path)
                        ),
                    });
                }
            }
            Value::Array(items) => {
                let count = items.len() as u64;
                if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                    && count > max
                {
                    errors.push(FieldError {
                        field: path.to_owned(),
                        reason: REASON_TOO_MANY,
                        message: format!("Too many: {count}: must have at most {max} items"),
                    });
                }
                if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                    && count < min
                {
                    errors.push(invalid(
                        path,
                        &Value::from(count),
                        &format!("should have at least {min} items"),
                    ));
                }
                if flag(schema, "uniqueItems") {
                    for (index, item) in items.iter().enumerate() {
                        if items[..index].contains(item) {
                            errors.push(FieldError {
                                field: format!("{path}[{index}]"),
                                reason: "FieldValueDuplicate",
                                message: format!("Duplicate value: {}", render_value(item)),
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Value validations inside `allOf`/`anyOf`/`oneOf`/`not` (structural schemas forbid types
    /// and defaults there, so only constraints remain).
    fn validate_junctors(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let check = |sub: &Value| {
            let mut found = Vec::new();
            self.validate_node(sub, value, path, &mut found);
            found
        };
        if let Some(all_of) = schema.get("allOf").and_then(Value::as_array) {
            for sub in all_of {
                errors.extend(check(sub));
            }
        }
        if let Some(any_of) = schema.get("anyOf").and_then(Value::as_array)
            && !any_of.is_empty()
        {
            let results: Vec<Vec<FieldError>> = any_of.iter().map(check).collect();
            if results.iter().all(|r| !r.is_empty()) {
                errors.push(invalid(
                    path,
                    value,
                    "must validate at least one schema (anyOf)",
                ));
                errors.extend(results.into_iter().flatten());
            }
        }
        if let Some(one_of) = schema.get("oneOf").and_then(Value::as_array)
            && !one_of.is_empty()
        {
            let matching = one_of.iter().filter(|sub| check(sub).is_empty()).count();
            if matching != 1 {
                errors.push(invalid(
                    path,
                    value,
                    "must validate one and only one schema (oneOf)",
                ));
            }
        }
        if let Some(not) = schema.get("not")
            && check(not).is_empty()
        {
            errors.push(invalid(path, value, "must not validate the schema (not)"));
        }
    }
}

fn prune_node(schema: &Value, value: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = object.keys().cloned().collect();
            for key in keys {
                let child_path = if additional.is_some() && properties.is_none() {
                    format!("{}[{key}]", display_path(path))
                } else {
                    child(path, &key)
                };
                let keep_meta = (root || embedded)
                    && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
                if keep_meta {
                    // Metadata is ObjectMeta, whose unknown fields the server's decoder drops.
                    if let Some(property) = properties.and_then(|p| p.get(&key))
                        && key != "metadata"
                        && let Some(child_value) = object.get_mut(&key)
                    {
                        prune_node(property, child_value, &child_path, false, pruned);
                    }
                    continue;
                }
                let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
                match child_schema {
                    Some(child_schema) => {
                        if let Some(child_value) = object.get_mut(&key) {
                            prune_node(child_schema, child_value, &child_path, false, pruned);
                        }
                    }
                    None if preserve => {}
                    None => {
                        object.remove(&key);
                        pruned.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    prune_node(
                        item_schema,
                        item,
                        &format!("{path}[{index}]"),
                        false,
                        pruned,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Structural checks of one schema node (recursively). `in_junctor` is set below
/// `allOf`/`anyOf`/`oneOf`/`not`, where only value validations are allowed.
fn check_node(
    schema: &Value,
    path: &str,
    in_junctor: bool,
    errors: &mut Vec<String>,
    patterns: &mut Vec<(String, Regex)>,
) {
    let Some(node) = schema.as_object() else {
        errors.push(format!(
            "{}: Invalid value: must be a schema object",
            display_path(path)
        ));
        return;
    };
    if node.contains_key("$ref") {
        errors.push(format!(
            "{}: Forbidden: $ref is not supported",
            child(path, "$ref")
        ));
    }
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let node_type = node.get("type").and_then(Value::as_str);

    if in_junctor {
        for forbidden in [
            "type",
            "default",
            "nullable",
            "description",
            "additionalProperties",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-embedded-resource",
            "x-kubernetes-int-or-string",
        ] {
            if node.contains_key(forbidden) {
                errors.push(format!(
                    "{}: Forbidden: must be empty to be structural",
                    child(path, forbidden)
                ));
            }
        }
    } else {
        match node.get("type") {
            None | Some(Value::Null) if !int_or_string && !preserve => {
                errors.push(format!(
                    "{}: Required value: must not be empty for specified {} fields",
                    child(path, "type"),
                    if node.contains_key("items") {
                        "array"
                    } else {
                        "object"
                    }
                ));
            }
            Some(Value::String(t)) if !KNOWN_TYPES.contains(&t.as_str()) => {
                errors.push(format!(
                    "{}: Unsupported value: \"{t}\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"",
                    child(path, "type")
                ));
            }
            Some(Value::String(_)) | None | Some(Value::Null) => {}
            Some(_) => errors.push(format!(
                "{}: Invalid value: must be a string",
                child(path, "type")
            )),
        }
        if int_or_string && node_type.is_some() {
            errors.push(format!(
                "{}: Invalid value: \"{}\": must be empty if x-kubernetes-int-or-string is true",
                child(path, "type"),
                node_type.unwrap_or_default()
            ));
        }
        if let Some(preserve_value) = node.get("x-kubernetes-preserve-unknown-fields")
            && preserve_value != &Value::Bool(true)
        {
            errors.push(format!(
                "{}: Invalid value: {preserve_value}: must be true or undefined",
                child(path, "x-kubernetes-preserve-unknown-fields")
            ));
        }
        if flag(schema, "x-kubernetes-embedded-resource") && node_type != Some("object") {
            errors.push(format!(
                "{}: Invalid value: \"{}\": must be object if x-kubernetes-embedded-resource is true",
                child(path, "type"),
                node_type.unwrap_or_default()
            ));
        }
        if node_type == Some("array") && !node.contains_key("items") {
            errors.push(format!(
                "{}: Required value: must be specified",
                child(path, "items")
            ));
        }
    }

    if node.contains_key("properties")
        && node
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(true) && !a.is_null())
    {
        errors.push(format!(
            "{}: Forbidden: additionalProperties and properties are mutual exclusive",
            child(path, "additionalProperties")
        ));
    }
    if node.get("additionalProperties") == Some(&Value::Bool(false)) {
        errors.push(format!(
            "{}: Forbidden: additionalProperties cannot be set to false",
            child(path, "additionalProperties")
        ));
    }
    if let Some(pattern) = node.get("pattern") {
        match pattern.as_str().map(Regex::new) {
            Some(Ok(regex)) => {
                let source = pattern.as_str().unwrap_or_default().to_owned();
                if !patterns.iter().any(|(existing, _)| existing == &source) {
                    patterns.push((source, regex));
                }
            }
            Some(Err(error)) => errors.push(format!(
                "{}: Invalid value: {pattern}: must be a valid regular expression, but isn't: {error}",
                child(path, "pattern")
            )),
            None => errors.push(format!("{}: Invalid value: must be a string", child(path, "pattern"))),
        }
    }

    if let Some(properties) = node.get("properties") {
        match properties.as_object() {
            Some(properties) => {
                for (name, property) in properties {
                    check_node(
                        property,
                        &format!("{}[{name}]", child(path, "properties")),
                        in_junctor,
                        errors,
                        patterns,
                    );
                }
            }
            None => errors.push(format!(
                "{}: Invalid value: must be an object",
                child(path, "properties")
            )),
        }
    }
    match node.get("items") {
        Some(items @ Value::Object(_)) => {
            check_node(items, &child(path, "items"), in_junctor, errors, patterns)
        }
        Some(Value::Array(_)) => errors.push(format!(
            "{}: Forbidden: items must be a schema object and not an array",
            child(path, "items")
        )),
        Some(_) => errors.push(format!(
            "{}: Invalid value: must be a schema object",
            child(path, "items")
        )),
        None => {}
    }
    if let Some(additional @ Value::Object(_)) = node.get("additionalProperties") {
        check_node(
            additional,
            &child(path, "additionalProperties"),
            in_junctor,
            errors,
            patterns,
        );
    }
    for junctor in JUNCTORS {
        match node.get(junctor) {
            Some(Value::Array(subs)) => {
                for (index, sub) in subs.iter().enumerate() {
                    check_node(
                        sub,
                        &format!("{}[{index}]", child(path, junctor)),
                        true,
                        errors,
                        patterns,
                    );
                }
            }
            Some(sub @ Value::Object(_)) => {
                check_node(sub, &child(path, junctor), true, errors, patterns)
            }
            _ => {}
        }
    }
}

/// At the root, `metadata` may only restrict `name` and `generateName` (strings).
fn check_root_metadata(metadata: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(node) = metadata.as_object() else {
        return;
    };
    for (key, value) in node {
        match key.as_str() {
            "type" if value == "object" => {}
            "description" => {}
            "properties" => {
                if let Some(properties) = value.as_object() {
                    for name in properties.keys() {
                        if name != "name" && name != "generateName" {
                            errors.push(format!(
                                "{path}.properties[{name}]: Forbidden: must not be specified; only name and generateName may be restricted"
                            ));
                        }
                    }
                }
            }
            other => errors.push(format!(
                "{path}.{other}: Forbidden: must not be specified; only name and generateName may be restricted"
            )),
        }
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The path as upstream prints it in messages: the root is `<root>`.
fn display_path(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

/// The JSON type name kube-openapi reports for a value.
fn value_type(value: &Value) -> &'static str {
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

fn matches_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => value.is_number(),
        _ => true,
    }
}

fn type_error(path: &str, value: &Value, expected: &str) -> FieldError {
    let found = value_type(value);
    FieldError {
        field: path.to_owned(),
        reason: REASON_TYPE_INVALID,
        message: format!(
            "Invalid value: \"{found}\": {} in body must be of type {expected}: \"{found}\"",
            display_path(path)
        ),
    }
}

fn invalid(path: &str, value: &Value, detail: &str) -> FieldError {
    FieldError {
        field: path.to_owned(),
        reason: REASON_INVALID,
        message: format!(
            "Invalid value: {}: {} in body {detail}",
            render_value(value),
            display_path(path)
        ),
    }
}

/// How `field.Error` prints a value: strings quoted, numbers and booleans bare, others as JSON.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => render_number(float),
            _ => number.to_string(),
        },
        other => other.to_string(),
    }
}

fn render_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        number.to_string()
    }
}

fn matches_format(text: &str, format: &str) -> bool {
    match format {
        "int32" => text.parse::<i32>().is_ok(),
        "int64" => text.parse::<i64>().is_ok(),
        "byte" => is_base64(text),
        "date" => is_date(text),
        "date-time" => is_date_time(text),
        // Other formats (email, uri, hostname, …) are not checked.
        _ => true,
    }
}

fn is_base64(text: &str) -> bool {
    let trimmed = text.trim_end_matches('=');
    text.len().is_multiple_of(4)
        && text.len() - trimmed.len() <= 2
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
        && parts[1].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
        && parts[2].parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
}

/// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_date_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once(['T', 't', ' ']) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let (clock, zone_ok) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, true)
    } else if let Some(index) = time.rfind(['+', '-']) {
        let zone = &time[index + 1..];
        let ok = zone.len() == 5 && zone.as_bytes()[2] == b':';
        (&time[..index], ok)
    } else {
        (time, false)
    };
    let clock = clock.split('.').next().unwrap_or_default();
    let fields: Vec<&str> = clock.split(':').collect();
    zone_ok
        && fields.len() == 3
        && fields
            .iter()
            .all(|f| f.len() == 2 && f.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::{is_base64, is_date_time};

    #[test]
    fn date_time_and_base64_formats() {
        assert!(is_date_time("2024-01-31T10:00:00Z"));
        assert!(is_date_time("2024-01-31T10:00:00.123+02:00"));
        assert!(!is_date_time("2024-13-31T10:00:00Z"));
        assert!(!is_date_time("2024-01-31"));
        assert!(!is_date_time("2024-01-31T10:00Z"));
        assert!(is_base64("aGVsbG8="));
        assert!(!is_base64("aGVsbG8"));
        assert!(!is_base64("a*=="));
    }
}
