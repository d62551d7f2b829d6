//! Request body decoding (JSON, YAML, protobuf) and small object helpers.

use serde_json::{Map, Value};
use timonel_api::status::ApiError;

/// Upstream's request body limit (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The media type of a request body, without parameters.
pub fn media_type(content_type: Option<&str>) -> &str {
    content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("application/json")
}

/// Decodes an object body of the given media type into JSON.
pub fn decode_object(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let media = media_type(content_type);
    let value = match media {
        "application/json" | "" | "*/*" => parse_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(body)?,
        "application/vnd.kubernetes.protobuf" => {
            timonel_proto::decode(body)
                .map_err(|e| ApiError::bad_request(format!("unable to decode protobuf body: {e}")))?
                .object
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body: expected a JSON object",
        ));
    }
    Ok(value)
}

pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding request body: couldn't get version/kind; json parse error: {e}"
        ))
    })
}

pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    // JSON is YAML: try the faster parser first.
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let yaml: serde_yaml::Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}")))?;
    serde_json::to_value(yaml)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

pub fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn str_at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(obj, |v, k| v.get(k))?.as_str()
}

/// `metadata.labels` as a map (empty when missing).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Removes `path` (a dotted JSON path such as `.spec.replicas`) and returns the value there.
pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .try_fold(obj, |v, k| v.get(k))
}

/// Sets a dotted JSON path, creating objects on the way.
pub fn set_path(obj: &mut Value, path: &str, value: Value) {
    let parts: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .collect();
    let mut cur = obj;
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("object");
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return;
        }
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_and_json_bodies_decode() {
        let v = decode_object(
            Some("application/yaml"),
            b"kind: ConfigMap\ndata:\n  a: '1'\n",
        )
        .unwrap();
        assert_eq!(v["data"]["a"], "1");
        let err = decode_object(Some("application/json"), b"{not json").unwrap_err();
        assert_eq!(err.code, 400);
        let err = decode_object(Some("text/plain"), b"x").unwrap_err();
        assert_eq!(err.code, 415);
    }

    #[test]
    fn dotted_paths() {
        let mut v = json!({});
        set_path(&mut v, ".spec.size", json!(3));
        assert_eq!(get_path(&v, ".spec.size"), Some(&json!(3)));
    }
}
