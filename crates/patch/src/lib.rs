//! JSON patch, merge patch, strategic merge patch and server-side apply field ownership.
//!
//! Everything here is a pure function over `serde_json::Value`; the API server decides how errors
//! map to HTTP statuses ([`PatchError::InvalidPatch`] is a malformed request, 400;
//! [`PatchError::CannotApply`] is a well-formed patch that does not fit the object, 422).

pub mod apply;
pub mod fieldpath;
mod strategic;
mod types;

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

pub use apply::{ApplyError, Conflict, apply, update_managed_fields};
pub use strategic::strategic_merge_patch;
pub use types::{
    FieldType, ListMeta, ListStrategy, ListType, NoTypes, OBJECT_META, TypeResolver, list_meta,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed.
    #[error("invalid patch: {0}")]
    InvalidPatch(String),
    /// The patch is well-formed but cannot be applied to this object.
    #[error("{0}")]
    CannotApply(String),
}

/// Applies an RFC 6902 JSON patch (including `test`) to a copy of `doc`.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let operations: Vec<PatchOperation> = serde_json::from_value(patch.clone())
        .map_err(|err| PatchError::InvalidPatch(err.to_string()))?;
    let mut patched = doc.clone();
    json_patch::patch(&mut patched, &operations).map_err(|err| {
        let operation = operations.get(err.operation);
        let op_name = match operation {
            Some(PatchOperation::Add(_)) => "add",
            Some(PatchOperation::Remove(_)) => "remove",
            Some(PatchOperation::Replace(_)) => "replace",
            Some(PatchOperation::Move(_)) => "move",
            Some(PatchOperation::Copy(_)) => "copy",
            Some(PatchOperation::Test(_)) => "test",
            None => "patch",
        };
        let message = match (&err.kind, operation) {
            (PatchErrorKind::TestFailed, _) => {
                format!("testing value {} failed: test failed", err.path)
            }
            (PatchErrorKind::InvalidFromPointer, Some(PatchOperation::Move(op))) => {
                format!(
                    "move operation does not apply: doc is missing from path: \"{}\"",
                    op.from
                )
            }
            (PatchErrorKind::InvalidFromPointer, Some(PatchOperation::Copy(op))) => {
                format!(
                    "copy operation does not apply: doc is missing from path: \"{}\"",
                    op.from
                )
            }
            (PatchErrorKind::CannotMoveInsideItself, _) => {
                format!(
                    "move operation does not apply: cannot move {} into one of its children",
                    err.path
                )
            }
            _ => format!(
                "{op_name} operation does not apply: doc is missing path: \"{}\"",
                err.path
            ),
        };
        PatchError::CannotApply(message)
    })?;
    Ok(patched)
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else
/// replaces.
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut merged = doc.clone();
    json_patch::merge(&mut merged, patch);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_applies_operations_in_order() {
        let doc = json!({"spec": {"replicas": 1, "paused": false}});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "remove", "path": "/spec/paused"},
            {"op": "add", "path": "/metadata", "value": {"labels": {"a": "b"}}}
        ]);
        assert_eq!(
            json_patch(&doc, &patch).unwrap(),
            json!({"spec": {"replicas": 3}, "metadata": {"labels": {"a": "b"}}})
        );
    }

    #[test]
    fn json_patch_reports_missing_path_and_failed_test() {
        let doc = json!({"spec": {}});
        let err = json_patch(
            &doc,
            &json!([{"op": "replace", "path": "/spec/foo", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::CannotApply(
                "replace operation does not apply: doc is missing path: \"/spec/foo\"".into()
            )
        );
        let err =
            json_patch(&doc, &json!([{"op": "test", "path": "/spec", "value": 1}])).unwrap_err();
        assert!(
            matches!(err, PatchError::CannotApply(ref m) if m.contains("test failed")),
            "{err}"
        );
    }

    #[test]
    fn json_patch_rejects_malformed_patches() {
        let doc = json!({});
        assert!(matches!(
            json_patch(&doc, &json!({"op": "add"})),
            Err(PatchError::InvalidPatch(_))
        ));
        assert!(matches!(
            json_patch(&doc, &json!([{"op": "frobnicate", "path": "/a"}])),
            Err(PatchError::InvalidPatch(_))
        ));
    }

    #[test]
    fn merge_patch_merges_objects_and_deletes_nulls() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [1, 2]}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"ports": [3]}});
        assert_eq!(
            merge_patch(&doc, &patch).unwrap(),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"ports": [3]}})
        );
    }
}

#[cfg(test)]
mod property_tests {
    use super::*;
    use crate::types::test_types::{DEPLOYMENT, TestTypes};
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            "[a-z$/]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![
                Just("spec".to_string()),
                Just("template".to_string()),
                Just("containers".to_string()),
                Just("env".to_string()),
                Just("name".to_string()),
                Just("metadata".to_string()),
                Just("finalizers".to_string()),
                Just("$patch".to_string()),
                Just("$retainKeys".to_string()),
                Just("$setElementOrder/containers".to_string()),
                Just("$deleteFromPrimitiveList/finalizers".to_string()),
                "[a-z]{1,4}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn json_document() -> impl Strategy<Value = Value> {
        prop::collection::vec(("[a-z]{1,4}|spec|metadata", json_value()), 0..5)
            .prop_map(|entries| Value::Object(entries.into_iter().collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn patch_functions_never_panic(doc in json_value(), patch in json_value()) {
            let _ = json_patch(&doc, &patch);
            let _ = merge_patch(&doc, &patch);
            let _ = strategic_merge_patch(&doc, &patch, DEPLOYMENT, &TestTypes);
            let _ = strategic_merge_patch(&doc, &patch, "", &NoTypes);
        }

        #[test]
        fn empty_patches_change_nothing(doc in json_document()) {
            prop_assert_eq!(merge_patch(&doc, &serde_json::json!({})).unwrap(), doc.clone());
            prop_assert_eq!(json_patch(&doc, &serde_json::json!([])).unwrap(), doc.clone());
            prop_assert_eq!(strategic_merge_patch(&doc, &serde_json::json!({}), DEPLOYMENT, &TestTypes).unwrap(), doc.clone());
        }

        #[test]
        fn apply_functions_never_panic(live in json_document(), applied in json_document(), force in any::<bool>()) {
            let _ = apply(Some(&live), &applied, "m", None, force, "v1", "2026-01-01T00:00:00Z", DEPLOYMENT, &TestTypes);
            let _ = update_managed_fields(Some(&live), &applied, "m", None, "v1", "2026-01-01T00:00:00Z", DEPLOYMENT, &TestTypes);
        }
    }
}
