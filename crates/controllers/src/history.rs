//! Template history shared by the DaemonSet and StatefulSet controllers: ControllerRevisions
//! (upstream `pkg/controller/history`) and the hashing the Deployment controller also uses.

use std::collections::HashSet;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::common::{Error, controller_reference};

/// Label carrying a revision's hash on ControllerRevisions (and on DaemonSet pods; StatefulSet
/// pods carry the revision's name under the same key).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// FNV-32a, the hash upstream's `ComputeHash` uses.
pub fn fnv32a(bytes: &[u8], mut hash: u32) -> u32 {
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(16_777_619);
    }
    hash
}

/// FNV-32 (multiply, then xor), the hash upstream's `HashControllerRevision` uses.
fn fnv32(bytes: &[u8], mut hash: u32) -> u32 {
    for byte in bytes {
        hash = hash.wrapping_mul(16_777_619);
        hash ^= u32::from(*byte);
    }
    hash
}

const FNV_OFFSET_BASIS: u32 = 2_166_136_261;

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels (no words) and no look-alikes.
pub const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Upstream's `rand.SafeEncodeString` of the hash's decimal form.
pub fn safe_encode(hash: u32) -> String {
    hash.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHANUMS[usize::from(b) % SAFE_ALPHANUMS.len()]))
        .collect()
}

/// Drops zero values (false, 0, "", null, empty lists and maps), recursively. Go clients such
/// as `kubectl rollout undo` omit them, so a template written back by a client must still
/// compare equal to, and hash like, the stored one.
pub fn prune_zero_values(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !prune_zero_values(v));
            map.is_empty()
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                prune_zero_values(item);
            }
            items.is_empty()
        }
        Value::Null => true,
        Value::Bool(b) => !*b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
    }
}

/// Rebuilds objects with sorted keys so that the hash does not depend on field order.
pub fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: std::collections::BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// A revision's data, as upstream's `getPatch`: a strategic merge patch replacing the
/// template, `{"spec":{"template":{…,"$patch":"replace"}}}`, so that `kubectl rollout undo`
/// can apply it and `kubectl rollout history --revision` can show it.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).unwrap_or_default();
    prune_zero_values(&mut value);
    let mut value = sort_keys(value);
    if let Some(map) = value.as_object_mut() {
        map.insert("$patch".into(), json!("replace"));
    } else {
        value = json!({"$patch": "replace"});
    }
    json!({"spec": {"template": value}})
}

/// The pod template a revision records.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// Upstream's `HashControllerRevision`: FNV-32 over the data, then the collision count.
pub fn hash_revision(data: &Value, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(data).unwrap_or_default();
    let mut hash = fnv32(&bytes, FNV_OFFSET_BASIS);
    if let Some(count) = collision_count {
        hash = fnv32(count.to_string().as_bytes(), hash);
    }
    safe_encode(hash)
}

/// Upstream's `ControllerRevisionName`: the parent's name (cut to 223 characters), a dash, the
/// hash.
pub fn revision_name(parent: &str, hash: &str) -> String {
    let prefix: String = parent.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// Whether two revisions record the same template.
pub fn same_data(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    let normalized = |r: &ControllerRevision| {
        r.data.as_ref().map(|d| {
            let mut v = d.0.clone();
            prune_zero_values(&mut v);
            sort_keys(v)
        })
    };
    normalized(a) == normalized(b)
}

/// A new ControllerRevision of `parent` recording `template`: labelled with the template's
/// labels plus the hash, annotated with the parent's annotations, controlled by the parent.
pub fn new_revision<K: Resource<DynamicType = ()>>(
    parent: &K,
    template: &PodTemplateSpec,
    revision: i64,
    collision_count: Option<i32>,
) -> Result<ControllerRevision, Error> {
    let data = template_patch(template);
    let hash = hash_revision(&data, collision_count);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.clone());
    let annotations = parent.meta().annotations.clone().filter(|a| !a.is_empty());
    let owner = controller_reference(parent)
        .ok_or_else(|| Error::InvalidObject("parent has no name or uid".into()))?;
    Ok(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&parent.name_any(), &hash)),
            namespace: parent.meta().namespace.clone(),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision,
    })
}

/// The highest revision number in `revisions` (0 when there are none).
pub fn max_revision(revisions: &[&ControllerRevision]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0)
}

/// What to do about the revision of the current template.
#[derive(Debug, Clone, PartialEq)]
pub enum RevisionChange {
    /// The newest revision already records the template.
    None,
    /// Create this revision.
    Create(Box<ControllerRevision>),
    /// An older revision records the template (a rollback): renumber it to be the newest.
    Renumber { name: String, revision: i64 },
}

/// The revision of the current template among `revisions` (upstream's equal-revision lookup
/// in `getStatefulSetRevisions` / `constructHistory`): reused when one records the same
/// template, renumbered when it is not the newest, created otherwise.
pub fn current_revision<K: Resource<DynamicType = ()>>(
    parent: &K,
    template: &PodTemplateSpec,
    revisions: &[&ControllerRevision],
    collision_count: Option<i32>,
) -> Result<(ControllerRevision, RevisionChange), Error> {
    let max = max_revision(revisions);
    let candidate = new_revision(parent, template, max + 1, collision_count)?;
    let equal = revisions
        .iter()
        .filter(|r| same_data(r, &candidate))
        .max_by_key(|r| r.revision);
    Ok(match equal {
        Some(existing) if existing.revision == max => ((*existing).clone(), RevisionChange::None),
        Some(existing) => {
            let mut renumbered = (*existing).clone();
            renumbered.revision = max + 1;
            let name = renumbered.name_any();
            (
                renumbered,
                RevisionChange::Renumber {
                    name,
                    revision: max + 1,
                },
            )
        }
        None => (
            candidate.clone(),
            RevisionChange::Create(Box::new(candidate)),
        ),
    })
}

/// Revisions to delete so that at most `limit` revisions besides the `live` ones remain,
/// oldest first (upstream's `cleanupHistory` / `truncateHistory`).
pub fn revisions_to_prune(
    revisions: &[&ControllerRevision],
    live: &HashSet<String>,
    limit: i32,
) -> Vec<String> {
    let mut history: Vec<&&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    if history.len() <= limit {
        return Vec::new();
    }
    history.sort_by_key(|r| r.revision);
    let excess = history.len() - limit;
    history[..excess].iter().map(|r| r.name_any()).collect()
}

/// The revisions `uid` controls.
pub fn owned_revisions<'a>(
    revisions: &'a [ControllerRevision],
    uid: &str,
) -> Vec<&'a ControllerRevision> {
    revisions
        .iter()
        .filter(|r| crate::common::controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use std::collections::BTreeMap;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".into(), "x".into())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                host_network: Some(false),
                ..Default::default()
            }),
        }
    }

    fn parent() -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("x".into()),
                namespace: Some("ns".into()),
                uid: Some("uid-x".into()),
                annotations: Some(BTreeMap::from([(
                    "kubernetes.io/change-cause".into(),
                    "first".into(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn patch_replaces_template_and_round_trips() {
        let data = template_patch(&template("a:1"));
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        // Zero values are dropped so a client's round trip hashes alike.
        assert!(
            data["spec"]["template"]["spec"]
                .get("hostNetwork")
                .is_none()
        );
        let revision = new_revision(&parent(), &template("a:1"), 1, None).unwrap();
        let back = template_of(&revision).unwrap();
        assert_eq!(
            back.spec.unwrap().containers[0].image.as_deref(),
            Some("a:1")
        );
    }

    #[test]
    fn revision_is_named_by_hash_labelled_and_owned() {
        let revision = new_revision(&parent(), &template("a:1"), 3, None).unwrap();
        let hash = revision.labels()[CONTROLLER_REVISION_HASH_LABEL].clone();
        assert_eq!(revision.name_any(), format!("x-{hash}"));
        assert!(hash.bytes().all(|b| SAFE_ALPHANUMS.contains(&b)));
        assert_eq!(revision.labels()["app"], "x");
        assert_eq!(revision.revision, 3);
        assert_eq!(
            revision.annotations()["kubernetes.io/change-cause"],
            "first"
        );
        let owner = &revision.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("DaemonSet", "uid-x")
        );
        let other = new_revision(&parent(), &template("a:1"), 3, Some(1)).unwrap();
        assert_ne!(
            other.name_any(),
            revision.name_any(),
            "collision count changes the name"
        );
    }

    #[test]
    fn current_revision_is_created_reused_or_renumbered() {
        let ds = parent();
        let (first, change) = current_revision(&ds, &template("a:1"), &[], None).unwrap();
        assert_eq!(first.revision, 1);
        assert!(matches!(change, RevisionChange::Create(_)));
        let (same, change) = current_revision(&ds, &template("a:1"), &[&first], None).unwrap();
        assert_eq!(
            (same.name_any(), change),
            (first.name_any(), RevisionChange::None)
        );
        let second = new_revision(&ds, &template("a:2"), 2, None).unwrap();
        let (back, change) =
            current_revision(&ds, &template("a:1"), &[&first, &second], None).unwrap();
        assert_eq!(back.revision, 3);
        assert_eq!(
            change,
            RevisionChange::Renumber {
                name: first.name_any(),
                revision: 3
            }
        );
    }

    #[test]
    fn pruning_keeps_live_and_newest_revisions() {
        let ds = parent();
        let revisions: Vec<ControllerRevision> = (1..=5)
            .map(|i| new_revision(&ds, &template(&format!("a:{i}")), i, None).unwrap())
            .collect();
        let refs: Vec<&ControllerRevision> = revisions.iter().collect();
        let live = HashSet::from([revisions[0].name_any(), revisions[4].name_any()]);
        assert_eq!(
            revisions_to_prune(&refs, &live, 2),
            [revisions[1].name_any()]
        );
        assert!(revisions_to_prune(&refs, &live, 3).is_empty());
    }
}
