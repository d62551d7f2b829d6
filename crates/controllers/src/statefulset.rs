//! StatefulSet controller (upstream `pkg/controller/statefulset`): pods with stable names
//! `<set>-<ordinal>` and stable claims `<template>-<set>-<ordinal>`, created in order
//! (OrderedReady) or all at once (Parallel), rolled in reverse ordinal order down to the
//! partition, with ControllerRevision history.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::ControllerOptions;
use crate::common::{
    Error, EventSpec, api_error_code, controller_of, controller_reference, emit_event,
    object_reference, pod_is_available, pod_is_ready, pod_ready_since, seconds_between,
    selector_is_empty, selector_matches,
};
use crate::expectations::PodExpectations;
use crate::history::{
    CONTROLLER_REVISION_HASH_LABEL, RevisionChange, current_revision, owned_revisions,
    revisions_to_prune, same_data, template_of,
};
use crate::replicaset::PodToDelete;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// One step of a sync, executed in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StatefulSetAction {
    /// Create a missing claim of the pod named `pod`.
    CreateClaim {
        claim: Box<PersistentVolumeClaim>,
        pod: String,
    },
    CreatePod(Box<Pod>),
    DeletePod(PodToDelete),
}

/// What one sync of a StatefulSet must do.
#[derive(Debug, Clone, PartialEq)]
pub struct StatefulSetPlan {
    /// The revision of the current template (the update revision): create or renumber it.
    pub revision: RevisionChange,
    pub actions: Vec<StatefulSetAction>,
    pub prune_revisions: Vec<String>,
    pub events: Vec<EventSpec>,
    pub status: StatefulSetStatus,
    /// When a pod becomes available later (minReadySeconds), sync again then.
    pub requeue_after: Option<Duration>,
}

/// The ordinal of a pod named `<set>-<ordinal>`, if it is one of the set's names.
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    let suffix = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if suffix.len() > 1 && suffix.starts_with('0') {
        return None;
    }
    suffix.parse().ok()
}

/// Upstream `getPersistentVolumeClaimName`.
pub fn claim_name(template: &str, set_name: &str, ordinal: i32) -> String {
    format!("{template}-{set_name}-{ordinal}")
}

/// The claims of the pod at `ordinal`: each template renamed, labelled with the template's
/// labels plus the set's matchLabels (upstream `getPersistentVolumeClaims`).
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let Some(spec) = set.spec.as_ref() else {
        return Vec::new();
    };
    let set_name = set.name_any();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|template| {
            let mut labels = template.metadata.labels.clone().unwrap_or_default();
            for (key, value) in spec.selector.match_labels.iter().flatten() {
                labels.insert(key.clone(), value.clone());
            }
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&template.name_any(), &set_name, ordinal)),
                    namespace: set.metadata.namespace.clone(),
                    labels: (!labels.is_empty()).then_some(labels),
                    annotations: template.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                },
                spec: template.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// The pod at `ordinal` from `template` at `revision` (upstream `newStatefulSetPod`: identity
/// labels, hostname and subdomain, volumes bound to the ordinal's claims).
pub fn stateful_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
) -> Result<Pod, Error> {
    let spec = set
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("statefulset has no spec".into()))?;
    let owner = controller_reference(set)
        .ok_or_else(|| Error::InvalidObject("statefulset has no name or uid".into()))?;
    let set_name = set.name_any();
    let name = format!("{set_name}-{ordinal}");
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), revision.into());
    let mut pod_spec = template.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    pod_spec.subdomain = spec.service_name.clone().filter(|s| !s.is_empty());
    let volumes = pod_spec.volumes.get_or_insert_default();
    for claim in spec.volume_claim_templates.iter().flatten() {
        let volume = Volume {
            name: claim.name_any(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&claim.name_any(), &set_name, ordinal),
                read_only: None,
            }),
            ..Volume::default()
        };
        match volumes.iter_mut().find(|v| v.name == volume.name) {
            Some(existing) => *existing = volume,
            None => volumes.push(volume),
        }
    }
    if volumes.is_empty() {
        pod_spec.volumes = None;
    }
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    })
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && pod_is_ready(pod)
}

/// Upstream `isHealthy`: Running and Ready, and not being deleted.
fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.labels()
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .map(String::as_str)
}

fn to_delete(pod: &Pod) -> PodToDelete {
    PodToDelete {
        name: pod.name_any(),
        uid: pod.metadata.uid.clone(),
    }
}

/// Decides the actions for `set` given every pod, ControllerRevision and claim of its
/// namespace.
pub fn reconcile(
    set: &StatefulSet,
    pods: &[Pod],
    revisions: &[ControllerRevision],
    claims: &[PersistentVolumeClaim],
    now: Timestamp,
) -> Result<StatefulSetPlan, Error> {
    let spec = set
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("statefulset has no spec".into()))?;
    if selector_is_empty(&spec.selector) {
        return Err(Error::InvalidSelector(
            "empty selector would match every pod".into(),
        ));
    }
    let set_name = set.name_any();
    let uid = set.metadata.uid.as_deref().unwrap_or_default();
    let min_ready_seconds = spec.min_ready_seconds.unwrap_or(0);
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0);
    let start = spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let replicas = spec.replicas.unwrap_or(1).max(0);

    // Revisions: the update revision records the current template; the current revision is
    // the one the status names, while it still exists.
    let owned_revs = owned_revisions(revisions, uid);
    let collision_count = set.status.as_ref().and_then(|s| s.collision_count);
    let (update, change) = current_revision(set, &spec.template, &owned_revs, collision_count)?;
    let update_name = update.name_any();
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .and_then(|name| owned_revs.iter().find(|r| r.name_any() == name))
        .map(|r| (*r).clone())
        .unwrap_or_else(|| update.clone());
    let current_name = current.name_any();
    let current_template = template_of(&current).unwrap_or_else(|| spec.template.clone());

    let mut owned: Vec<(i32, &Pod)> = Vec::new();
    for pod in pods {
        if controller_of(&pod.metadata).is_some_and(|o| o.uid == uid)
            && selector_matches(&spec.selector, pod.labels())?
            && let Some(ordinal) = ordinal_of(&set_name, &pod.name_any())
        {
            owned.push((ordinal, pod));
        }
    }
    owned.sort_by_key(|(ordinal, _)| *ordinal);

    let status = compute_status(set, &owned, &current_name, &update_name, rolling, now);
    let mut live: HashSet<String> = HashSet::from([update_name.clone(), current_name.clone()]);
    live.extend(
        owned
            .iter()
            .filter_map(|(_, p)| revision_of(p).map(String::from)),
    );
    let prune_revisions = revisions_to_prune(
        &owned_revs,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    );
    let requeue_after = next_availability(&owned, min_ready_seconds, now);
    let mut plan = StatefulSetPlan {
        revision: change,
        actions: Vec::new(),
        prune_revisions,
        events: Vec::new(),
        status,
        requeue_after,
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(plan);
    }

    let in_range = |ordinal: i32| ordinal >= start && ordinal < start + replicas;
    let by_ordinal: HashMap<i32, &Pod> = owned
        .iter()
        .filter(|(o, _)| in_range(*o))
        .map(|(o, p)| (*o, *p))
        .collect();
    let condemned: Vec<&Pod> = owned
        .iter()
        .filter(|(o, _)| !in_range(*o))
        .map(|(_, p)| *p)
        .collect();
    let first_unhealthy = owned
        .iter()
        .filter(|(o, _)| in_range(*o))
        .chain(owned.iter().filter(|(o, _)| !in_range(*o)))
        .map(|(_, p)| *p)
        .find(|p| !is_healthy(p))
        .map(|p| p.name_any());
    let existing_claims: HashSet<String> = claims
        .iter()
        .filter(|c| c.metadata.namespace == set.metadata.namespace)
        .map(|c| c.name_any())
        .collect();
    let missing_claims = |ordinal: i32, pod: &str| -> Vec<StatefulSetAction> {
        claims_for(set, ordinal)
            .into_iter()
            .filter(|c| !existing_claims.contains(&c.name_any()))
            .map(|claim| StatefulSetAction::CreateClaim {
                claim: Box::new(claim),
                pod: pod.to_string(),
            })
            .collect()
    };

    // Upstream `processReplica`, in ordinal order.
    for ordinal in start..start + replicas {
        let name = format!("{set_name}-{ordinal}");
        match by_ordinal.get(&ordinal) {
            None => {
                // Ordinals below the partition stay at the current revision.
                let at_current = rolling && ordinal < start + partition;
                let pod = if at_current {
                    stateful_pod(set, &current_template, &current_name, ordinal)?
                } else {
                    stateful_pod(set, &spec.template, &update_name, ordinal)?
                };
                plan.actions.extend(missing_claims(ordinal, &name));
                plan.actions
                    .push(StatefulSetAction::CreatePod(Box::new(pod)));
                if monotonic {
                    return Ok(plan);
                }
            }
            Some(pod)
                if matches!(phase(pod), Some("Failed" | "Succeeded")) && !is_terminating(pod) =>
            {
                plan.events.push(EventSpec::warning(
                    "RecreatingFailedPod",
                    format!(
                        "StatefulSet {}/{set_name} is recreating failed Pod {name}",
                        set.namespace().unwrap_or_default()
                    ),
                ));
                plan.actions
                    .push(StatefulSetAction::DeletePod(to_delete(pod)));
                if monotonic {
                    return Ok(plan);
                }
            }
            Some(pod) => {
                plan.actions.extend(missing_claims(ordinal, &name));
                let ready =
                    is_running_and_ready(pod) && pod_is_available(pod, min_ready_seconds, now);
                if monotonic && (is_terminating(pod) || !ready) {
                    return Ok(plan);
                }
            }
        }
    }

    // Scale down from the highest ordinal (upstream `processCondemned`).
    for pod in condemned.iter().rev() {
        if is_terminating(pod) {
            if monotonic {
                return Ok(plan);
            }
            continue;
        }
        if monotonic
            && !is_running_and_ready(pod)
            && first_unhealthy.as_deref() != Some(pod.name_any().as_str())
        {
            return Ok(plan);
        }
        plan.actions
            .push(StatefulSetAction::DeletePod(to_delete(pod)));
        if monotonic {
            return Ok(plan);
        }
    }

    // Rolling update: highest ordinal first, one at a time, down to the partition.
    if !rolling {
        return Ok(plan);
    }
    let update_min = start + partition.min(replicas);
    for ordinal in (update_min..start + replicas).rev() {
        let Some(pod) = by_ordinal.get(&ordinal) else {
            return Ok(plan);
        };
        if revision_of(pod) != Some(update_name.as_str()) && !is_terminating(pod) {
            plan.actions
                .push(StatefulSetAction::DeletePod(to_delete(pod)));
            return Ok(plan);
        }
        if !is_healthy(pod) {
            return Ok(plan);
        }
    }
    Ok(plan)
}

fn compute_status(
    set: &StatefulSet,
    owned: &[(i32, &Pod)],
    current_name: &str,
    update_name: &str,
    rolling: bool,
    now: Timestamp,
) -> StatefulSetStatus {
    let min_ready_seconds = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(owned.iter().filter(|(_, p)| f(p)).count()).unwrap_or(i32::MAX)
    };
    let created = |p: &Pod| phase(p).is_some_and(|ph| !ph.is_empty());
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: count(&created),
        ready_replicas: Some(count(&is_running_and_ready)),
        available_replicas: Some(count(&|p: &Pod| {
            is_running_and_ready(p) && pod_is_available(p, min_ready_seconds, now)
        })),
        current_replicas: Some(count(&|p: &Pod| {
            created(p) && !is_terminating(p) && revision_of(p) == Some(current_name)
        })),
        updated_replicas: Some(count(&|p: &Pod| {
            created(p) && !is_terminating(p) && revision_of(p) == Some(update_name)
        })),
        current_revision: Some(current_name.to_string()),
        update_revision: Some(update_name.to_string()),
        collision_count: set.status.as_ref().and_then(|s| s.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    // Upstream `completeRollingUpdate`: once every pod runs the update revision and is ready,
    // it becomes the current revision.
    if rolling
        && status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    status
}

fn next_availability(
    owned: &[(i32, &Pod)],
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    owned
        .iter()
        .filter_map(|(_, p)| pod_ready_since(p).flatten())
        .map(|since| i64::from(min_ready_seconds) - seconds_between(since, now))
        .filter(|remaining| *remaining > 0)
        .min()
        .map(|s| Duration::from_secs(s.unsigned_abs()))
}

struct Context {
    client: Client,
    options: ControllerOptions,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    expectations: PodExpectations,
}

const COMPONENT: &str = "statefulset-controller";

fn ignore_not_found(result: Result<(), kube::Error>) -> Result<(), Error> {
    match result {
        Err(e) if api_error_code(&e) != Some(404) => Err(e.into()),
        _ => Ok(()),
    }
}

async fn sync(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.revisions.wait_until_ready().await;
    let _ = ctx.claims.wait_until_ready().await;
    let namespace = set.namespace().unwrap_or_default();
    let set_name = set.name_any();
    let key = format!("{namespace}/{set_name}");
    let in_namespace = |ns: Option<&str>| ns == Some(namespace.as_str());
    let pods: Vec<Pod> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| in_namespace(p.metadata.namespace.as_deref()))
        .map(|p| (*p).clone())
        .collect();
    let revisions: Vec<ControllerRevision> = ctx
        .revisions
        .state()
        .into_iter()
        .filter(|r| in_namespace(r.metadata.namespace.as_deref()))
        .map(|r| (*r).clone())
        .collect();
    let claims: Vec<PersistentVolumeClaim> = ctx
        .claims
        .state()
        .into_iter()
        .filter(|c| in_namespace(c.metadata.namespace.as_deref()))
        .map(|c| (*c).clone())
        .collect();
    let plan = reconcile(&set, &pods, &revisions, &claims, Timestamp::now())?;
    let mut status = plan.status.clone();
    let reference = object_reference(set.as_ref());
    let cr_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let claim_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);

    let mut revision_ready = true;
    match &plan.revision {
        RevisionChange::None => {}
        RevisionChange::Create(revision) => {
            match cr_api.create(&PostParams::default(), revision).await {
                Ok(_) => {}
                Err(e) if api_error_code(&e) == Some(409) => {
                    // Same name, another template: a hash collision (upstream bumps
                    // collisionCount so the next sync hashes to a new name).
                    let existing = cr_api.get(&revision.name_any()).await?;
                    if !same_data(&existing, revision) {
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        revision_ready = false;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        RevisionChange::Renumber { name, revision } => {
            let patch = serde_json::json!({"revision": revision});
            ignore_not_found(
                cr_api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop),
            )?;
        }
    }

    for event in &plan.events {
        emit_event(&ctx.client, &reference, event, COMPONENT).await;
    }
    let satisfied = ctx.expectations.satisfied(&key, &ctx.pods, &namespace);
    if revision_ready && satisfied && !plan.actions.is_empty() {
        let mut created = HashSet::new();
        let mut deleted = HashSet::new();
        let mut failure = None;
        for action in &plan.actions {
            match action {
                StatefulSetAction::CreateClaim { claim, pod } => {
                    let claim_name = claim.name_any();
                    match claim_api.create(&PostParams::default(), claim).await {
                        Ok(_) => {
                            let event = EventSpec::normal(
                                "SuccessfulCreate",
                                format!(
                                    "create Claim {claim_name} Pod {pod} in StatefulSet {set_name} success"
                                ),
                            );
                            emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                        }
                        Err(e) if api_error_code(&e) == Some(409) => {}
                        Err(error) => {
                            let event = EventSpec::warning(
                                "FailedCreate",
                                format!(
                                    "create Claim {claim_name} for Pod {pod} in StatefulSet {set_name} failed error: {error}"
                                ),
                            );
                            emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                            failure = Some(error);
                            break;
                        }
                    }
                }
                StatefulSetAction::CreatePod(pod) => {
                    let name = pod.name_any();
                    match pod_api.create(&PostParams::default(), pod).await {
                        Ok(_) => {
                            let event = EventSpec::normal(
                                "SuccessfulCreate",
                                format!("create Pod {name} in StatefulSet {set_name} successful"),
                            );
                            emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                            created.insert(name);
                        }
                        Err(e) if api_error_code(&e) == Some(409) => {}
                        Err(error) => {
                            let event = EventSpec::warning(
                                "FailedCreate",
                                format!(
                                    "create Pod {name} in StatefulSet {set_name} failed error: {error}"
                                ),
                            );
                            emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                            failure = Some(error);
                            break;
                        }
                    }
                }
                StatefulSetAction::DeletePod(victim) => {
                    let params = DeleteParams {
                        preconditions: victim.uid.clone().map(|uid| Preconditions {
                            uid: Some(uid),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    let name = &victim.name;
                    match pod_api.delete(name, &params).await {
                        Ok(_) => {
                            let event = EventSpec::normal(
                                "SuccessfulDelete",
                                format!("delete Pod {name} in StatefulSet {set_name} successful"),
                            );
                            emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                            deleted.extend(victim.uid.clone());
                        }
                        Err(e) if api_error_code(&e) == Some(404) => {}
                        Err(error) => {
                            let event = EventSpec::warning(
                                "FailedDelete",
                                format!(
                                    "delete Pod {name} in StatefulSet {set_name} failed error: {error}"
                                ),
                            );
                            emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                            failure = Some(error);
                            break;
                        }
                    }
                }
            }
        }
        ctx.expectations.expect(&key, created, deleted);
        if let Some(error) = failure {
            return Err(error.into());
        }
    }

    for name in &plan.prune_revisions {
        ignore_not_found(
            cr_api
                .delete(name, &DeleteParams::default())
                .await
                .map(drop),
        )?;
    }
    if set.status.as_ref() != Some(&status) {
        let set_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({"status": status});
        ignore_not_found(
            set_api
                .patch_status(&set_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop),
        )?;
    }
    if !revision_ready {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(ctx.options.resync_period),
    ))
}

/// Runs the StatefulSet controller until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let (pods, pod_writer) = reflector::store();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects();
    let (revisions, revision_writer) = reflector::store();
    let revision_stream = watcher(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(revision_writer)
    .touched_objects();
    let (claims, claim_writer) = reflector::store();
    let claim_stream = watcher(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(claim_writer)
    .touched_objects();
    let controller = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let concurrency = options.concurrency;
    let context = Arc::new(Context {
        client,
        options,
        pods,
        revisions,
        claims,
        expectations: PodExpectations::default(),
    });
    let owned_by_statefulset = |meta: &ObjectMeta| {
        let namespace = meta.namespace.clone().unwrap_or_default();
        match controller_of(meta) {
            Some(owner) if owner.kind == "StatefulSet" => {
                vec![ObjectRef::new(&owner.name).within(&namespace)]
            }
            _ => Vec::new(),
        }
    };
    controller
        .watches_stream(pod_stream, move |pod: Pod| {
            owned_by_statefulset(&pod.metadata)
        })
        .watches_stream(revision_stream, move |r: ControllerRevision| {
            owned_by_statefulset(&r.metadata)
        })
        // Claims carry no owner under the default Retain policy: the stream only keeps the
        // cache fresh.
        .watches_stream(claim_stream, |_: PersistentVolumeClaim| {
            Vec::<ObjectRef<StatefulSet>>::new()
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "statefulset sync failed");
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
        RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::{
        Container, PersistentVolumeClaimSpec, PodCondition, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
    use std::collections::BTreeMap;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn app() -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), "web".to_string())])
    }

    fn sts(replicas: i32, image: &str) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("sts-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(app()),
                    match_expressions: None,
                },
                service_name: Some("nginx".into()),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(app()),
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
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("data".into()),
                        ..Default::default()
                    },
                    spec: Some(PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".into()]),
                        ..Default::default()
                    }),
                    status: None,
                }]),
                pod_management_policy: Some("OrderedReady".into()),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateStatefulSetStrategy {
                        partition: Some(0),
                        max_unavailable: None,
                    }),
                }),
                revision_history_limit: Some(10),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn update_name(set: &StatefulSet) -> String {
        reconcile(set, &[], &[], &[], ts(0))
            .unwrap()
            .status
            .update_revision
            .unwrap()
    }

    fn pod(set: &StatefulSet, ordinal: i32, revision: &str, ready: bool) -> Pod {
        let mut pod =
            stateful_pod(set, &set.spec.as_ref().unwrap().template, revision, ordinal).unwrap();
        pod.metadata.uid = Some(format!("uid-{ordinal}"));
        pod.metadata.creation_timestamp = Some(Time(ts(0)));
        pod.status = Some(PodStatus {
            phase: Some(if ready { "Running" } else { "Pending" }.into()),
            conditions: ready.then(|| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(0))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        pod
    }

    fn claims(set: &StatefulSet, n: i32) -> Vec<PersistentVolumeClaim> {
        (0..n).flat_map(|i| claims_for(set, i)).collect()
    }

    fn summary(plan: &StatefulSetPlan) -> Vec<String> {
        plan.actions
            .iter()
            .map(|a| match a {
                StatefulSetAction::CreateClaim { claim, .. } => {
                    format!("claim {}", claim.name_any())
                }
                StatefulSetAction::CreatePod(p) => format!("create {}", p.name_any()),
                StatefulSetAction::DeletePod(p) => format!("delete {}", p.name),
            })
            .collect()
    }

    #[test]
    fn ordinals_parse_only_the_sets_own_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webapp-1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
    }

    #[test]
    fn pod_has_identity_labels_hostname_and_claim_volumes() {
        let set = sts(3, "nginx:1");
        let pod = stateful_pod(&set, &set.spec.as_ref().unwrap().template, "web-abc", 2).unwrap();
        assert_eq!(pod.name_any(), "web-2");
        assert_eq!(pod.labels()[POD_NAME_LABEL], "web-2");
        assert_eq!(pod.labels()[POD_INDEX_LABEL], "2");
        assert_eq!(pod.labels()[CONTROLLER_REVISION_HASH_LABEL], "web-abc");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let volume = &spec.volumes.unwrap()[0];
        assert_eq!(volume.name, "data");
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            "data-web-2"
        );
        let claim = &claims_for(&set, 2)[0];
        assert_eq!(claim.name_any(), "data-web-2");
        assert_eq!(claim.labels()["app"], "web");
        assert!(
            claim.metadata.owner_references.is_none(),
            "Retain: no owner"
        );
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time_claims_first() {
        let set = sts(3, "nginx:1");
        let plan = reconcile(&set, &[], &[], &[], ts(0)).unwrap();
        assert_eq!(summary(&plan), ["claim data-web-0", "create web-0"]);
        assert!(matches!(plan.revision, RevisionChange::Create(_)));
        let rev = update_name(&set);
        assert_eq!(plan.status.current_revision.as_deref(), Some(rev.as_str()));

        // web-0 exists but is not ready: wait.
        let pods = [pod(&set, 0, &rev, false)];
        let plan = reconcile(&set, &pods, &[], &claims(&set, 1), ts(0)).unwrap();
        assert!(plan.actions.is_empty());

        // web-0 ready: web-1 next.
        let pods = [pod(&set, 0, &rev, true)];
        let plan = reconcile(&set, &pods, &[], &claims(&set, 1), ts(0)).unwrap();
        assert_eq!(summary(&plan), ["claim data-web-1", "create web-1"]);
    }

    #[test]
    fn parallel_creates_every_missing_pod() {
        let mut set = sts(3, "nginx:1");
        set.spec.as_mut().unwrap().pod_management_policy = Some("Parallel".into());
        let rev = update_name(&set);
        let pods = [pod(&set, 0, &rev, false)];
        let plan = reconcile(&set, &pods, &[], &claims(&set, 1), ts(0)).unwrap();
        assert_eq!(
            summary(&plan),
            [
                "claim data-web-1",
                "create web-1",
                "claim data-web-2",
                "create web-2"
            ]
        );
    }

    #[test]
    fn scale_down_deletes_highest_ordinal_one_at_a_time() {
        let set = sts(1, "nginx:1");
        let rev = update_name(&set);
        let pods = [
            pod(&set, 0, &rev, true),
            pod(&set, 1, &rev, true),
            pod(&set, 2, &rev, true),
        ];
        let plan = reconcile(&set, &pods, &[], &claims(&set, 3), ts(0)).unwrap();
        assert_eq!(summary(&plan), ["delete web-2"]);
        assert_eq!(plan.status.replicas, 3);

        let mut terminating = pod(&set, 2, &rev, true);
        terminating.metadata.deletion_timestamp = Some(Time(ts(1)));
        let pods = [
            pod(&set, 0, &rev, true),
            pod(&set, 1, &rev, true),
            terminating,
        ];
        let plan = reconcile(&set, &pods, &[], &claims(&set, 3), ts(0)).unwrap();
        assert!(plan.actions.is_empty(), "waits for web-2 to go");

        // An unready lower pod blocks scale-down of a healthy higher one.
        let pods = [pod(&set, 0, &rev, false), pod(&set, 1, &rev, true)];
        let plan = reconcile(&set, &pods, &[], &claims(&set, 2), ts(0)).unwrap();
        assert!(plan.actions.is_empty());
    }

    #[test]
    fn rolling_update_goes_in_reverse_order_and_honours_partition() {
        let old = sts(3, "nginx:1");
        let old_rev = update_name(&old);
        let old_revision =
            crate::history::new_revision(&old, &old.spec.as_ref().unwrap().template, 1, None)
                .unwrap();
        let mut new = sts(3, "nginx:2");
        new.status = Some(StatefulSetStatus {
            current_revision: Some(old_rev.clone()),
            ..Default::default()
        });
        let revisions = [old_revision];
        let pods = [
            pod(&old, 0, &old_rev, true),
            pod(&old, 1, &old_rev, true),
            pod(&old, 2, &old_rev, true),
        ];
        let plan = reconcile(&new, &pods, &revisions, &claims(&new, 3), ts(0)).unwrap();
        assert_eq!(summary(&plan), ["delete web-2"]);
        let new_rev = plan.status.update_revision.clone().unwrap();
        assert_ne!(new_rev, old_rev);
        assert_eq!(
            plan.status.current_revision.as_deref(),
            Some(old_rev.as_str())
        );
        assert_eq!(plan.status.current_replicas, Some(3));
        assert_eq!(plan.status.updated_replicas, Some(0));

        // web-2 recreated at the new revision and ready: web-1 next.
        let pods = [
            pod(&old, 0, &old_rev, true),
            pod(&old, 1, &old_rev, true),
            pod(&new, 2, &new_rev, true),
        ];
        let plan = reconcile(&new, &pods, &revisions, &claims(&new, 3), ts(0)).unwrap();
        assert_eq!(summary(&plan), ["delete web-1"]);

        // Partition 2: nothing below ordinal 2 is updated, and a missing web-0 is recreated at
        // the current revision.
        let mut partitioned = new.clone();
        partitioned
            .spec
            .as_mut()
            .unwrap()
            .update_strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap()
            .partition = Some(2);
        let plan = reconcile(&partitioned, &pods, &revisions, &claims(&new, 3), ts(0)).unwrap();
        assert!(plan.actions.is_empty());
        let plan = reconcile(
            &partitioned,
            &pods[1..],
            &revisions,
            &claims(&new, 3),
            ts(0),
        )
        .unwrap();
        let StatefulSetAction::CreatePod(web0) = &plan.actions[0] else {
            panic!("expected web-0 to be created: {:?}", summary(&plan));
        };
        assert_eq!(web0.labels()[CONTROLLER_REVISION_HASH_LABEL], old_rev);
        assert_eq!(
            web0.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("nginx:1")
        );

        // All updated and ready: the update revision becomes current.
        let pods = [
            pod(&new, 0, &new_rev, true),
            pod(&new, 1, &new_rev, true),
            pod(&new, 2, &new_rev, true),
        ];
        let plan = reconcile(&new, &pods, &revisions, &claims(&new, 3), ts(0)).unwrap();
        assert!(plan.actions.is_empty());
        assert_eq!(
            plan.status.current_revision.as_deref(),
            Some(new_rev.as_str())
        );
        assert_eq!(plan.status.current_replicas, Some(3));
        assert_eq!(plan.status.ready_replicas, Some(3));
        assert_eq!(plan.status.available_replicas, Some(3));
    }

    #[test]
    fn on_delete_never_deletes_old_pods() {
        let old = sts(1, "nginx:1");
        let old_rev = update_name(&old);
        let mut new = sts(1, "nginx:2");
        new.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
        let pods = [pod(&old, 0, &old_rev, true)];
        let plan = reconcile(&new, &pods, &[], &claims(&new, 1), ts(0)).unwrap();
        assert!(plan.actions.is_empty());
    }

    #[test]
    fn failed_pod_is_deleted_for_recreation() {
        let set = sts(2, "nginx:1");
        let rev = update_name(&set);
        let mut failed = pod(&set, 0, &rev, false);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let plan = reconcile(&set, &[failed], &[], &claims(&set, 1), ts(0)).unwrap();
        assert_eq!(summary(&plan), ["delete web-0"]);
        assert_eq!(plan.events[0].reason, "RecreatingFailedPod");
    }

    #[test]
    fn foreign_and_unnamed_pods_are_ignored() {
        let set = sts(1, "nginx:1");
        let rev = update_name(&set);
        let mut foreign = pod(&set, 0, &rev, true);
        foreign.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "other".into(),
            uid: "other-uid".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        let plan = reconcile(&set, &[foreign], &[], &[], ts(0)).unwrap();
        assert_eq!(summary(&plan), ["claim data-web-0", "create web-0"]);
        assert_eq!(plan.status.replicas, 0);
    }

    #[test]
    fn deleted_set_only_reports_status() {
        let mut set = sts(3, "nginx:1");
        set.metadata.deletion_timestamp = Some(Time(ts(0)));
        let plan = reconcile(&set, &[], &[], &[], ts(0)).unwrap();
        assert!(plan.actions.is_empty());
    }
}
