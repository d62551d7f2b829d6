//! Decoding of Kubernetes protobuf request bodies into JSON.
//!
//! client-go typed clients (kubectl, helm) send built-in kinds as
//! `Content-Type: application/vnd.kubernetes.protobuf`: the magic bytes `k8s\0`, then a
//! `runtime.Unknown` envelope `{1: TypeMeta{1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding,
//! 4: contentType}` whose `raw` holds the object's `generated.proto` message. [`decode`] turns such
//! a body into the object's Kubernetes JSON form, so the rest of the API server only sees JSON.
//!
//! The walk is driven by static tables (`src/generated.rs`) giving, for every message reachable
//! from a built-in kind, its field tags, wire types and JSON names. They are generated from the
//! `k8s-pb` 0.9 sources (tags, types) and the `k8s-openapi` 0.29 `v1_35` sources (JSON names):
//!
//! ```text
//! cargo fetch   # makes sure both crates are in ~/.cargo/registry/src
//! python3 crates/proto/gen/gen_tables.py
//! ```
//!
//! The generator fails when a proto field has no JSON name, so a version bump cannot silently
//! drop fields. Rerun it after bumping either crate and check the result in.
//!
//! JSON conventions follow Go's `encoding/json` output of the same object: `Time` and `MicroTime`
//! become RFC 3339 strings, `Duration` a Go duration string, `Quantity` a string, `IntOrString` a
//! number or a string, raw-JSON holders (`RawExtension`, `FieldsV1`, CRD `JSON`) the embedded JSON,
//! `bytes` base64 strings. Fields absent on the wire are absent; so are empty strings of optional
//! fields, because Go writes its non-pointer strings even when empty while JSON omits them.
//! Unknown tags are skipped for forward compatibility.

#[rustfmt::skip]
mod generated;
mod tables;
mod wire;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::generated::{KINDS, MESSAGES, UNVERSIONED_KINDS};
use crate::tables::{FieldDef, FieldKind, MapValue, MessageDef, ScalarKind, Shape};
use crate::wire::{Reader, WireType, WireValue};

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Nesting limit for messages, so hostile input cannot exhaust the stack (real objects, even deep
/// CRD schemas, stay far below it).
const MAX_DEPTH: usize = 100;

/// A decoded request body.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub api_version: String,
    pub kind: String,
    /// The object in its JSON form, with `apiVersion` and `kind` set.
    pub object: Value,
}

/// Why a body could not be decoded. All variants describe bad client input.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("protobuf body does not start with the magic bytes \"k8s\\x00\"")]
    MissingMagic,
    #[error("truncated protobuf: {0}")]
    Truncated(&'static str),
    #[error("malformed protobuf: {0}")]
    Malformed(String),
    #[error("protobuf envelope has no {0}")]
    MissingTypeMeta(&'static str),
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedEncoding(String),
    #[error("no protobuf schema for apiVersion {api_version:?}, kind {kind:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("protobuf message nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("invalid embedded JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    #[error("field {path}: {source}")]
    InField {
        path: String,
        #[source]
        source: Box<ProtoError>,
    },
}

impl ProtoError {
    /// True when the body is well-formed but of a kind this crate has no schema for; servers
    /// answer those with 415 Unsupported Media Type rather than 400.
    pub fn is_unknown_kind(&self) -> bool {
        matches!(self, ProtoError::UnknownKind { .. })
    }

    fn in_field(self, name: &str) -> ProtoError {
        match self {
            ProtoError::InField { path, source } => ProtoError::InField {
                path: format!("{name}.{path}"),
                source,
            },
            other => ProtoError::InField {
                path: name.to_owned(),
                source: Box::new(other),
            },
        }
    }
}

/// Decodes a `application/vnd.kubernetes.protobuf` body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Decoded, ProtoError> {
    decode_at_depth(body, 0)
}

/// `depth` counts enclosing messages when a body is embedded in a RawExtension.
fn decode_at_depth(body: &[u8], depth: usize) -> Result<Decoded, ProtoError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtoError::MissingMagic)?;
    let unknown = Envelope::parse(envelope)?;
    if !unknown.content_encoding.is_empty() {
        return Err(ProtoError::UnsupportedEncoding(unknown.content_encoding));
    }
    if unknown.api_version.is_empty() {
        return Err(ProtoError::MissingTypeMeta("apiVersion"));
    }
    if unknown.kind.is_empty() {
        return Err(ProtoError::MissingTypeMeta("kind"));
    }
    let message = message_for_kind(&unknown.api_version, &unknown.kind).ok_or_else(|| {
        ProtoError::UnknownKind {
            api_version: unknown.api_version.clone(),
            kind: unknown.kind.clone(),
        }
    })?;
    let mut object = Map::new();
    object.insert(
        "apiVersion".into(),
        Value::String(unknown.api_version.clone()),
    );
    object.insert("kind".into(), Value::String(unknown.kind.clone()));
    let Shape::Object(fields) = &message.shape else {
        // Kinds are always plain objects; the generator never maps a kind to a special shape.
        return Err(ProtoError::Malformed(format!(
            "kind {} is not an object message",
            unknown.kind
        )));
    };
    decode_object_into(unknown.raw, fields, &mut object, depth + 1)?;
    Ok(Decoded {
        api_version: unknown.api_version,
        kind: unknown.kind,
        object: Value::Object(object),
    })
}

/// Returns true when the (apiVersion, kind) pair has a protobuf schema.
pub fn supports_kind(api_version: &str, kind: &str) -> bool {
    message_for_kind(api_version, kind).is_some()
}

fn message_for_kind(api_version: &str, kind: &str) -> Option<&'static MessageDef> {
    let index = KINDS
        .binary_search_by(|(v, k, _)| (*v, *k).cmp(&(api_version, kind)))
        .ok()
        .map(|position| KINDS[position].2)
        .or_else(|| {
            UNVERSIONED_KINDS
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, index)| *index)
        })?;
    MESSAGES.get(index)
}

/// The `runtime.Unknown` wrapper.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, ProtoError> {
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
        };
        let mut reader = Reader::new(bytes);
        while !reader.is_empty() {
            match reader.read_field()? {
                (1, WireValue::Bytes(type_meta)) => {
                    let mut inner = Reader::new(type_meta);
                    while !inner.is_empty() {
                        match inner.read_field()? {
                            (1, WireValue::Bytes(v)) => envelope.api_version = utf8(v)?.to_owned(),
                            (2, WireValue::Bytes(k)) => envelope.kind = utf8(k)?.to_owned(),
                            _ => {}
                        }
                    }
                }
                (2, WireValue::Bytes(raw)) => envelope.raw = raw,
                (3, WireValue::Bytes(encoding)) => {
                    envelope.content_encoding = utf8(encoding)?.to_owned()
                }
                // contentType (4) and unknown fields carry nothing we need.
                _ => {}
            }
        }
        Ok(envelope)
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, ProtoError> {
    std::str::from_utf8(bytes)
        .map_err(|_| ProtoError::Malformed("string is not valid UTF-8".into()))
}

fn message_def(index: usize) -> Result<&'static MessageDef, ProtoError> {
    MESSAGES
        .get(index)
        .ok_or_else(|| ProtoError::Malformed(format!("internal: no message table {index}")))
}

/// Decodes a message of table `index`. `None` means "omit the field" (e.g. a zero Time).
fn decode_message(bytes: &[u8], index: usize, depth: usize) -> Result<Option<Value>, ProtoError> {
    if depth >= MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    let message = message_def(index)?;
    if let Shape::Object(fields) = &message.shape {
        let mut object = Map::new();
        decode_object_into(bytes, fields, &mut object, depth + 1)?;
        return Ok(Some(Value::Object(object)));
    }
    decode_special(bytes, &message.shape, depth)
}

/// The apimachinery types whose JSON form is not an object of their fields. Kept out of
/// `decode_message` so the recursive path through plain objects uses little stack.
#[inline(never)]
fn decode_special(bytes: &[u8], shape: &Shape, depth: usize) -> Result<Option<Value>, ProtoError> {
    match shape {
        Shape::Object(_) => Err(ProtoError::Malformed(
            "internal: object passed as special".into(),
        )),
        Shape::Time => Ok(decode_timestamp(bytes)?
            .map(|t| Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))),
        Shape::MicroTime => Ok(decode_timestamp(bytes)?
            .map(|t| Value::String(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()))),
        Shape::Duration => {
            let mut nanos = 0i64;
            for_each_field(bytes, |tag, value| {
                if tag == 1 {
                    nanos = varint(&value, "duration")? as i64;
                }
                Ok(())
            })?;
            Ok(Some(Value::String(go_duration(nanos))))
        }
        Shape::Quantity => {
            // A zero Quantity (nothing on the wire) serialises as "0" in Go.
            let mut quantity = String::from("0");
            for_each_field(bytes, |tag, value| {
                if tag == 1 {
                    quantity = string(&value, "string")?.to_owned();
                }
                Ok(())
            })?;
            Ok(Some(Value::String(quantity)))
        }
        Shape::IntOrString => {
            let (mut is_string, mut int_val, mut str_val) = (false, 0i32, String::new());
            for_each_field(bytes, |tag, value| {
                match tag {
                    1 => is_string = varint(&value, "type")? == 1,
                    2 => int_val = varint(&value, "intVal")? as i32,
                    3 => str_val = string(&value, "strVal")?.to_owned(),
                    _ => {}
                }
                Ok(())
            })?;
            Ok(Some(if is_string {
                Value::String(str_val)
            } else {
                Value::Number(int_val.into())
            }))
        }
        Shape::RawJson => {
            let mut raw: &[u8] = &[];
            for_each_field(bytes, |tag, value| {
                if tag == 1 {
                    raw = length_delimited(&value, "raw")?;
                }
                Ok(())
            })?;
            decode_raw(raw, depth)
        }
        Shape::StringList => {
            let mut items = Vec::new();
            for_each_field(bytes, |tag, value| {
                if tag == 1 {
                    items.push(Value::String(string(&value, "items")?.to_owned()));
                }
                Ok(())
            })?;
            Ok(Some(Value::Array(items)))
        }
        Shape::SchemaOrArray(schema) => {
            let (mut single, mut many) = (None, Vec::new());
            for_each_field(bytes, |tag, value| {
                match tag {
                    1 => {
                        single =
                            decode_message(length_delimited(&value, "schema")?, *schema, depth + 1)?
                    }
                    2 => many.extend(decode_message(
                        length_delimited(&value, "JSONSchemas")?,
                        *schema,
                        depth + 1,
                    )?),
                    _ => {}
                }
                Ok(())
            })?;
            // Go marshals the array form whenever it holds schemas.
            Ok(if many.is_empty() {
                single
            } else {
                Some(Value::Array(many))
            })
        }
        Shape::SchemaOrBool(schema) => {
            let (mut allows, mut single) = (false, None);
            for_each_field(bytes, |tag, value| {
                match tag {
                    1 => allows = varint(&value, "allows")? != 0,
                    2 => {
                        single =
                            decode_message(length_delimited(&value, "schema")?, *schema, depth + 1)?
                    }
                    _ => {}
                }
                Ok(())
            })?;
            Ok(Some(single.unwrap_or(Value::Bool(allows))))
        }
        Shape::SchemaOrStringArray(schema) => {
            let (mut single, mut strings) = (None, Vec::new());
            for_each_field(bytes, |tag, value| {
                match tag {
                    1 => {
                        single =
                            decode_message(length_delimited(&value, "schema")?, *schema, depth + 1)?
                    }
                    2 => strings.push(Value::String(string(&value, "property")?.to_owned())),
                    _ => {}
                }
                Ok(())
            })?;
            Ok(if strings.is_empty() {
                single
            } else {
                Some(Value::Array(strings))
            })
        }
    }
}

/// Embedded raw JSON; an embedded protobuf object (magic prefix) is decoded recursively.
fn decode_raw(raw: &[u8], depth: usize) -> Result<Option<Value>, ProtoError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.starts_with(MAGIC) {
        return decode_at_depth(raw, depth + 1).map(|decoded| Some(decoded.object));
    }
    Ok(Some(serde_json::from_slice(raw)?))
}

fn for_each_field<'a>(
    bytes: &'a [u8],
    mut visit: impl FnMut(u32, WireValue<'a>) -> Result<(), ProtoError>,
) -> Result<(), ProtoError> {
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, value) = reader.read_field()?;
        visit(tag, value)?;
    }
    Ok(())
}

fn wrong_wire_type(field: &str, expected: WireType, got: WireType) -> ProtoError {
    ProtoError::Malformed(format!(
        "field {field}: expected wire type {}, got {}",
        expected.name(),
        got.name()
    ))
}

fn varint(value: &WireValue<'_>, field: &str) -> Result<u64, ProtoError> {
    match value {
        WireValue::Varint(v) => Ok(*v),
        other => Err(wrong_wire_type(field, WireType::Varint, other.wire_type())),
    }
}

fn length_delimited<'a>(value: &WireValue<'a>, field: &str) -> Result<&'a [u8], ProtoError> {
    match value {
        WireValue::Bytes(bytes) => Ok(bytes),
        other => Err(wrong_wire_type(
            field,
            WireType::LengthDelimited,
            other.wire_type(),
        )),
    }
}

fn string<'a>(value: &WireValue<'a>, field: &str) -> Result<&'a str, ProtoError> {
    utf8(length_delimited(value, field)?)
}

fn decode_timestamp(bytes: &[u8]) -> Result<Option<chrono::DateTime<chrono::Utc>>, ProtoError> {
    let (mut seconds, mut nanos) = (None, 0u32);
    for_each_field(bytes, |tag, value| {
        match tag {
            1 => seconds = Some(varint(&value, "seconds")? as i64),
            2 => nanos = u32::try_from(varint(&value, "nanos")? as i32).unwrap_or(0),
            _ => {}
        }
        Ok(())
    })?;
    // Go encodes the zero time as an empty message; its JSON form is null, i.e. unset.
    if seconds.is_none() && nanos == 0 {
        return Ok(None);
    }
    chrono::DateTime::from_timestamp(seconds.unwrap_or(0), nanos)
        .map(Some)
        .ok_or_else(|| ProtoError::Malformed("timestamp out of range".into()))
}

/// Formats nanoseconds like Go's `time.Duration.String` ("1h2m3.5s", "1.5ms", "0s").
fn go_duration(nanos: i64) -> String {
    let negative = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second durations use the largest fitting unit with a fraction.
        let (unit, scale) = match u {
            0 => return "0s".into(),
            1..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
    } else {
        let seconds_part = fraction(u % 60_000_000_000, 1_000_000_000);
        u /= 60_000_000_000;
        if u > 0 {
            let minutes = u % 60;
            let hours = u / 60;
            if hours > 0 {
                out.push_str(&format!("{hours}h"));
            }
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&seconds_part);
        out.push('s');
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// `value / scale` with the fractional digits Go prints (trailing zeros trimmed).
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Decodes the fields of an object message into `object`.
fn decode_object_into(
    bytes: &[u8],
    fields: &'static [FieldDef],
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ProtoError> {
    if depth >= MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, value) = reader.read_field()?;
        let Some(field) = fields.iter().find(|f| f.tag == tag) else {
            continue; // A field newer than our tables.
        };
        decode_field(field, value, object, depth).map_err(|e| {
            let name = if field.inline { "(inline)" } else { field.json };
            e.in_field(name)
        })?;
    }
    Ok(())
}

fn decode_field(
    field: &'static FieldDef,
    value: WireValue<'_>,
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ProtoError> {
    match field.kind {
        FieldKind::Message(index) if field.inline => {
            let message = message_def(index)?;
            let Shape::Object(inner) = &message.shape else {
                return Err(ProtoError::Malformed(format!(
                    "internal: inline {} is not an object",
                    message.name
                )));
            };
            decode_object_into(
                length_delimited(&value, "inline")?,
                inner,
                object,
                depth + 1,
            )
        }
        FieldKind::Message(index) => {
            let decoded = decode_message(length_delimited(&value, field.json)?, index, depth)?;
            match decoded {
                Some(v) if field.repeated => push(object, field.json, v),
                Some(v) => {
                    object.insert(field.json.to_owned(), v);
                }
                None => {}
            }
            Ok(())
        }
        FieldKind::Scalar(kind) if field.repeated => {
            match (&value, kind) {
                // Packed encoding of numeric arrays (either encoding is valid for proto2).
                (
                    WireValue::Bytes(packed),
                    ScalarKind::Int32 | ScalarKind::Int64 | ScalarKind::Bool | ScalarKind::Double,
                ) => {
                    let mut reader = Reader::new(packed);
                    while !reader.is_empty() {
                        let element = if kind == ScalarKind::Double {
                            WireValue::Fixed64(reader.read_fixed64()?)
                        } else {
                            WireValue::Varint(reader.read_varint()?)
                        };
                        push(object, field.json, scalar(kind, &element, field.json)?);
                    }
                    Ok(())
                }
                _ => {
                    push(object, field.json, scalar(kind, &value, field.json)?);
                    Ok(())
                }
            }
        }
        FieldKind::Scalar(kind) => {
            let decoded = scalar(kind, &value, field.json)?;
            let empty = matches!(&decoded, Value::String(s) if s.is_empty());
            if empty && field.omit_empty_string {
                object.remove(field.json);
            } else {
                object.insert(field.json.to_owned(), decoded);
            }
            Ok(())
        }
        FieldKind::Map(map_value) => {
            let (key, entry) =
                decode_map_entry(length_delimited(&value, field.json)?, map_value, depth)?;
            let map = object
                .entry(field.json.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let (Value::Object(map), Some(entry)) = (map, entry) {
                map.insert(key, entry);
            }
            Ok(())
        }
    }
}

fn decode_map_entry(
    bytes: &[u8],
    map_value: MapValue,
    depth: usize,
) -> Result<(String, Option<Value>), ProtoError> {
    let mut key = String::new();
    let mut entry = None;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        match reader.read_field()? {
            (1, value) => key = string(&value, "key")?.to_owned(),
            (2, value) => {
                entry = match map_value {
                    MapValue::Scalar(kind) => Some(scalar(kind, &value, "value")?),
                    MapValue::Message(index) => {
                        decode_message(length_delimited(&value, "value")?, index, depth + 1)?
                    }
                }
            }
            _ => {}
        }
    }
    // A missing value is the zero value of its type (protobuf map semantics).
    let entry = match (entry, map_value) {
        (Some(v), _) => Some(v),
        (None, MapValue::Scalar(kind)) => Some(zero_value(kind)),
        (None, MapValue::Message(index)) => decode_message(&[], index, depth + 1)?,
    };
    Ok((key, entry))
}

fn zero_value(kind: ScalarKind) -> Value {
    match kind {
        ScalarKind::String | ScalarKind::Bytes => Value::String(String::new()),
        ScalarKind::Int32 | ScalarKind::Int64 => Value::Number(0.into()),
        ScalarKind::Bool => Value::Bool(false),
        ScalarKind::Double => Value::Number(Number::from(0)),
    }
}

fn push(object: &mut Map<String, Value>, name: &str, value: Value) {
    match object
        .entry(name.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(items) => items.push(value),
        slot => *slot = Value::Array(vec![value]),
    }
}

fn scalar(kind: ScalarKind, value: &WireValue<'_>, field: &str) -> Result<Value, ProtoError> {
    Ok(match kind {
        ScalarKind::String => Value::String(string(value, field)?.to_owned()),
        ScalarKind::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(length_delimited(value, field)?),
        ),
        // Varints carry negative int32s sign-extended to 64 bits.
        ScalarKind::Int32 => Value::Number((varint(value, field)? as i64 as i32).into()),
        ScalarKind::Int64 => Value::Number((varint(value, field)? as i64).into()),
        ScalarKind::Bool => Value::Bool(varint(value, field)? != 0),
        ScalarKind::Double => {
            let bits = match value {
                WireValue::Fixed64(bits) => *bits,
                other => return Err(wrong_wire_type(field, WireType::Fixed64, other.wire_type())),
            };
            let number = Number::from_f64(f64::from_bits(bits)).ok_or_else(|| {
                ProtoError::Malformed(format!("field {field}: non-finite number"))
            })?;
            Value::Number(number)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_format_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-5_000_000_000, "-5s"),
        ];
        for (nanos, expected) in cases {
            assert_eq!(go_duration(nanos), expected, "{nanos}ns");
        }
    }
}
