//! Kubernetes strategic merge patch (upstream apimachinery `pkg/util/strategicpatch`, apply side).

use serde_json::{Map, Value};

use crate::PatchError;
use crate::types::{Child, ListStrategy, Shape, TypeResolver, Types, element_type, shape_of};

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to `doc`, whose OpenAPI definition is `root_def`.
pub fn strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    root_def: &str,
    types: &dyn TypeResolver,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::InvalidPatch(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let original = match doc {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => {
            return Err(PatchError::CannotApply(
                "the object to patch is not a JSON object".into(),
            ));
        }
    };
    let types = Types {
        resolver: types,
        root: root_def,
    };
    let merged = merge_map(original, patch, &types.root_shape(), &types, "")?;
    Ok(Value::Object(merged))
}

fn invalid(message: String) -> PatchError {
    PatchError::InvalidPatch(message)
}

fn field_path(parent: &str, key: &str) -> String {
    format!("{parent}/{key}")
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    shape: &Shape,
    types: &Types,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(PATCH_DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                let mut without_directive = patch.clone();
                without_directive.remove(PATCH_DIRECTIVE);
                return merge_map(Map::new(), &without_directive, shape, types, path);
            }
            Some("delete") => return Ok(Map::new()),
            // Upstream rejects an explicit merge in a map; merging is what happens anyway, so accept it.
            Some("merge") => {}
            _ => {
                return Err(invalid(format!(
                    "unknown patch type {directive} in map at {}",
                    display(path)
                )));
            }
        }
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(&mut original, patch, retain, path)?;
    }

    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Value::Array(to_delete) = value else {
                return Err(invalid(format!(
                    "{key} at {} must be a list",
                    display(path)
                )));
            };
            if let Some(Value::Array(items)) = original.get_mut(field) {
                items.retain(|item| !to_delete.contains(item));
            }
        }
    }

    let mut handled_by_order: Vec<&str> = Vec::new();
    for (key, value) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let Value::Array(order) = value else {
            return Err(invalid(format!(
                "{key} at {} must be a list",
                display(path)
            )));
        };
        let child = types.child(shape, field);
        let child_path = field_path(path, field);
        let live = match original.get(field) {
            Some(Value::Array(items)) => Some(items.clone()),
            Some(Value::Null) | None => None,
            Some(_) => {
                return Err(invalid(format!(
                    "{key}: {} is not a list",
                    display(&child_path)
                )));
            }
        };
        let merged = match (patch.get(field), &live) {
            (Some(Value::Array(patch_items)), _) => {
                handled_by_order.push(field);
                merge_list(
                    live.clone().unwrap_or_default(),
                    patch_items,
                    &child,
                    types,
                    &child_path,
                )?
            }
            (Some(Value::Null) | None, Some(items)) => items.clone(),
            (Some(Value::Null) | None, None) => continue,
            (Some(_), _) => {
                return Err(invalid(format!(
                    "{key}: patch value of {} is not a list",
                    display(&child_path)
                )));
            }
        };
        let merge_key = child.meta.and_then(|meta| meta.merge_key);
        validate_order_list(order, merge_key, &child_path)?;
        let ordered = normalize_order(merged, order, &live.unwrap_or_default(), merge_key);
        original.insert(field.to_string(), Value::Array(ordered));
    }

    for (key, patch_value) in patch {
        if key.starts_with('$') {
            let known = key == PATCH_DIRECTIVE
                || key == RETAIN_KEYS
                || key.starts_with(SET_ELEMENT_ORDER)
                || key.starts_with(DELETE_FROM_PRIMITIVE_LIST);
            if !known {
                return Err(invalid(format!(
                    "unknown directive {key} at {}",
                    display(path)
                )));
            }
            continue;
        }
        if handled_by_order.contains(&key.as_str()) {
            continue;
        }
        if patch_value.is_null() {
            original.remove(key);
            continue;
        }
        let child = types.child(shape, key);
        let child_path = field_path(path, key);
        let merged = match (original.remove(key), patch_value) {
            (Some(Value::Object(live)), Value::Object(patch_map)) => {
                if child
                    .meta
                    .is_some_and(|meta| meta.strategy == ListStrategy::Replace)
                {
                    Value::Object(merge_map(
                        Map::new(),
                        patch_map,
                        &shape_of(&child.ty),
                        types,
                        &child_path,
                    )?)
                } else {
                    Value::Object(merge_map(
                        live,
                        patch_map,
                        &shape_of(&child.ty),
                        types,
                        &child_path,
                    )?)
                }
            }
            (Some(Value::Array(live)), Value::Array(patch_items)) => {
                Value::Array(merge_list(live, patch_items, &child, types, &child_path)?)
            }
            (_, value) => fresh(value, &child, types, &child_path)?,
        };
        original.insert(key.clone(), merged);
    }
    Ok(original)
}

/// A patch value for a field the object does not have yet: directives are resolved against nothing.
fn fresh(value: &Value, child: &Child, types: &Types, path: &str) -> Result<Value, PatchError> {
    Ok(match value {
        Value::Object(map) => Value::Object(merge_map(
            Map::new(),
            map,
            &shape_of(&child.ty),
            types,
            path,
        )?),
        Value::Array(items) => Value::Array(merge_list(Vec::new(), items, child, types, path)?),
        scalar => scalar.clone(),
    })
}

fn display(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &str,
) -> Result<(), PatchError> {
    let Some(retain) = retain.as_array() else {
        return Err(invalid(format!(
            "$retainKeys at {} must be a list of field names",
            display(path)
        )));
    };
    let mut retained: Vec<&str> = Vec::with_capacity(retain.len());
    for name in retain {
        let Some(name) = name.as_str() else {
            return Err(invalid(format!(
                "$retainKeys at {} must be a list of field names",
                display(path)
            )));
        };
        retained.push(name);
    }
    for (key, value) in patch {
        if key.starts_with('$') || value.is_null() {
            continue;
        }
        if !retained.contains(&key.as_str()) {
            return Err(invalid(format!(
                "field {key} at {} is set by the patch but missing from $retainKeys",
                display(path)
            )));
        }
    }
    original.retain(|key, _| retained.contains(&key.as_str()));
    Ok(())
}

fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    child: &Child,
    types: &Types,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let element = Child {
        ty: element_type(&child.ty),
        meta: None,
        declared: false,
    };
    let element_shape = shape_of(&element.ty);
    let merges = child.meta.is_some_and(|meta| meta.strategy.merges_lists());
    let merge_key = child.meta.and_then(|meta| meta.merge_key);

    let mut live = original;
    let mut replace = false;
    let mut plain: Vec<&Value> = Vec::with_capacity(patch.len());
    for item in patch {
        let Some(directive) = item.as_object().and_then(|map| map.get(PATCH_DIRECTIVE)) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("replace") => replace = true,
            Some("delete") => {
                let Some(key) = merge_key else {
                    return Err(invalid(format!(
                        "delete directive in {} needs a list with a merge key",
                        display(path)
                    )));
                };
                let Some(key_value) = item.get(key) else {
                    return Err(invalid(format!(
                        "delete directive in {} has no merge key {key}",
                        display(path)
                    )));
                };
                live.retain(|existing| existing.get(key) != Some(key_value));
            }
            // Upstream rejects this; merging is the default for merging lists anyway.
            Some("merge") => {}
            _ => {
                return Err(invalid(format!(
                    "unknown patch type {directive} in list {}",
                    display(path)
                )));
            }
        }
    }

    let resolve_fresh = |item: &Value| -> Result<Value, PatchError> {
        match item {
            Value::Object(map) => Ok(Value::Object(merge_map(
                Map::new(),
                map,
                &element_shape,
                types,
                path,
            )?)),
            other => Ok(other.clone()),
        }
    };

    if replace || !merges {
        return plain.into_iter().map(resolve_fresh).collect();
    }

    let merged = match merge_key {
        Some(key) => {
            for item in &plain {
                let Some(item_map) = item.as_object() else {
                    return Err(invalid(format!(
                        "list {} with merge key {key} has a non-object element",
                        display(path)
                    )));
                };
                let Some(key_value) = item_map.get(key) else {
                    return Err(invalid(format!(
                        "element of {} does not contain merge key {key}",
                        display(path)
                    )));
                };
                match live
                    .iter()
                    .position(|existing| existing.get(key) == Some(key_value))
                {
                    Some(index) => {
                        let Value::Object(existing) = std::mem::take(&mut live[index]) else {
                            return Err(PatchError::CannotApply(format!(
                                "element of {} is not an object",
                                display(path)
                            )));
                        };
                        live[index] = Value::Object(merge_map(
                            existing,
                            item_map,
                            &element_shape,
                            types,
                            path,
                        )?);
                    }
                    None => live.push(resolve_fresh(item)?),
                }
            }
            live
        }
        None => {
            if plain.iter().any(|item| item.is_object() || item.is_array()) {
                return Err(invalid(format!(
                    "cannot merge list {} of objects without a merge key",
                    display(path)
                )));
            }
            for item in &plain {
                if !live.contains(item) {
                    live.push((*item).clone());
                }
            }
            live
        }
    };
    let order: Vec<Value> = plain.into_iter().cloned().collect();
    let server_order = merged.clone();
    Ok(normalize_order(merged, &order, &server_order, merge_key))
}

fn validate_order_list(
    order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<(), PatchError> {
    if let Some(key) = merge_key {
        for item in order {
            if item.get(key).is_none() {
                return Err(invalid(format!(
                    "$setElementOrder for {} has an element without merge key {key}",
                    display(path)
                )));
            }
        }
    }
    Ok(())
}

fn identity<'v>(item: &'v Value, merge_key: Option<&str>) -> Option<&'v Value> {
    match merge_key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

fn position_in(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    let wanted = identity(item, merge_key)?;
    list.iter()
        .position(|candidate| identity(candidate, merge_key) == Some(wanted))
}

/// Orders a merged list like upstream: items named by the patch (or `$setElementOrder`) follow that
/// order; items only on the server keep their relative server order and stay ahead of patch items
/// that came after them on the server.
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position_in(order, item, merge_key).is_some());
    from_patch.sort_by_key(|item| position_in(order, item, merge_key).unwrap_or(usize::MAX));
    server_only
        .sort_by_key(|item| position_in(server_order, item, merge_key).unwrap_or(usize::MAX));

    let mut result = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut patch_items = from_patch.into_iter().peekable();
    let mut server_items = server_only.into_iter().peekable();
    loop {
        match (server_items.peek(), patch_items.peek()) {
            (Some(server_item), Some(patch_item)) => {
                let server_first = match (
                    position_in(server_order, server_item, merge_key),
                    position_in(server_order, patch_item, merge_key),
                ) {
                    (Some(left), Some(right)) => left < right,
                    _ => false,
                };
                let next = if server_first {
                    server_items.next()
                } else {
                    patch_items.next()
                };
                result.extend(next);
            }
            (Some(_), None) => result.extend(server_items.next()),
            (None, Some(_)) => result.extend(patch_items.next()),
            (None, None) => break,
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoTypes;
    use crate::types::test_types::{DEPLOYMENT, NODE, SERVICE, TestTypes};
    use serde_json::json;

    fn smp(doc: Value, patch: Value) -> Value {
        strategic_merge_patch(&doc, &patch, DEPLOYMENT, &TestTypes).unwrap()
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
    }

    fn containers_of(doc: &Value) -> &Value {
        &doc["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn containers_merge_by_name_and_maps_merge() {
        let doc = deployment(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]));
        let out = smp(
            doc,
            json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}),
        );
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(
            containers_of(&out),
            &json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
        );
    }

    #[test]
    fn kubectl_apply_patch_removes_env_var_and_orders_containers() {
        let doc = deployment(json!([
            {"name": "b", "image": "b"},
            {"name": "a", "image": "a", "env": [{"name": "X", "value": "0"}, {"name": "Y", "value": "y"}]}
        ]));
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"a"},{"name":"b"}],
            "containers":[{"$setElementOrder/env":[{"name":"X"}],
                           "env":[{"name":"X","value":"1"},{"$patch":"delete","name":"Y"}],"name":"a"}]}}}});
        let out = smp(doc, patch);
        assert_eq!(
            containers_of(&out),
            &json!([{"name": "a", "image": "a", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "image": "b"}])
        );
    }

    #[test]
    fn set_element_order_keeps_server_only_items_in_place() {
        let doc = deployment(json!([{"name": "a"}, {"name": "s"}, {"name": "b"}]));
        let patch = json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"},{"name":"c"}],
            "containers":[{"name":"c","image":"c"}]}}}});
        let out = smp(doc, patch);
        let names: Vec<&str> = containers_of(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        // Upstream keeps "s" ahead of "b", which followed it on the server.
        assert_eq!(names, ["s", "b", "a", "c"]);
    }

    #[test]
    fn null_deletes_fields() {
        let out = smp(
            deployment(json!([])),
            json!({"spec": {"replicas": null}, "metadata": {"labels": null}}),
        );
        assert!(out["spec"].get("replicas").is_none());
        assert!(out["metadata"].get("labels").is_none());
    }

    #[test]
    fn patch_replace_in_list_replaces_whole_list() {
        let doc = deployment(json!([{"name": "a"}, {"name": "b"}]));
        let out = smp(
            doc,
            json!({"spec":{"template":{"spec":{"containers":[{"$patch":"replace"},{"name":"c"}]}}}}),
        );
        assert_eq!(containers_of(&out), &json!([{"name": "c"}]));
    }

    #[test]
    fn patch_replace_and_delete_in_maps() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}});
        let out = smp(
            doc.clone(),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
        let out = smp(
            doc,
            json!({"metadata": {"annotations": {"$patch": "delete"}}}),
        );
        assert_eq!(out["metadata"]["annotations"], json!({}));
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn explicit_merge_directive_merges() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}});
        let out = smp(
            doc,
            json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn unknown_directives_are_errors() {
        let doc = deployment(json!([{"name": "a"}]));
        for patch in [
            json!({"metadata": {"$patch": "explode"}}),
            json!({"metadata": {"$frobnicate": 1}}),
            json!({"spec":{"template":{"spec":{"containers":[{"$patch":"explode","name":"a"}]}}}}),
        ] {
            let err = strategic_merge_patch(&doc, &patch, DEPLOYMENT, &TestTypes).unwrap_err();
            assert!(matches!(err, PatchError::InvalidPatch(_)), "{patch}: {err}");
        }
    }

    #[test]
    fn finalizers_merge_as_set_and_delete_from_primitive_list() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = smp(doc.clone(), json!({"metadata": {"finalizers": ["b", "c"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = smp(
            doc,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
                                              "$setElementOrder/finalizers": ["c", "b"], "finalizers": ["c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "b"]));
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let doc = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = smp(
            doc.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let err = strategic_merge_patch(
            &doc,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            DEPLOYMENT,
            &TestTypes,
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::InvalidPatch(_)));
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let doc = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "unschedulable": false}});
        let out = strategic_merge_patch(
            &doc,
            &json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
            NODE,
            &TestTypes,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["taints"],
            json!([{"key": "b", "effect": "NoExecute"}])
        );
        let doc = deployment(json!([{"name": "a", "args": ["x", "y"]}]));
        let out = smp(
            doc,
            json!({"spec":{"template":{"spec":{"containers":[{"name":"a","args":["z"]}]}}}}),
        );
        assert_eq!(containers_of(&out)[0]["args"], json!(["z"]));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let doc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let out = strategic_merge_patch(&doc, &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 53, "protocol": "UDP"}]}}), SERVICE, &TestTypes).unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}, {"port": 443}, {"port": 53, "protocol": "UDP"}])
        );
    }

    #[test]
    fn container_ports_merge_by_container_port_and_missing_key_is_error() {
        let doc = deployment(json!([{"name": "a", "ports": [{"containerPort": 80}]}]));
        let out = smp(
            doc.clone(),
            json!({"spec":{"template":{"spec":{"containers":[{"name":"a","ports":[{"containerPort":81}]}]}}}}),
        );
        assert_eq!(
            containers_of(&out)[0]["ports"],
            json!([{"containerPort": 80}, {"containerPort": 81}])
        );
        let err = strategic_merge_patch(
            &doc,
            &json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}),
            DEPLOYMENT,
            &TestTypes,
        )
        .unwrap_err();
        assert!(
            matches!(err, PatchError::InvalidPatch(ref m) if m.contains("merge key name")),
            "{err}"
        );
    }

    #[test]
    fn directives_in_new_fields_are_resolved() {
        let doc = json!({"spec": {}});
        let out = smp(
            doc,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": null}, {"$patch": "delete", "name": "Y"}]}]}}}}),
        );
        assert_eq!(
            containers_of(&out),
            &json!([{"name": "a", "env": [{"name": "X"}]}])
        );
    }

    #[test]
    fn rollout_restart_and_drain_patches() {
        let doc = deployment(json!([{"name": "a"}]));
        let out = smp(
            doc,
            json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2026-01-01T00:00:00Z"
        );
        let node = json!({"kind": "Node", "spec": {"podCIDR": "10.0.0.0/24"}});
        let out = strategic_merge_patch(
            &node,
            &json!({"spec":{"unschedulable":true}}),
            NODE,
            &TestTypes,
        )
        .unwrap();
        assert_eq!(
            out["spec"],
            json!({"podCIDR": "10.0.0.0/24", "unschedulable": true})
        );
    }

    #[test]
    fn no_types_merges_maps_and_replaces_lists_but_knows_object_meta() {
        let doc =
            json!({"metadata": {"finalizers": ["a"]}, "spec": {"items": [1, 2], "m": {"x": 1}}});
        let out = strategic_merge_patch(
            &doc,
            &json!({"metadata": {"finalizers": ["b"]}, "spec": {"items": [3], "m": {"y": 2}}}),
            "example.com.v1.Widget",
            &NoTypes,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"items": [3], "m": {"x": 1, "y": 2}}})
        );
    }
}
