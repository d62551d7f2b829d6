//! Server-side apply and `managedFields` bookkeeping, after upstream structured-merge-diff.

use serde_json::{Map, Value, json};

use crate::fieldpath::{
    FieldSet, FieldSetOptions, Path, PathElement, field_set, item_key, list_type_of, lookup,
    path_to_string, remove_path,
};
use crate::types::{
    Child, FieldType, ListType, Shape, TypeResolver, Types, element_type, is_atomic_struct,
    shape_of,
};

/// A field that another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: Option<String>,
    /// The field as upstream prints it, e.g. `.spec.replicas`.
    pub field: String,
}

impl Conflict {
    /// The cause message upstream puts in the 409: `conflict with "kubectl" using apps/v1`.
    pub fn message(&self) -> String {
        let mut who = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            who = format!("{who} with subresource {subresource:?}");
        }
        if self.operation == "Update" {
            format!("conflict with {who} using {}", self.api_version)
        } else {
            format!("conflict with {who}")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("Apply failed with {} conflict(s): {}", .0.len(), .0.iter().map(|c| format!("{}: {}", c.message(), c.field)).collect::<Vec<_>>().join("; "))]
    Conflicts(Vec<Conflict>),
    #[error("invalid apply configuration: {0}")]
    Invalid(String),
}

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

#[derive(Debug, Clone)]
struct ManagerEntry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    set: FieldSet,
}

impl ManagerEntry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), json!(subresource));
        }
        Value::Object(entry)
    }
}

/// Metadata fields upstream never tracks ownership of.
fn strip_untracked(set: &mut FieldSet) {
    const META: &[&str] = &[
        "name",
        "namespace",
        "generateName",
        "creationTimestamp",
        "selfLink",
        "uid",
        "generation",
        "managedFields",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ];
    set.retain(|path| match path.as_slice() {
        [PathElement::Field(top)] => !matches!(top.as_str(), "apiVersion" | "kind" | "metadata"),
        [PathElement::Field(top), PathElement::Field(field), ..] if top == "metadata" => {
            !META.contains(&field.as_str())
        }
        _ => true,
    });
}

fn tracked_set(value: &Value, types: &Types, options: FieldSetOptions) -> FieldSet {
    let mut set = field_set(value, types, options);
    strip_untracked(&mut set);
    set
}

/// Reads `metadata.managedFields`; entries that cannot be decoded are dropped, as upstream resets
/// unreadable managed fields rather than failing the request.
fn decode_managers(object: &Value) -> Vec<ManagerEntry> {
    let Some(Value::Array(entries)) = object.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_string);
            let set =
                FieldSet::from_fields_v1(entry.get("fieldsV1").unwrap_or(&Value::Null)).ok()?;
            Some(ManagerEntry {
                manager: text("manager")?,
                operation: text("operation")?,
                api_version: text("apiVersion").unwrap_or_default(),
                subresource: text("subresource").filter(|s| !s.is_empty()),
                time: text("time"),
                set,
            })
        })
        .collect()
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.shift_remove("managedFields");
    }
    object
}

fn write_managers(object: &mut Value, mut managers: Vec<ManagerEntry>) {
    managers.retain(|entry| !entry.set.is_empty());
    managers.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Value::Object(root) = object else { return };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(metadata) = metadata else {
        return;
    };
    if managers.is_empty() {
        metadata.shift_remove("managedFields");
    } else {
        metadata.insert(
            "managedFields".into(),
            Value::Array(managers.iter().map(ManagerEntry::to_json).collect()),
        );
    }
}

/// What changed between two versions of an object, as sets of paths.
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

fn compare(old: &Value, new: &Value, types: &Types) -> Comparison {
    let options = FieldSetOptions {
        map_containers: true,
    };
    let old_set = tracked_set(old, types, options);
    let new_set = tracked_set(new, types, options);
    let mut modified = FieldSet::new();
    for path in old_set.intersection(&new_set).iter() {
        // Members with members below them change through those members.
        if new_set.has_descendants(path) || old_set.has_descendants(path) {
            continue;
        }
        if lookup(old, path) != lookup(new, path) {
            modified.insert(path.clone());
        }
    }
    Comparison {
        added: new_set.difference(&old_set),
        modified,
        removed: old_set.difference(&new_set),
    }
}

/// Server-side apply of `applied` by `manager` onto `live` (None when creating). Returns the new
/// object with updated `metadata.managedFields`.
///
/// The caller handles what is specific to the resource: resetting `status` on the main resource,
/// defaulting and validation.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    api_version: &str,
    now: &str,
    root_def: &str,
    types: &dyn TypeResolver,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid(
            "the applied configuration must be a JSON object".into(),
        ));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let types = Types {
        resolver: types,
        root: root_def,
    };
    let live_object = live
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let mut managers = live.map(decode_managers).unwrap_or_default();

    let mut merged = live_object.clone();
    merge_applied(
        &mut merged,
        applied,
        &Child {
            ty: FieldType::Unknown,
            meta: None,
            declared: true,
        },
        &types,
        true,
    );

    let applied_set = tracked_set(applied, &types, FieldSetOptions::default());
    let previous_index = managers
        .iter()
        .position(|entry| entry.is(manager, APPLY, subresource));
    let previous_set = previous_index
        .map(|index| managers[index].set.clone())
        .unwrap_or_default();

    // Fields this manager applied before and no longer applies go away unless someone else owns them.
    let mut still_owned = applied_set.clone();
    for (index, entry) in managers.iter().enumerate() {
        if Some(index) != previous_index {
            still_owned = still_owned.union(&entry.set);
        }
    }
    let abandoned: Vec<Path> = previous_set
        .iter()
        .filter(|path| !still_owned.covers(path))
        .cloned()
        .collect();
    for path in &abandoned {
        if remove_path(&mut merged, path) {
            remove_empty_ancestors(&mut merged, path, &still_owned);
        }
    }

    let comparison = compare(&live_object, &merged, &types);
    let changed = comparison.added.union(&comparison.modified);
    let mut conflicts = Vec::new();
    for (index, entry) in managers.iter().enumerate() {
        if Some(index) == previous_index {
            continue;
        }
        for path in entry.set.intersection(&changed).iter() {
            conflicts.push(Conflict {
                manager: entry.manager.clone(),
                operation: entry.operation.clone(),
                api_version: entry.api_version.clone(),
                subresource: entry.subresource.clone(),
                field: path_to_string(path),
            });
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (index, entry) in managers.iter_mut().enumerate() {
        if Some(index) != previous_index {
            entry.set = entry
                .set
                .difference(&changed)
                .difference(&comparison.removed);
        }
    }
    let entry = ManagerEntry {
        manager: manager.to_string(),
        operation: APPLY.to_string(),
        api_version: api_version.to_string(),
        subresource: subresource.map(str::to_string),
        time: Some(now.to_string()),
        set: applied_set,
    };
    match previous_index {
        Some(index) => managers[index] = entry,
        None => managers.push(entry),
    }
    write_managers(&mut merged, managers);
    Ok(merged)
}

/// Records an ordinary create/update/patch by `manager` (operation `Update`): the fields it set or
/// changed become its own and are taken from every other manager. Returns `new` with updated
/// `metadata.managedFields`.
#[allow(clippy::too_many_arguments)]
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
    root_def: &str,
    types: &dyn TypeResolver,
) -> Value {
    let types = Types {
        resolver: types,
        root: root_def,
    };
    // Like upstream: managedFields sent by the client win (so clients can migrate or reset them);
    // `[{}]` resets them; otherwise the stored ones carry over.
    let requested = new.pointer("/metadata/managedFields");
    let reset = matches!(requested, Some(Value::Array(entries)) if entries.len() == 1 && entries[0] == json!({}));
    let mut managers = if reset {
        Vec::new()
    } else {
        let from_request = decode_managers(new);
        if from_request.is_empty() {
            old.map(decode_managers).unwrap_or_default()
        } else {
            from_request
        }
    };
    let old_object = old
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let mut result = without_managed_fields(new);

    let comparison = compare(&old_object, &result, &types);
    let changed = comparison.added.union(&comparison.modified);
    let index = managers
        .iter()
        .position(|entry| entry.is(manager, UPDATE, subresource));
    for (position, entry) in managers.iter_mut().enumerate() {
        if Some(position) != index {
            entry.set = entry
                .set
                .difference(&changed)
                .difference(&comparison.removed);
        }
    }
    match index {
        Some(index) => {
            let entry = &mut managers[index];
            let set = entry.set.difference(&comparison.removed).union(&changed);
            if set != entry.set {
                entry.time = Some(now.to_string());
            }
            entry.set = set;
            entry.api_version = api_version.to_string();
        }
        None => managers.push(ManagerEntry {
            manager: manager.to_string(),
            operation: UPDATE.to_string(),
            api_version: api_version.to_string(),
            subresource: subresource.map(str::to_string),
            time: Some(now.to_string()),
            set: changed,
        }),
    }
    write_managers(&mut result, managers);
    result
}

/// After pruning, drops containers the pruning emptied unless someone owns them.
fn remove_empty_ancestors(object: &mut Value, path: &[PathElement], owned: &FieldSet) {
    for depth in (1..path.len()).rev() {
        let ancestor = &path[..depth];
        let empty = match lookup(object, ancestor) {
            Some(Value::Object(map)) => map.is_empty(),
            Some(Value::Array(items)) => items.is_empty(),
            _ => false,
        };
        if !empty || owned.contains(ancestor) {
            return;
        }
        remove_path(object, ancestor);
    }
}

/// Merges an applied configuration into the live object: maps merge, keyed lists merge by key,
/// sets union, everything else is replaced. `null` removes.
fn merge_applied(live: &mut Value, applied: &Value, child: &Child, types: &Types, is_root: bool) {
    match (live, applied) {
        (Value::Object(live_map), Value::Object(applied_map)) if !is_atomic_struct(&child.ty) => {
            let shape = if is_root {
                types.root_shape()
            } else {
                shape_of(&child.ty)
            };
            merge_objects(live_map, applied_map, &shape, types);
        }
        (Value::Array(live_items), Value::Array(applied_items)) => {
            match list_type_of(child, applied_items) {
                ListType::Map(keys)
                    if live_items.iter().all(|item| item_key(item, keys).is_some()) =>
                {
                    let element = Child {
                        ty: element_type(&child.ty),
                        meta: None,
                        declared: false,
                    };
                    for item in applied_items {
                        let key = item_key(item, keys);
                        match live_items
                            .iter_mut()
                            .find(|existing| item_key(existing, keys) == key)
                        {
                            Some(existing) => merge_applied(existing, item, &element, types, false),
                            None => live_items.push(item.clone()),
                        }
                    }
                }
                ListType::Set
                    if live_items
                        .iter()
                        .all(|item| !item.is_object() && !item.is_array()) =>
                {
                    for item in applied_items {
                        if !live_items.contains(item) {
                            live_items.push(item.clone());
                        }
                    }
                }
                _ => *live_items = applied_items.clone(),
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

fn merge_objects(
    live: &mut Map<String, Value>,
    applied: &Map<String, Value>,
    shape: &Shape,
    types: &Types,
) {
    for (key, value) in applied {
        if value.is_null() {
            live.shift_remove(key);
            continue;
        }
        let child = types.child(shape, key);
        match live.get_mut(key) {
            Some(existing) => merge_applied(existing, value, &child, types, false),
            None => {
                live.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_types::{DEPLOYMENT, TestTypes};

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:01:00Z";

    fn manifest(replicas: i64, labels: Value, containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": labels},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}})
    }

    fn ssa(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApplyError> {
        apply(
            live, applied, manager, None, force, "apps/v1", T0, DEPLOYMENT, &TestTypes,
        )
    }

    fn entry<'v>(object: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
        object["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
    }

    #[test]
    fn create_via_apply_records_apply_entry() {
        let applied = manifest(
            2,
            json!({"app": "web"}),
            json!([{"name": "a", "image": "a:1"}]),
        );
        let created = ssa(None, &applied, "kubectl", false).unwrap();
        assert_eq!(created["spec"]["replicas"], 2);
        let entry = entry(&created, "kubectl", "Apply").unwrap();
        assert_eq!(entry["apiVersion"], "apps/v1");
        assert_eq!(entry["time"], T0);
        assert_eq!(entry["fieldsType"], "FieldsV1");
        assert_eq!(
            entry["fieldsV1"],
            json!({"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{
                "k:{\"name\":\"a\"}":{".":{},"f:image":{},"f:name":{}}}}}}})
        );
    }

    #[test]
    fn reapply_without_a_field_removes_it() {
        let first = manifest(
            2,
            json!({"app": "web", "tier": "front"}),
            json!([{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "image": "b:1"}]),
        );
        let live = ssa(None, &first, "kubectl", false).unwrap();
        let second = manifest(
            2,
            json!({"app": "web"}),
            json!([{"name": "a", "image": "a:1"}]),
        );
        let updated = ssa(Some(&live), &second, "kubectl", false).unwrap();
        assert_eq!(updated["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            updated["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}])
        );
    }

    #[test]
    fn removed_field_stays_when_another_manager_owns_it() {
        let live = ssa(
            None,
            &manifest(2, json!({"app": "web", "tier": "front"}), json!([])),
            "kubectl",
            false,
        )
        .unwrap();
        let helm = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"tier": "front"}}});
        let live = ssa(Some(&live), &helm, "helm", false).unwrap();
        let updated = ssa(
            Some(&live),
            &manifest(2, json!({"app": "web"}), json!([])),
            "kubectl",
            false,
        )
        .unwrap();
        assert_eq!(
            updated["metadata"]["labels"],
            json!({"app": "web", "tier": "front"})
        );
    }

    #[test]
    fn different_value_from_another_applier_conflicts_and_force_moves_ownership() {
        let live = ssa(
            None,
            &manifest(2, json!({"app": "web"}), json!([])),
            "kubectl",
            false,
        )
        .unwrap();
        let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let err = ssa(Some(&live), &other, "helm", false).unwrap_err();
        let ApplyError::Conflicts(conflicts) = err else {
            panic!("expected conflicts")
        };
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].field, ".spec.replicas");
        assert_eq!(conflicts[0].manager, "kubectl");
        assert_eq!(conflicts[0].message(), "conflict with \"kubectl\"");

        let forced = ssa(Some(&live), &other, "helm", true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        let kubectl = entry(&forced, "kubectl", "Apply").unwrap();
        assert!(kubectl["fieldsV1"]["f:spec"].get("f:replicas").is_none());
        assert_eq!(
            entry(&forced, "helm", "Apply").unwrap()["fieldsV1"]["f:spec"],
            json!({"f:replicas": {}})
        );
    }

    #[test]
    fn same_value_is_shared_ownership() {
        let live = ssa(
            None,
            &manifest(2, json!({"app": "web"}), json!([])),
            "kubectl",
            false,
        )
        .unwrap();
        let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
        let shared = ssa(Some(&live), &other, "helm", false).unwrap();
        for manager in ["kubectl", "helm"] {
            assert!(
                entry(&shared, manager, "Apply").unwrap()["fieldsV1"]["f:spec"]
                    .get("f:replicas")
                    .is_some(),
                "{manager}"
            );
        }
        // kubectl stops applying replicas: helm still owns it, so it stays.
        let without = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}}});
        let after = ssa(Some(&shared), &without, "kubectl", false).unwrap();
        assert_eq!(after["spec"]["replicas"], 2);
    }

    #[test]
    fn update_then_apply_of_a_different_value_conflicts_with_the_updater() {
        let live = ssa(
            None,
            &manifest(2, json!({"app": "web"}), json!([])),
            "kubectl",
            false,
        )
        .unwrap();
        // `kubectl scale` is an ordinary update by manager "kubectl".
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(7);
        let scaled = update_managed_fields(
            Some(&live),
            &scaled,
            "kubectl",
            None,
            "apps/v1",
            T1,
            DEPLOYMENT,
            &TestTypes,
        );
        let update = entry(&scaled, "kubectl", "Update").unwrap();
        assert_eq!(update["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(update["time"], T1);
        assert!(
            entry(&scaled, "kubectl", "Apply").unwrap()["fieldsV1"]["f:spec"]
                .get("f:replicas")
                .is_none()
        );

        let err = ssa(
            Some(&scaled),
            &manifest(3, json!({"app": "web"}), json!([])),
            "kubectl",
            false,
        )
        .unwrap_err();
        let ApplyError::Conflicts(conflicts) = err else {
            panic!("expected conflicts")
        };
        assert_eq!(conflicts[0].field, ".spec.replicas");
        assert_eq!(
            conflicts[0].message(),
            "conflict with \"kubectl\" using apps/v1"
        );
    }

    #[test]
    fn update_on_create_owns_everything_and_marks_new_maps() {
        let object = manifest(
            1,
            json!({"app": "web"}),
            json!([{"name": "a", "image": "x"}]),
        );
        let created = update_managed_fields(
            None,
            &object,
            "kubectl-create",
            None,
            "apps/v1",
            T0,
            DEPLOYMENT,
            &TestTypes,
        );
        let fields = &entry(&created, "kubectl-create", "Update").unwrap()["fieldsV1"];
        assert_eq!(
            fields["f:metadata"]["f:labels"],
            json!({".": {}, "f:app": {}})
        );
        assert_eq!(fields["f:spec"]["f:replicas"], json!({}));
        assert!(fields["f:metadata"].get("f:name").is_none());
        assert!(fields.get("f:kind").is_none());
    }

    #[test]
    fn update_takes_changed_fields_from_other_managers_and_merges_entries() {
        let object = manifest(1, json!({"app": "web"}), json!([]));
        let created = update_managed_fields(
            None, &object, "a", None, "apps/v1", T0, DEPLOYMENT, &TestTypes,
        );
        let mut changed = created.clone();
        changed["metadata"]["labels"]["app"] = json!("api");
        let changed = update_managed_fields(
            Some(&created),
            &changed,
            "b",
            Some("status"),
            "apps/v1",
            T1,
            DEPLOYMENT,
            &TestTypes,
        );
        let b = entry(&changed, "b", "Update").unwrap();
        assert_eq!(b["subresource"], "status");
        assert_eq!(
            b["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:app": {}}}})
        );
        let a = entry(&changed, "a", "Update").unwrap();
        assert!(
            a["fieldsV1"]["f:metadata"]["f:labels"]
                .get("f:app")
                .is_none()
        );

        // A no-op update by "b" keeps a single entry and its time.
        let again = update_managed_fields(
            Some(&changed),
            &changed,
            "b",
            Some("status"),
            "apps/v1",
            "2027-01-01T00:00:00Z",
            DEPLOYMENT,
            &TestTypes,
        );
        let entries: Vec<&Value> = again["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["manager"] == "b")
            .collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["time"], T1);
    }

    #[test]
    fn managed_fields_in_request_reset_with_empty_entry() {
        let object = manifest(1, json!({"app": "web"}), json!([]));
        let created = update_managed_fields(
            None, &object, "a", None, "apps/v1", T0, DEPLOYMENT, &TestTypes,
        );
        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        let out = update_managed_fields(
            Some(&created),
            &reset,
            "b",
            None,
            "apps/v1",
            T1,
            DEPLOYMENT,
            &TestTypes,
        );
        // Nothing changed, so "b" owns nothing and the reset leaves no entries.
        assert!(out["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn apply_rejects_managed_fields_and_non_objects() {
        assert!(matches!(
            ssa(None, &json!([1]), "m", false),
            Err(ApplyError::Invalid(_))
        ));
        let with_fields = json!({"metadata": {"managedFields": [{"manager": "x"}]}});
        assert!(matches!(
            ssa(None, &with_fields, "m", false),
            Err(ApplyError::Invalid(_))
        ));
    }
}
