//! Deployment controller: rolls ReplicaSets per strategy (RollingUpdate or Recreate), keeps
//! revision history, and reports the Available / Progressing conditions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::ControllerOptions;
use crate::common::{
    Error, EventSpec, api_error_code, controller_of, controller_reference, emit_event,
    object_reference, seconds_between, selector_is_empty, selector_matches,
};
use crate::history::{SAFE_ALPHANUMS, fnv32a, prune_zero_values, sort_keys};

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Deployment annotations upstream does not copy onto its ReplicaSets.
const ANNOTATIONS_NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

/// A change to make to the ReplicaSets or the Deployment itself.
#[derive(Debug, Clone, PartialEq)]
pub enum DeploymentAction {
    /// Give an orphan ReplicaSet matching the selector a controller reference.
    AdoptReplicaSet {
        name: String,
    },
    CreateReplicaSet(Box<ReplicaSet>),
    /// Set replicas and annotations of an existing ReplicaSet (merge: listed annotations only).
    UpdateReplicaSet {
        name: String,
        replicas: i32,
        annotations: BTreeMap<String, String>,
    },
    DeleteReplicaSet {
        name: String,
        uid: Option<String>,
    },
    /// Record the current revision on the Deployment.
    AnnotateRevision {
        revision: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentPlan {
    pub actions: Vec<DeploymentAction>,
    pub events: Vec<EventSpec>,
    pub status: DeploymentStatus,
    /// Sync again then to check the progress deadline.
    pub requeue_after: Option<Duration>,
}

/// The `pod-template-hash` of a template: FNV-32a over the template (here its normalized JSON
/// form, where upstream hashes a deep print) plus the collision count, its decimal form
/// safe-encoded.
pub fn compute_hash(
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> Result<String, Error> {
    let normalized = normalized_template(Some(template));
    let mut hash = fnv32a(&serde_json::to_vec(&normalized)?, 2_166_136_261);
    if let Some(count) = collision_count {
        hash = fnv32a(&(count as u32).to_le_bytes(), hash);
    }
    Ok(hash
        .to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHANUMS[usize::from(b) % SAFE_ALPHANUMS.len()]))
        .collect())
}

/// The template as compared and hashed: without `pod-template-hash`, zero values pruned.
fn normalized_template(template: Option<&PodTemplateSpec>) -> serde_json::Value {
    let mut value = serde_json::to_value(template.cloned().unwrap_or_default()).unwrap_or_default();
    if let Some(labels) = value
        .pointer_mut("/metadata/labels")
        .and_then(|l| l.as_object_mut())
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    prune_zero_values(&mut value);
    sort_keys(value)
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn terminating_of(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.terminating_replicas)
        .unwrap_or(0)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    })
}

/// Resolves an int-or-percent against `total`; percentages round up for surge, down for
/// unavailability (upstream `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, Error> {
    match value {
        IntOrString::Int(v) => Ok(*v),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Error::InvalidObject(format!("invalid int-or-percent {s:?}")))?;
            let product = percent * i64::from(total);
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).map_err(|_| Error::InvalidObject(format!("{s:?} overflows")))
        }
    }
}

/// (maxSurge, maxUnavailable) for the deployment; both zero would stall, so unavailability
/// becomes 1 then (upstream `ResolveFenceposts`). Recreate: (0, 0).
pub fn surge_and_unavailable(d: &Deployment) -> Result<(i32, i32), Error> {
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("deployment has no spec".into()))?;
    let replicas = spec.replicas.unwrap_or(1);
    let strategy = spec.strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Ok((0, 0));
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let surge = scaled_value(
        rolling
            .and_then(|r| r.max_surge.as_ref())
            .unwrap_or(&quarter),
        replicas,
        true,
    )?;
    let mut unavailable = scaled_value(
        rolling
            .and_then(|r| r.max_unavailable.as_ref())
            .unwrap_or(&quarter),
        replicas,
        false,
    )?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge.max(0), unavailable.clamp(0, replicas.max(0))))
}

/// State of one sync: the owned ReplicaSets as they will be after the actions so far.
struct Sync<'a> {
    deployment: &'a Deployment,
    replicas: i32,
    surge: i32,
    unavailable: i32,
    sets: Vec<ReplicaSet>,
    new_index: Option<usize>,
    actions: Vec<DeploymentAction>,
    events: Vec<EventSpec>,
    /// Progressing condition decided while finding or creating the new ReplicaSet.
    progressing: Option<DeploymentCondition>,
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

impl Sync<'_> {
    fn old_indices(&self) -> Vec<usize> {
        let mut olds: Vec<usize> = (0..self.sets.len())
            .filter(|i| Some(*i) != self.new_index)
            .collect();
        olds.sort_by_key(|i| {
            (
                self.sets[*i].metadata.creation_timestamp.clone(),
                self.sets[*i].name_any(),
            )
        });
        olds
    }

    fn replica_annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                DESIRED_REPLICAS_ANNOTATION.to_string(),
                self.replicas.to_string(),
            ),
            (
                MAX_REPLICAS_ANNOTATION.to_string(),
                (self.replicas + self.surge).to_string(),
            ),
        ])
    }

    /// Scales one ReplicaSet, recording the action and upstream's ScalingReplicaSet event.
    fn scale(&mut self, index: usize, replicas: i32) {
        let annotations = self.replica_annotations();
        let rs = &mut self.sets[index];
        let current = spec_replicas(rs);
        let stale = annotations
            .iter()
            .any(|(k, v)| rs.annotations().get(k) != Some(v));
        if current == replicas && !stale {
            return;
        }
        if current != replicas {
            let direction = if replicas > current { "up" } else { "down" };
            self.events.push(EventSpec::normal(
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} from {current} to {replicas}",
                    rs.name_any()
                ),
            ));
        }
        rs.spec.get_or_insert_default().replicas = Some(replicas);
        rs.metadata
            .annotations
            .get_or_insert_default()
            .extend(annotations.clone());
        self.actions.push(DeploymentAction::UpdateReplicaSet {
            name: rs.name_any(),
            replicas,
            annotations,
        });
    }

    fn total_spec(&self) -> i32 {
        self.sets.iter().map(spec_replicas).sum()
    }

    fn total_available(&self) -> i32 {
        self.sets.iter().map(|rs| status_of(rs).2).sum()
    }

    /// Replicas a new ReplicaSet should have now (upstream `NewRSNewReplicas`).
    fn new_replicas_target(&self, current_new: i32, recreate: bool) -> i32 {
        if recreate {
            return self.replicas;
        }
        let max_total = self.replicas + self.surge;
        // Upstream counts spec replicas only; an old set scaled down a moment ago may still
        // have the pods it is about to delete, and creating new ones then would exceed
        // replicas + maxSurge. Counting what each set still has too keeps the bound.
        let current_total: i32 = self
            .sets
            .iter()
            .map(|rs| spec_replicas(rs).max(status_of(rs).0))
            .sum();
        if current_total >= max_total {
            return current_new;
        }
        let scale_up = (max_total - current_total)
            .min(self.replicas - current_new)
            .max(0);
        current_new + scale_up
    }

    /// Finds the ReplicaSet whose template equals the deployment's, syncing its revision and
    /// annotations; creates it when `create` is set and none exists.
    fn sync_new_replica_set(
        &mut self,
        create: bool,
        recreate: bool,
        now: Timestamp,
    ) -> Result<(), Error> {
        let d = self.deployment;
        let spec = d
            .spec
            .as_ref()
            .ok_or_else(|| Error::InvalidObject("deployment has no spec".into()))?;
        let max_old_revision = self
            .old_indices_without_new_template()
            .iter()
            .map(|i| revision_of(&self.sets[*i]))
            .max()
            .unwrap_or(0);
        let next_revision = (max_old_revision + 1).to_string();
        let has_deadline = has_progress_deadline(d);
        let mut copied: BTreeMap<String, String> = d
            .annotations()
            .iter()
            .filter(|(k, _)| !ANNOTATIONS_NOT_COPIED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(index) = self.new_index {
            let rs = &self.sets[index];
            let mut annotations = self.replica_annotations();
            if revision_of(rs) < max_old_revision + 1 {
                annotations.insert(REVISION_ANNOTATION.into(), next_revision);
            }
            annotations.append(&mut copied);
            let stale = annotations
                .iter()
                .any(|(k, v)| rs.annotations().get(k) != Some(v));
            if stale {
                let replicas = spec_replicas(rs);
                let rs = &mut self.sets[index];
                rs.metadata
                    .annotations
                    .get_or_insert_default()
                    .extend(annotations.clone());
                self.actions.push(DeploymentAction::UpdateReplicaSet {
                    name: rs.name_any(),
                    replicas,
                    annotations,
                });
            }
            if has_deadline && progressing_condition(d.status.as_ref()).is_none() {
                let name = self.sets[index].name_any();
                self.progressing = Some(condition(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    format!("Found new replica set \"{name}\""),
                    now,
                ));
            }
            return Ok(());
        }
        if !create {
            return Ok(());
        }
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = spec.template.clone();
        let hash = compute_hash(&template, collision_count)?;
        let template_meta = template.metadata.get_or_insert_default();
        template_meta
            .labels
            .get_or_insert_default()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let labels = template_meta.labels.clone();
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_default()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let replicas = self.new_replicas_target(0, recreate);
        let mut annotations = self.replica_annotations();
        annotations.insert(REVISION_ANNOTATION.into(), next_revision.clone());
        annotations.append(&mut copied);
        let name = format!("{}-{hash}", d.name_any());
        let owner = controller_reference(d)
            .ok_or_else(|| Error::InvalidObject("deployment has no name or uid".into()))?;
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels,
                annotations: Some(annotations),
                owner_references: Some(vec![owner]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.actions
            .push(DeploymentAction::CreateReplicaSet(Box::new(rs.clone())));
        if replicas > 0 {
            self.events.push(EventSpec::normal(
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            ));
        }
        if has_deadline {
            self.progressing = Some(condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                now,
            ));
        }
        self.sets.push(rs);
        self.new_index = Some(self.sets.len() - 1);
        Ok(())
    }

    fn old_indices_without_new_template(&self) -> Vec<usize> {
        self.old_indices()
    }

    /// Rolling update step for the new ReplicaSet; true when it was scaled.
    fn reconcile_new(&mut self) -> bool {
        let Some(index) = self.new_index else {
            return false;
        };
        let current = spec_replicas(&self.sets[index]);
        let target = if current > self.replicas {
            self.replicas
        } else {
            self.new_replicas_target(current, false)
        };
        if target == current {
            return false;
        }
        self.scale(index, target);
        true
    }

    /// Rolling update step for the old ReplicaSets; true when any was scaled down.
    fn reconcile_old(&mut self) -> bool {
        let olds = self.old_indices();
        if olds
            .iter()
            .map(|i| spec_replicas(&self.sets[*i]))
            .sum::<i32>()
            == 0
        {
            return false;
        }
        let min_available = self.replicas - self.unavailable;
        let new_unavailable = self.new_index.map_or(0, |i| {
            spec_replicas(&self.sets[i]) - status_of(&self.sets[i]).2
        });
        let max_scaled_down = self.total_spec() - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // First remove old pods that are not available anyway: that costs no availability.
        let mut cleaned = 0;
        for &index in &olds {
            if cleaned >= max_scaled_down {
                break;
            }
            let replicas = spec_replicas(&self.sets[index]);
            let available = status_of(&self.sets[index]).2;
            if replicas == 0 || replicas <= available {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(replicas - available);
            self.scale(index, replicas - down);
            cleaned += down;
        }
        // Then scale down available old pods while keeping minAvailable.
        let available = self.total_available();
        let mut scaled = 0;
        if available > min_available {
            let allowed = available - min_available;
            for &index in &olds {
                if scaled >= allowed {
                    break;
                }
                let replicas = spec_replicas(&self.sets[index]);
                if replicas == 0 {
                    continue;
                }
                let down = replicas.min(allowed - scaled);
                self.scale(index, replicas - down);
                scaled += down;
            }
        }
        cleaned + scaled > 0
    }

    /// Whether replicas changed since the ReplicaSets were last scaled (upstream
    /// `isScalingEvent`).
    fn is_scaling_event(&self) -> bool {
        let wanted = self.replicas.to_string();
        self.sets
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .any(|rs| {
                rs.annotations()
                    .get(DESIRED_REPLICAS_ANNOTATION)
                    .is_some_and(|v| *v != wanted)
            })
    }

    /// Scaling without rollout (paused or scaling event), as upstream's `scale`.
    fn scale_without_rollout(&mut self) {
        let active: Vec<usize> = (0..self.sets.len())
            .filter(|i| spec_replicas(&self.sets[*i]) > 0)
            .collect();
        let single = match active.as_slice() {
            [] => self
                .new_index
                .or_else(|| self.old_indices().last().copied()),
            [only] => Some(*only),
            _ => None,
        };
        if let Some(index) = single {
            self.scale(index, self.replicas);
            return;
        }
        if let Some(index) = self.new_index {
            let (_, _, available) = status_of(&self.sets[index]);
            if spec_replicas(&self.sets[index]) == self.replicas && available == self.replicas {
                for old in self.old_indices() {
                    self.scale(old, 0);
                }
                return;
            }
        }
        // Proportional scaling: spread the change over the active sets by their size; the
        // remainder goes to the largest (newest on ties) set.
        let allowed = self.replicas + self.surge;
        let current = self.total_spec();
        let delta = allowed - current;
        if delta == 0 || current == 0 {
            return;
        }
        let mut ordered = active.clone();
        ordered.sort_by_key(|i| {
            (
                std::cmp::Reverse(spec_replicas(&self.sets[*i])),
                std::cmp::Reverse(self.sets[*i].metadata.creation_timestamp.clone()),
            )
        });
        let mut targets: Vec<(usize, i32)> = Vec::new();
        let mut assigned = 0;
        for &index in &ordered {
            let replicas = spec_replicas(&self.sets[index]);
            let share = (i64::from(replicas) * i64::from(delta) / i64::from(current)) as i32;
            assigned += share;
            targets.push((index, replicas + share));
        }
        if let Some(first) = targets.first_mut() {
            first.1 += delta - assigned;
        }
        for (index, target) in targets {
            self.scale(index, target.max(0));
        }
    }

    /// Deletes the oldest fully scaled-down ReplicaSets beyond revisionHistoryLimit.
    fn cleanup_history(&mut self) {
        let limit = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0);
        let mut cleanable: Vec<usize> = self
            .old_indices()
            .into_iter()
            .filter(|i| self.sets[*i].metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        if excess == 0 {
            return;
        }
        cleanable.sort_by_key(|i| {
            (
                revision_of(&self.sets[*i]),
                self.sets[*i].metadata.creation_timestamp.clone(),
            )
        });
        for index in cleanable.into_iter().take(excess) {
            let rs = &self.sets[index];
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if spec_replicas(rs) != 0
                || status_of(rs).0 != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            self.actions.push(DeploymentAction::DeleteReplicaSet {
                name: rs.name_any(),
                uid: rs.metadata.uid.clone(),
            });
        }
    }
}

fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600)
        .lt(&i32::MAX)
}

fn progressing_condition(status: Option<&DeploymentStatus>) -> Option<&DeploymentCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")
}

fn set_condition(conditions: &mut Vec<DeploymentCondition>, mut new: DeploymentCondition) {
    if let Some(existing) = conditions.iter().find(|c| c.type_ == new.type_) {
        if existing.status == new.status && existing.reason == new.reason {
            return;
        }
        // A reason change within the same status keeps the transition time.
        if existing.status == new.status {
            new.last_transition_time = existing.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != new.type_);
    conditions.push(new);
}

/// Decides the actions for `d` given the ReplicaSets of its namespace.
pub fn reconcile(
    d: &Deployment,
    replica_sets: &[ReplicaSet],
    now: Timestamp,
) -> Result<DeploymentPlan, Error> {
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("deployment has no spec".into()))?;
    if selector_is_empty(&spec.selector) {
        return Err(Error::InvalidSelector(
            "empty selector would match every pod".into(),
        ));
    }
    let uid = d.metadata.uid.as_deref().unwrap_or_default();
    let being_deleted = d.metadata.deletion_timestamp.is_some();
    let mut actions = Vec::new();
    let mut sets = Vec::new();
    for rs in replica_sets {
        let labels = rs.labels().clone();
        match controller_of(&rs.metadata) {
            Some(owner) if owner.uid == uid => sets.push(rs.clone()),
            Some(_) => {}
            None if !being_deleted
                && rs.metadata.deletion_timestamp.is_none()
                && selector_matches(&spec.selector, &labels)? =>
            {
                actions.push(DeploymentAction::AdoptReplicaSet {
                    name: rs.name_any(),
                });
                sets.push(rs.clone());
            }
            None => {}
        }
    }
    let wanted_template = normalized_template(Some(&spec.template));
    let mut candidates: Vec<usize> = (0..sets.len())
        .filter(|i| {
            normalized_template(sets[*i].spec.as_ref().and_then(|s| s.template.as_ref()))
                == wanted_template
        })
        .collect();
    candidates.sort_by_key(|i| sets[*i].metadata.creation_timestamp.clone());
    let (surge, unavailable) = surge_and_unavailable(d)?;
    let mut sync = Sync {
        deployment: d,
        replicas: spec.replicas.unwrap_or(1).max(0),
        surge,
        unavailable,
        new_index: candidates.first().copied(),
        sets,
        actions,
        events: Vec::new(),
        progressing: None,
    };
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let paused = spec.paused == Some(true);
    let mut rollout = false;
    if being_deleted {
        // Only report status while the garbage collector removes the ReplicaSets.
    } else if paused || sync.is_scaling_event() {
        sync.sync_new_replica_set(false, recreate, now)?;
        sync.scale_without_rollout();
        if paused {
            sync.cleanup_history();
        }
    } else if recreate {
        rollout = true;
        sync.sync_new_replica_set(false, recreate, now)?;
        let olds = sync.old_indices();
        let active_olds: Vec<usize> = olds
            .iter()
            .copied()
            .filter(|i| spec_replicas(&sync.sets[*i]) > 0)
            .collect();
        // Terminating pods still run: Recreate starts new pods only once they are gone too.
        let old_pods_running = olds
            .iter()
            .any(|i| status_of(&sync.sets[*i]).0 > 0 || terminating_of(&sync.sets[*i]) > 0);
        if !active_olds.is_empty() {
            for index in active_olds {
                sync.scale(index, 0);
            }
        } else if !old_pods_running {
            sync.sync_new_replica_set(true, recreate, now)?;
            if let Some(index) = sync.new_index {
                sync.scale(index, sync.replicas);
            }
        }
    } else {
        rollout = true;
        sync.sync_new_replica_set(true, recreate, now)?;
        if !sync.reconcile_new() && !sync.reconcile_old() {
            let complete = sync.new_index.is_some_and(|i| {
                let (replicas, _, available) = status_of(&sync.sets[i]);
                spec_replicas(&sync.sets[i]) == sync.replicas
                    && replicas == sync.replicas
                    && available == sync.replicas
            });
            if complete {
                sync.cleanup_history();
            }
        }
    }
    let mut status = compute_status(&sync, paused, rollout, now);
    let mut requeue_after = None;
    if rollout
        && has_progress_deadline(d)
        && let Some(cond) = progressing_condition(Some(&status))
            .filter(|c| c.reason.as_deref() != Some("NewReplicaSetAvailable") && c.status == "True")
    {
        let deadline = i64::from(spec.progress_deadline_seconds.unwrap_or(600));
        let since = cond.last_update_time.as_ref().map_or(now, |t| t.0);
        let remaining = deadline - seconds_between(since, now);
        if remaining >= 0 {
            requeue_after = Some(Duration::from_secs(remaining.unsigned_abs() + 1));
        }
    }
    if !has_progress_deadline(d) {
        status
            .conditions
            .get_or_insert_default()
            .retain(|c| c.type_ != "Progressing");
    }
    if let Some(index) = sync.new_index {
        let revision = sync.sets[index]
            .annotations()
            .get(REVISION_ANNOTATION)
            .cloned();
        if let Some(revision) =
            revision.filter(|r| d.annotations().get(REVISION_ANNOTATION) != Some(r))
        {
            sync.actions
                .push(DeploymentAction::AnnotateRevision { revision });
        }
    }
    Ok(DeploymentPlan {
        actions: sync.actions,
        events: sync.events,
        status,
        requeue_after,
    })
}

fn compute_status(
    sync: &Sync<'_>,
    paused: bool,
    rollout: bool,
    now: Timestamp,
) -> DeploymentStatus {
    let d = sync.deployment;
    let previous = d.status.clone().unwrap_or_default();
    let sum = |pick: fn(&ReplicaSet) -> i32| sync.sets.iter().map(pick).sum::<i32>();
    let available = sum(|rs| status_of(rs).2);
    let unavailable = (sync.total_spec() - available).max(0);
    let new_name = sync
        .new_index
        .map(|i| sync.sets[i].name_any())
        .unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(|rs| status_of(rs).0)),
        updated_replicas: Some(sync.new_index.map_or(0, |i| status_of(&sync.sets[i]).0)),
        ready_replicas: Some(sum(|rs| status_of(rs).1)),
        available_replicas: Some(available),
        unavailable_replicas: Some(unavailable),
        terminating_replicas: Some(sync.sets.iter().map(terminating_of).sum()),
        collision_count: previous.collision_count,
        conditions: previous.conditions.clone(),
    };
    let conditions = status.conditions.get_or_insert_default();
    let max_unavailable = sync.unavailable;
    if available >= sync.replicas - max_unavailable {
        set_condition(
            conditions,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            conditions,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    let current = progressing_condition(d.status.as_ref()).cloned();
    let current_reason = current.as_ref().and_then(|c| c.reason.clone());
    if paused {
        if current_reason.as_deref() != Some("DeploymentPaused") {
            set_condition(
                conditions,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused".into(),
                    now,
                ),
            );
        }
        return status;
    }
    if current_reason.as_deref() == Some("DeploymentPaused") {
        set_condition(
            conditions,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                now,
            ),
        );
    }
    if let Some(found) = sync.progressing.clone() {
        set_condition(conditions, found);
    }
    if !rollout || !has_progress_deadline(d) {
        return status;
    }
    let progressing_now = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .cloned();
    let replicas = status.replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let already_complete = replicas == updated
        && progressing_now.as_ref().and_then(|c| c.reason.as_deref())
            == Some("NewReplicaSetAvailable");
    if already_complete {
        return status;
    }
    let complete = updated == sync.replicas
        && replicas == sync.replicas
        && available == sync.replicas
        && status.observed_generation >= d.metadata.generation;
    let old_replicas_before =
        previous.replicas.unwrap_or(0) - previous.updated_replicas.unwrap_or(0);
    let progressing = updated > previous.updated_replicas.unwrap_or(0)
        || replicas - updated < old_replicas_before
        || status.ready_replicas.unwrap_or(0) > previous.ready_replicas.unwrap_or(0)
        || available > previous.available_replicas.unwrap_or(0);
    let deadline = i64::from(
        d.spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600),
    );
    let timed_out = progressing_now
        .as_ref()
        .is_some_and(|c| match c.reason.as_deref() {
            Some("NewReplicaSetAvailable") => false,
            Some("ProgressDeadlineExceeded") => true,
            _ => c
                .last_update_time
                .as_ref()
                .is_some_and(|t| seconds_between(t.0, now) > deadline),
        });
    if complete {
        set_condition(
            conditions,
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                now,
            ),
        );
    } else if progressing {
        let mut updated_condition = condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
            now,
        );
        if let Some(existing) = progressing_now.filter(|c| c.status == "True") {
            updated_condition.last_transition_time = existing.last_transition_time;
        }
        // Progress refreshes lastUpdateTime, which restarts the deadline.
        conditions.retain(|c| c.type_ != "Progressing");
        conditions.push(updated_condition);
    } else if timed_out {
        set_condition(
            conditions,
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                now,
            ),
        );
    }
    status
}

struct Context {
    client: Client,
    options: ControllerOptions,
    replica_sets: Store<ReplicaSet>,
}

const COMPONENT: &str = "deployment-controller";

async fn sync(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _ = ctx.replica_sets.wait_until_ready().await;
    let namespace = d.namespace().unwrap_or_default();
    let sets: Vec<ReplicaSet> = ctx
        .replica_sets
        .state()
        .into_iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .map(|rs| (*rs).clone())
        .collect();
    let plan = reconcile(&d, &sets, Timestamp::now())?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut status = plan.status.clone();
    for action in &plan.actions {
        let result = match action {
            DeploymentAction::AdoptReplicaSet { name } => {
                let Some(rs) = sets.iter().find(|rs| rs.name_any() == *name) else {
                    continue;
                };
                let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                refs.extend(controller_reference(d.as_ref()));
                let patch = serde_json::json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                rs_api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
            DeploymentAction::CreateReplicaSet(rs) => {
                match rs_api.create(&PostParams::default(), rs).await {
                    Err(e) if api_error_code(&e) == Some(409) => {
                        // Same name, different template: a hash collision. Upstream bumps
                        // collisionCount so the next sync hashes to a new name.
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        Ok(())
                    }
                    other => other.map(drop),
                }
            }
            DeploymentAction::UpdateReplicaSet {
                name,
                replicas,
                annotations,
            } => {
                let patch = serde_json::json!({"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}});
                rs_api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
            DeploymentAction::DeleteReplicaSet { name, uid } => {
                let params = DeleteParams {
                    preconditions: uid.clone().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::background()
                };
                rs_api.delete(name, &params).await.map(drop)
            }
            DeploymentAction::AnnotateRevision { revision } => {
                let patch = serde_json::json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision}}});
                d_api
                    .patch(
                        &d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map(drop)
            }
        };
        match result {
            Err(e) if api_error_code(&e) != Some(404) => return Err(e.into()),
            _ => {}
        }
    }
    let reference = object_reference(d.as_ref());
    for event in &plan.events {
        emit_event(&ctx.client, &reference, event, COMPONENT).await;
    }
    if d.status.as_ref() != Some(&status) {
        let patch = serde_json::json!({"status": status});
        match d_api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Err(e) if api_error_code(&e) != Some(404) => return Err(e.into()),
            _ => {}
        }
    }
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(ctx.options.resync_period),
    ))
}

/// Runs the Deployment controller until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let d_api: Api<Deployment> = Api::all(client.clone());
    let rs_api: Api<ReplicaSet> = Api::all(client.clone());
    let (replica_sets, writer) = reflector::store();
    let rs_stream = watcher(rs_api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let controller = Controller::new(d_api, watcher::Config::default());
    let deployments = controller.store();
    let concurrency = options.concurrency;
    let context = Arc::new(Context {
        client,
        options,
        replica_sets,
    });
    controller
        .watches_stream(rs_stream, move |rs: ReplicaSet| {
            let namespace = rs.namespace().unwrap_or_default();
            match controller_of(&rs.metadata) {
                Some(owner) if owner.kind == "Deployment" => {
                    vec![ObjectRef::new(&owner.name).within(&namespace)]
                }
                Some(_) => Vec::new(),
                None => deployments
                    .state()
                    .iter()
                    .filter(|d| d.metadata.namespace.as_deref() == Some(namespace.as_str()))
                    .filter(|d| {
                        d.spec.as_ref().is_some_and(|s| {
                            selector_matches(&s.selector, rs.labels()).unwrap_or(false)
                        })
                    })
                    .map(|d| ObjectRef::from_obj(d.as_ref()))
                    .collect(),
            }
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "deployment sync failed");
                Action::requeue(Duration::from_secs(5))
            },
            context,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn deployment(replicas: i32, image: &str, strategy: &str) -> Deployment {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("d-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                strategy: Some(DeploymentStrategy {
                    type_: Some(strategy.into()),
                    rolling_update: (strategy == "RollingUpdate").then(|| {
                        RollingUpdateDeployment {
                            max_surge: Some(IntOrString::String("25%".into())),
                            max_unavailable: Some(IntOrString::String("25%".into())),
                        }
                    }),
                }),
                revision_history_limit: Some(2),
                progress_deadline_seconds: Some(600),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A fake cluster: applies plans, and plays the ReplicaSet controller where pods created
    /// in one step become available in the next.
    struct World {
        sets: Vec<ReplicaSet>,
        clock: i64,
        events: Vec<String>,
    }

    impl World {
        fn step(&mut self, d: &mut Deployment) -> DeploymentPlan {
            self.clock += 1;
            let plan = reconcile(d, &self.sets, ts(self.clock)).unwrap();
            for action in &plan.actions {
                match action {
                    DeploymentAction::CreateReplicaSet(rs) => {
                        let mut rs = (**rs).clone();
                        rs.metadata.uid = Some(format!("{}-uid", rs.name_any()));
                        rs.metadata.creation_timestamp = Some(Time(ts(self.clock)));
                        self.sets.push(rs);
                    }
                    DeploymentAction::UpdateReplicaSet {
                        name,
                        replicas,
                        annotations,
                    } => {
                        let rs = self
                            .sets
                            .iter_mut()
                            .find(|rs| rs.name_any() == *name)
                            .unwrap();
                        rs.spec.as_mut().unwrap().replicas = Some(*replicas);
                        rs.metadata
                            .annotations
                            .get_or_insert_default()
                            .extend(annotations.clone());
                    }
                    DeploymentAction::DeleteReplicaSet { name, .. } => {
                        self.sets.retain(|rs| rs.name_any() != *name)
                    }
                    DeploymentAction::AnnotateRevision { revision } => {
                        d.metadata
                            .annotations
                            .get_or_insert_default()
                            .insert(REVISION_ANNOTATION.into(), revision.clone());
                    }
                    DeploymentAction::AdoptReplicaSet { .. } => {}
                }
            }
            self.events
                .extend(plan.events.iter().map(|e| e.message.clone()));
            d.status = Some(plan.status.clone());
            plan
        }

        /// The ReplicaSet controller's work: old pods available stay, new ones lag one step.
        fn settle_pods(&mut self) {
            for rs in &mut self.sets {
                let want = spec_replicas(rs);
                let had = rs.status.as_ref().map_or(0, |s| s.replicas);
                let available = want.min(had);
                rs.status = Some(ReplicaSetStatus {
                    replicas: want,
                    ready_replicas: Some(available),
                    available_replicas: Some(available),
                    observed_generation: Some(1),
                    ..Default::default()
                });
            }
        }

        fn totals(&self) -> (i32, i32) {
            (
                self.sets.iter().map(spec_replicas).sum(),
                self.sets.iter().map(|rs| status_of(rs).2).sum(),
            )
        }
    }

    fn converge(
        world: &mut World,
        d: &mut Deployment,
        max_steps: usize,
        check: impl Fn(&World),
    ) -> usize {
        for step in 0..max_steps {
            let plan = world.step(d);
            check(world);
            let complete = progressing_condition(Some(&plan.status))
                .and_then(|c| c.reason.as_deref())
                == Some("NewReplicaSetAvailable");
            if plan.actions.is_empty() && complete {
                return step;
            }
            world.settle_pods();
            check(world);
        }
        panic!("did not converge in {max_steps} steps");
    }

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        let d = deployment(10, "nginx:1", "RollingUpdate");
        assert_eq!(surge_and_unavailable(&d).unwrap(), (3, 2));
        assert!(scaled_value(&IntOrString::String("x%".into()), 10, true).is_err());
        assert_eq!(
            scaled_value(&IntOrString::String("33%".into()), 10, true).unwrap(),
            4
        );
        assert_eq!(
            scaled_value(&IntOrString::String("33%".into()), 10, false).unwrap(),
            3
        );
    }

    #[test]
    fn hash_depends_on_template_and_collision_count() {
        let d = deployment(1, "nginx:1", "RollingUpdate");
        let template = &d.spec.as_ref().unwrap().template;
        let plain = compute_hash(template, None).unwrap();
        assert_eq!(plain, compute_hash(template, None).unwrap());
        assert_ne!(plain, compute_hash(template, Some(1)).unwrap());
        let other = deployment(1, "nginx:2", "RollingUpdate");
        assert_ne!(
            plain,
            compute_hash(&other.spec.as_ref().unwrap().template, None).unwrap()
        );
        assert!(plain.bytes().all(|b| SAFE_ALPHANUMS.contains(&b)));
    }

    #[test]
    fn template_written_back_without_zero_values_matches_stored_set() {
        let mut d = deployment(2, "v1", "RollingUpdate");
        let mut world = World {
            sets: Vec::new(),
            clock: 0,
            events: Vec::new(),
        };
        converge(&mut world, &mut d, 10, |_| {});
        // The stored set carries explicit zero values, as the API server returns them.
        let stored = &mut world.sets[0]
            .spec
            .as_mut()
            .unwrap()
            .template
            .as_mut()
            .unwrap();
        stored.spec.as_mut().unwrap().containers[0].stdin = Some(false);
        stored.spec.as_mut().unwrap().host_network = Some(false);
        let plan = world.step(&mut d);
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, DeploymentAction::CreateReplicaSet(_)))
        );
        let template = &d.spec.as_ref().unwrap().template;
        let stored = world.sets[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .as_ref()
            .unwrap();
        assert_eq!(
            compute_hash(template, None).unwrap(),
            compute_hash(stored, None).unwrap()
        );
    }

    #[test]
    fn scaling_during_rollout_is_proportional() {
        let mut d = deployment(10, "v1", "RollingUpdate");
        let mut world = World {
            sets: Vec::new(),
            clock: 0,
            events: Vec::new(),
        };
        converge(&mut world, &mut d, 10, |_| {});
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("v2".into());
        world.step(&mut d);
        world.settle_pods();
        let before: Vec<i32> = world.sets.iter().map(spec_replicas).collect();
        assert!(
            before.iter().all(|r| *r > 0),
            "both sets active mid-rollout: {before:?}"
        );
        d.spec.as_mut().unwrap().replicas = Some(20);
        let plan = world.step(&mut d);
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, DeploymentAction::CreateReplicaSet(_)))
        );
        // 20 replicas + 25% surge (5) spread over both sets, each growing.
        assert_eq!(world.totals().0, 25);
        for (set, old) in world.sets.iter().zip(before) {
            assert!(spec_replicas(set) > old);
            assert_eq!(
                set.annotations()
                    .get(DESIRED_REPLICAS_ANNOTATION)
                    .map(String::as_str),
                Some("20")
            );
        }
        converge(&mut world, &mut d, 40, |_| {});
        let status = d.status.as_ref().unwrap();
        assert_eq!(
            (status.replicas, status.updated_replicas),
            (Some(20), Some(20))
        );
        let available = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Available")
            .unwrap();
        assert_eq!(
            (available.status.as_str(), available.reason.as_deref()),
            ("True", Some("MinimumReplicasAvailable"))
        );
    }

    #[test]
    fn first_sync_creates_replica_set_with_hash_revision_and_event() {
        let d = deployment(3, "nginx:1", "RollingUpdate");
        let plan = reconcile(&d, &[], ts(0)).unwrap();
        let DeploymentAction::CreateReplicaSet(rs) = &plan.actions[0] else {
            panic!("expected create")
        };
        let hash = rs.labels().get(POD_TEMPLATE_HASH_LABEL).unwrap().clone();
        assert_eq!(rs.name_any(), format!("web-{hash}"));
        assert_eq!(
            rs.annotations()
                .get(REVISION_ANNOTATION)
                .map(String::as_str),
            Some("1")
        );
        assert_eq!(
            rs.annotations()
                .get(DESIRED_REPLICAS_ANNOTATION)
                .map(String::as_str),
            Some("3")
        );
        assert_eq!(
            rs.annotations()
                .get(MAX_REPLICAS_ANNOTATION)
                .map(String::as_str),
            Some("4")
        );
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.selector
                .match_labels
                .as_ref()
                .unwrap()
                .get(POD_TEMPLATE_HASH_LABEL),
            Some(&hash)
        );
        assert_eq!(
            plan.events[0].message,
            format!("Scaled up replica set web-{hash} from 0 to 3")
        );
        let progressing = progressing_condition(Some(&plan.status)).unwrap();
        assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetCreated"));
    }

    #[test]
    fn rolling_update_of_ten_replicas_respects_surge_and_unavailability() {
        let mut d = deployment(10, "nginx:1", "RollingUpdate");
        let mut world = World {
            sets: Vec::new(),
            clock: 0,
            events: Vec::new(),
        };
        converge(&mut world, &mut d, 10, |_| {});
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("nginx:2".into());
        d.metadata.generation = Some(2);
        let steps = converge(&mut world, &mut d, 30, |w| {
            let (total, available) = w.totals();
            assert!(total <= 13, "surge exceeded: {total}");
            assert!(available >= 8, "too many unavailable: {available}");
        });
        assert!(
            steps > 2,
            "a 25%/25% rollout of 10 replicas takes several steps, took {steps}"
        );
        let new_rs = world
            .sets
            .iter()
            .find(|rs| {
                rs.annotations()
                    .get(REVISION_ANNOTATION)
                    .map(String::as_str)
                    == Some("2")
            })
            .unwrap();
        assert_eq!(spec_replicas(new_rs), 10);
        assert_eq!(
            world.sets.iter().filter(|rs| spec_replicas(rs) > 0).count(),
            1
        );
        assert_eq!(
            d.annotations().get(REVISION_ANNOTATION).map(String::as_str),
            Some("2")
        );
        let status = d.status.as_ref().unwrap();
        assert_eq!(
            (
                status.updated_replicas,
                status.available_replicas,
                status.unavailable_replicas
            ),
            (Some(10), Some(10), Some(0))
        );
        assert!(
            world
                .events
                .iter()
                .any(|m| m.starts_with("Scaled down replica set"))
        );
    }

    #[test]
    fn recreate_scales_old_to_zero_before_creating_new() {
        let mut d = deployment(3, "nginx:1", "Recreate");
        let mut world = World {
            sets: Vec::new(),
            clock: 0,
            events: Vec::new(),
        };
        converge(&mut world, &mut d, 10, |_| {});
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("nginx:2".into());
        let first = world.step(&mut d);
        assert!(matches!(
            &first.actions[..],
            [DeploymentAction::UpdateReplicaSet { replicas: 0, .. }]
        ));
        // Old pods still running: no new ReplicaSet yet.
        let waiting = world.step(&mut d);
        assert!(waiting.actions.is_empty());
        world.settle_pods();
        let create = world.step(&mut d);
        assert!(create.actions.iter().any(
            |a| matches!(a, DeploymentAction::CreateReplicaSet(rs) if spec_replicas(rs) == 3)
        ));
    }

    #[test]
    fn recreate_waits_for_terminating_old_pods() {
        let mut d = deployment(3, "nginx:1", "Recreate");
        let mut world = World {
            sets: Vec::new(),
            clock: 0,
            events: Vec::new(),
        };
        converge(&mut world, &mut d, 10, |_| {});
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("nginx:2".into());
        world.step(&mut d);
        world.settle_pods();
        // Scaled to zero, but its pods are still shutting down.
        if let Some(status) = world.sets[0].status.as_mut() {
            status.terminating_replicas = Some(3);
        }
        let waiting = world.step(&mut d);
        assert!(waiting.actions.is_empty(), "{:?}", waiting.actions);
        assert_eq!(waiting.status.terminating_replicas, Some(3));
        if let Some(status) = world.sets[0].status.as_mut() {
            status.terminating_replicas = Some(0);
        }
        let create = world.step(&mut d);
        assert!(create.actions.iter().any(
            |a| matches!(a, DeploymentAction::CreateReplicaSet(rs) if spec_replicas(rs) == 3)
        ));
    }

    #[test]
    fn paused_deployment_does_not_roll_out_but_scales() {
        let mut d = deployment(3, "nginx:1", "RollingUpdate");
        let mut world = World {
            sets: Vec::new(),
            clock: 0,
            events: Vec::new(),
        };
        converge(&mut world, &mut d, 10, |_| {});
        let spec = d.spec.as_mut().unwrap();
        spec.paused = Some(true);
        spec.replicas = Some(5);
        spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        let plan = world.step(&mut d);
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, DeploymentAction::CreateReplicaSet(_)))
        );
        assert!(
            plan.actions
                .iter()
                .any(|a| matches!(a, DeploymentAction::UpdateReplicaSet { replicas: 5, .. }))
        );
        let progressing = progressing_condition(Some(&plan.status)).unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_deref()),
            ("Unknown", Some("DeploymentPaused"))
        );
    }

    #[test]
    fn rollback_bumps_revision_of_matching_old_set_and_history_is_limited() {
        let mut d = deployment(2, "v1", "RollingUpdate");
        let mut world = World {
            sets: Vec::new(),
            clock: 0,
            events: Vec::new(),
        };
        for image in ["v1", "v2", "v3", "v4"] {
            d.spec
                .as_mut()
                .unwrap()
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0]
                .image = Some(image.into());
            converge(&mut world, &mut d, 30, |_| {});
        }
        // Limit 2: the current set plus two old ones remain.
        assert_eq!(world.sets.len(), 3);
        let revisions: Vec<i64> = world.sets.iter().map(revision_of).collect();
        assert!(
            !revisions.contains(&1),
            "oldest revision cleaned up: {revisions:?}"
        );
        // `kubectl rollout undo` writes the v3 template back.
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("v3".into());
        converge(&mut world, &mut d, 30, |_| {});
        let v3 = world.sets.iter().find(|rs| spec_replicas(rs) == 2).unwrap();
        assert_eq!(revision_of(v3), 5);
        assert_eq!(world.sets.len(), 3);
    }

    #[test]
    fn progress_deadline_exceeded_when_stuck() {
        let mut d = deployment(2, "v1", "RollingUpdate");
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(60);
        let mut world = World {
            sets: Vec::new(),
            clock: 0,
            events: Vec::new(),
        };
        world.step(&mut d);
        world.step(&mut d);
        // Pods never become available.
        world.clock += 30;
        let early = world.step(&mut d);
        assert_eq!(
            progressing_condition(Some(&early.status)).unwrap().status,
            "True"
        );
        assert!(early.requeue_after.is_some());
        let available = early
            .status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Available")
            .unwrap();
        assert_eq!(
            available.reason.as_deref(),
            Some("MinimumReplicasUnavailable")
        );
        world.clock += 60;
        let late = world.step(&mut d);
        let progressing = progressing_condition(Some(&late.status)).unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_deref()),
            ("False", Some("ProgressDeadlineExceeded"))
        );
        // Progress resumes: the condition becomes True again.
        world.settle_pods();
        world.settle_pods();
        let resumed = world.step(&mut d);
        let progressing = progressing_condition(Some(&resumed.status)).unwrap();
        assert_eq!(progressing.status, "True");
    }
}
