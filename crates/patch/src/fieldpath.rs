//! Field paths and field sets as server-side apply tracks them, with the `FieldsV1` encoding
//! (`{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{".":{},"f:image":{}}}}}`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::types::{
    Child, FieldType, ListType, Shape, Types, element_type, is_atomic_struct, shape_of,
};

/// One step of a path. The derived order (fields, keys, values, indexes) is the `FieldsV1` order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of an object, or an entry of a string-keyed map (`f:name`).
    Field(String),
    /// An item of a keyed list, named by its key fields as canonical JSON (`k:{"name":"a"}`).
    Key(String),
    /// An item of a set, as canonical JSON (`v:"x"`).
    Value(String),
    /// An item of a list by position (`i:0`).
    Index(usize),
}

pub type Path = Vec<PathElement>;

/// Renders a path the way upstream prints conflicts: `.spec.containers[name="a"].image`.
pub fn path_to_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for element in path {
        match element {
            PathElement::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathElement::Key(key) => {
                let fields: Vec<String> = match serde_json::from_str::<Map<String, Value>>(key) {
                    Ok(map) => map
                        .iter()
                        .map(|(name, value)| format!("{name}={value}"))
                        .collect(),
                    Err(_) => vec![key.clone()],
                };
                out.push_str(&format!("[{}]", fields.join(",")));
            }
            PathElement::Value(value) => out.push_str(&format!("[={value}]")),
            PathElement::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// A set of paths. A path is a member when it is owned itself; its ancestors need not be members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, path: Path) {
        self.0.insert(path);
    }
    pub fn remove(&mut self, path: &[PathElement]) -> bool {
        self.0.remove(path)
    }
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.0.contains(path)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }
    /// Whether `path` or any path below it is a member.
    pub fn covers(&self, path: &[PathElement]) -> bool {
        self.0
            .range(path.to_vec()..)
            .next()
            .is_some_and(|first| first.starts_with(path))
    }
    /// Whether some member lies strictly below `path`.
    pub fn has_descendants(&self, path: &[PathElement]) -> bool {
        self.0
            .range(path.to_vec()..)
            .find(|member| member.as_slice() != path)
            .is_some_and(|next| next.starts_with(path))
    }
    pub fn retain(&mut self, keep: impl FnMut(&Path) -> bool) {
        self.0.retain(keep);
    }

    /// Encodes the set as `FieldsV1` JSON.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<PathElement, Node>,
        }
        fn encode(node: &Node) -> Value {
            let mut map = Map::new();
            if node.member && !node.children.is_empty() {
                map.insert(".".into(), Value::Object(Map::new()));
            }
            for (element, child) in &node.children {
                map.insert(element_to_string(element), encode(child));
            }
            Value::Object(map)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for element in path {
                node = node.children.entry(element.clone()).or_default();
            }
            node.member = true;
        }
        encode(&root)
    }

    /// Decodes `FieldsV1` JSON.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        fn decode(value: &Value, prefix: &mut Path, set: &mut FieldSet) -> Result<(), String> {
            let Value::Object(map) = value else {
                return Err(format!("expected an object at {}", path_to_string(prefix)));
            };
            if map.is_empty() && !prefix.is_empty() {
                set.insert(prefix.clone());
            }
            for (key, child) in map {
                if key == "." {
                    if !prefix.is_empty() {
                        set.insert(prefix.clone());
                    }
                    continue;
                }
                prefix.push(element_from_string(key)?);
                decode(child, prefix, set)?;
                prefix.pop();
            }
            Ok(())
        }
        let mut set = FieldSet::new();
        decode(value, &mut Vec::new(), &mut set)?;
        Ok(set)
    }
}

fn element_to_string(element: &PathElement) -> String {
    match element {
        PathElement::Field(name) => format!("f:{name}"),
        PathElement::Key(key) => format!("k:{key}"),
        PathElement::Value(value) => format!("v:{value}"),
        PathElement::Index(index) => format!("i:{index}"),
    }
}

fn element_from_string(text: &str) -> Result<PathElement, String> {
    let parse_json = |raw: &str| {
        serde_json::from_str::<Value>(raw)
            .map(|value| canonical_json(&value))
            .map_err(|err| format!("bad path element {text}: {err}"))
    };
    match text.split_at_checked(2) {
        Some(("f:", name)) => Ok(PathElement::Field(name.to_string())),
        Some(("k:", raw)) => Ok(PathElement::Key(parse_json(raw)?)),
        Some(("v:", raw)) => Ok(PathElement::Value(parse_json(raw)?)),
        Some(("i:", raw)) => raw
            .parse()
            .map(PathElement::Index)
            .map_err(|_| format!("bad path element {text}")),
        _ => Err(format!("bad path element {text}")),
    }
}

/// Compact JSON with object keys sorted, so equal values always encode the same way.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|key| (key.clone(), sorted(&map[key])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            scalar => scalar.clone(),
        }
    }
    sorted(value).to_string()
}

/// The key of an item in a keyed list, or `None` if the item cannot be keyed.
/// `protocol` defaults to TCP upstream, so an item without it is keyed as TCP.
pub(crate) fn item_key(item: &Value, key_fields: &[&str]) -> Option<PathElement> {
    let map = item.as_object()?;
    let mut key = Map::new();
    for field in key_fields {
        match map.get(*field) {
            Some(value) if !value.is_null() => {
                key.insert((*field).to_string(), value.clone());
            }
            _ if *field == "protocol" => {
                key.insert("protocol".into(), Value::String("TCP".into()));
            }
            _ => {}
        }
    }
    if key.is_empty() {
        return None;
    }
    Some(PathElement::Key(canonical_json(&Value::Object(key))))
}

/// How a list is tracked, given what is known about the field holding it.
pub(crate) fn list_type_of(child: &Child, items: &[Value]) -> ListType {
    let declared = child.meta.map_or(ListType::Atomic, |meta| meta.list_type);
    match declared {
        ListType::Map(keys) if items.iter().all(|item| item_key(item, keys).is_some()) => declared,
        ListType::Set
            if items
                .iter()
                .all(|item| !item.is_object() && !item.is_array()) =>
        {
            declared
        }
        _ => ListType::Atomic,
    }
}

/// Options for [`field_set`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FieldSetOptions {
    /// Also make string-keyed maps members of the set, the way upstream records the creation of a
    /// map in `Update` entries (`"f:labels":{".":{},...}`).
    pub map_containers: bool,
}

/// The set of paths a value sets, as upstream's `ToFieldSet`.
pub(crate) fn field_set(value: &Value, types: &Types, options: FieldSetOptions) -> FieldSet {
    let mut set = FieldSet::new();
    let root = Child {
        ty: FieldType::Unknown,
        meta: None,
        declared: true,
    };
    if let Value::Object(map) = value {
        visit_object(
            map,
            &types.root_shape(),
            types,
            options,
            &mut Vec::new(),
            &mut set,
        );
    } else {
        visit(value, &root, types, options, &mut Vec::new(), &mut set);
    }
    set
}

fn visit(
    value: &Value,
    child: &Child,
    types: &Types,
    options: FieldSetOptions,
    path: &mut Path,
    set: &mut FieldSet,
) {
    match value {
        Value::Object(map) if !map.is_empty() && !is_atomic_struct(&child.ty) => {
            if options.map_containers && matches!(child.ty, FieldType::Map(_)) {
                set.insert(path.clone());
            }
            visit_object(map, &shape_of(&child.ty), types, options, path, set);
        }
        Value::Array(items) if !items.is_empty() => {
            let element = Child {
                ty: element_type(&child.ty),
                meta: None,
                declared: false,
            };
            match list_type_of(child, items) {
                ListType::Atomic => set.insert(path.clone()),
                ListType::Set => {
                    for item in items {
                        path.push(PathElement::Value(canonical_json(item)));
                        set.insert(path.clone());
                        path.pop();
                    }
                }
                ListType::Map(keys) => {
                    for item in items {
                        let Some(key) = item_key(item, keys) else {
                            continue;
                        };
                        path.push(key);
                        set.insert(path.clone());
                        if let Value::Object(map) = item
                            && !is_atomic_struct(&element.ty)
                        {
                            visit_object(map, &shape_of(&element.ty), types, options, path, set);
                        }
                        path.pop();
                    }
                }
            }
        }
        _ => set.insert(path.clone()),
    }
}

fn visit_object(
    map: &Map<String, Value>,
    shape: &Shape,
    types: &Types,
    options: FieldSetOptions,
    path: &mut Path,
    set: &mut FieldSet,
) {
    for (key, value) in map {
        let child = types.child(shape, key);
        path.push(PathElement::Field(key.clone()));
        visit(value, &child, types, options, path, set);
        if !child.declared {
            set.insert(path.clone());
        }
        path.pop();
    }
}

/// The value at `path`, if present.
pub(crate) fn lookup<'v>(value: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
    let mut current = value;
    for element in path {
        current = match (element, current) {
            (PathElement::Field(name), Value::Object(map)) => map.get(name)?,
            (PathElement::Index(index), Value::Array(items)) => items.get(*index)?,
            (PathElement::Key(_) | PathElement::Value(_), Value::Array(items)) => {
                items.iter().find(|item| item_matches(item, element))?
            }
            _ => return None,
        };
    }
    Some(current)
}

fn item_matches(item: &Value, element: &PathElement) -> bool {
    match element {
        PathElement::Value(canonical) => canonical_json(item) == *canonical,
        PathElement::Key(canonical) => {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(canonical) else {
                return false;
            };
            let fields: Vec<&str> = key.keys().map(String::as_str).collect();
            item_key(item, &fields).as_ref() == Some(element)
        }
        _ => false,
    }
}

/// Removes the value at `path`; returns whether something was removed.
pub(crate) fn remove_path(value: &mut Value, path: &[PathElement]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for element in parents {
        let next = match (element, current) {
            (PathElement::Field(name), Value::Object(map)) => map.get_mut(name),
            (PathElement::Index(index), Value::Array(items)) => items.get_mut(*index),
            (PathElement::Key(_) | PathElement::Value(_), Value::Array(items)) => {
                items.iter_mut().find(|item| item_matches(item, element))
            }
            _ => None,
        };
        let Some(next) = next else { return false };
        current = next;
    }
    match (last, current) {
        (PathElement::Field(name), Value::Object(map)) => map.shift_remove(name).is_some(),
        (PathElement::Index(index), Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        (PathElement::Key(_) | PathElement::Value(_), Value::Array(items)) => {
            let before = items.len();
            items.retain(|item| !item_matches(item, last));
            items.len() != before
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_types::{DEPLOYMENT, TestTypes};
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips() {
        let encoded = json!({"f:metadata":{"f:labels":{".":{},"f:app":{}}},
            "f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{".":{},"f:image":{}}},"f:finalizers":{"v:\"x\"":{}}}});
        let set = FieldSet::from_fields_v1(&encoded).unwrap();
        assert_eq!(set.len(), 5);
        assert_eq!(set.to_fields_v1(), encoded);
    }

    #[test]
    fn field_set_keys_lists_and_owns_map_entries() {
        let types = Types {
            resolver: &TestTypes,
            root: DEPLOYMENT,
        };
        let deployment = json!({"metadata": {"labels": {"app": "x"}},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"spec": {"containers": [
                {"name": "a", "image": "i", "ports": [{"containerPort": 80}], "args": ["1"]}]}}}});
        let set = field_set(&deployment, &types, FieldSetOptions::default());
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:selector":{},"f:template":{"f:spec":{"f:containers":{
                "k:{\"name\":\"a\"}":{".":{},"f:args":{},"f:image":{},"f:name":{},
                    "f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}})
        );
        let with_maps = field_set(
            &deployment,
            &types,
            FieldSetOptions {
                map_containers: true,
            },
        );
        assert!(with_maps.contains(&[
            PathElement::Field("metadata".into()),
            PathElement::Field("labels".into())
        ]));
    }

    #[test]
    fn remove_and_lookup_follow_keys() {
        let mut doc = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}});
        let path = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Key("{\"name\":\"b\"}".into()),
        ];
        assert_eq!(lookup(&doc, &path), Some(&json!({"name": "b"})));
        assert!(remove_path(&mut doc, &path));
        assert_eq!(
            doc,
            json!({"spec": {"containers": [{"name": "a", "image": "1"}]}})
        );
        assert_eq!(path_to_string(&path), ".spec.containers[name=\"b\"]");
    }
}
