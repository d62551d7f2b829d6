//! Job controller (upstream `pkg/controller/job`) and the TTL-after-finished controller
//! (`pkg/controller/ttlafterfinished`): runs pods until `completions` succeed (NonIndexed or
//! Indexed), at most `parallelism` at a time, failing the Job past `backoffLimit` or
//! `activeDeadlineSeconds`, and deletes finished Jobs once `ttlSecondsAfterFinished` passed.
//!
//! Finished pods are counted from the pods and the Job's status, without the
//! `batch.kubernetes.io/job-tracking` finalizer: `succeeded` and `failed` never go down, so a
//! finished pod that is deleted is never counted twice or un-counted; Indexed Jobs count the
//! union of `status.completedIndexes` and the indexes of succeeded pods.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::ControllerOptions;
use crate::common::{
    Error, EventSpec, controller_of, controller_reference, emit_event, object_reference,
    pod_is_active, pod_is_ready, seconds_between, selector_matches,
};
use crate::replicaset::{BURST_REPLICAS, PodToDelete, deletion_order, slow_start_batches};

/// Annotation and label carrying an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The `spec.managedBy` value of Jobs this controller manages (unset means the same).
pub const JOB_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

const COMPONENT: &str = "job-controller";

/// Upstream's `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`.
const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(360);

const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";
const MESSAGE_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";
const REASON_BACKOFF_LIMIT: &str = "BackoffLimitExceeded";
const MESSAGE_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
const REASON_DEADLINE: &str = "DeadlineExceeded";
const MESSAGE_DEADLINE: &str = "Job was active longer than specified deadline";

/// What one sync of a Job must do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobPlan {
    /// Pods to create: the completion index of each (None for NonIndexed Jobs).
    pub create: Vec<Option<i32>>,
    /// Active pods to delete.
    pub delete: Vec<PodToDelete>,
    /// The status to write when it differs from the Job's.
    pub status: JobStatus,
    /// Events about the Job itself (pod creations and deletions are reported by the runner).
    pub events: Vec<EventSpec>,
    /// The TTL after finishing has passed: delete the Job (foreground, as upstream).
    pub delete_job: bool,
    /// Sync again after this long (deadline, TTL or pod-failure back-off).
    pub requeue_after: Option<Duration>,
}

fn condition_true(status: Option<&JobStatus>, type_: &str) -> Option<JobCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .cloned()
}

/// Whether the Job has its terminal `Complete` or `Failed` condition.
pub fn job_finished(job: &Job) -> Option<JobCondition> {
    condition_true(job.status.as_ref(), "Complete")
        .or_else(|| condition_true(job.status.as_ref(), "Failed"))
}

/// Sets (or adds) a condition, keeping its transition time when the status does not change.
fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status {
            existing.status = status.into();
            existing.last_transition_time = Some(Time(now));
        }
        existing.reason = Some(reason.into());
        existing.message = Some(message.into());
        existing.last_probe_time = Some(Time(now));
        return;
    }
    conditions.push(JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// A pod's completion index, from its annotation (or label).
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let from = |map: &Option<std::collections::BTreeMap<String, String>>| {
        map.as_ref()?.get(COMPLETION_INDEX)?.parse::<i32>().ok()
    };
    from(&pod.metadata.annotations)
        .or_else(|| from(&pod.metadata.labels))
        .filter(|i| *i >= 0)
}

/// Parses `status.completedIndexes` ("0-2,4", "0,1").
pub fn parse_indexes(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(first), Ok(last)) = (first, last) {
            out.extend((first.max(0)..=last.min(completions - 1)).filter(|i| *i >= 0));
        }
    }
    out
}

/// Renders indexes as upstream does: ranges of three or more as "a-b", pairs as "a,b".
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut intervals: Vec<(i32, i32)> = Vec::new();
    for &i in indexes {
        match intervals.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => intervals.push((i, i)),
        }
    }
    intervals
        .iter()
        .map(|&(first, last)| match last - first {
            0 => first.to_string(),
            1 => format!("{first},{last}"),
            _ => format!("{first}-{last}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// When the pod finished: the latest container termination, else its last condition change.
fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    let terminated = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    terminated.or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .max()
    })
}

/// Upstream's back-off before replacing failed pods: 10 s doubling per failure, at most 6 min.
fn failure_backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(16);
    POD_FAILURE_BACKOFF
        .saturating_mul(1 << exponent)
        .min(MAX_POD_FAILURE_BACKOFF)
}

fn duration_until(now: Timestamp, at: Timestamp) -> Duration {
    let seconds = seconds_between(now, at).max(0);
    // One more second so that the requeue lands after the instant, not just before it.
    Duration::from_secs(seconds.unsigned_abs() + 1)
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// The TTL-after-finished decision: `Some(true)` to delete now, `Some(false)` with a requeue
/// while waiting, `None` when the Job has no TTL or is not finished.
fn ttl_decision(job: &Job, now: Timestamp) -> Option<(bool, Option<Duration>)> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let finished = job_finished(job)?;
    let finished_at = if finished.type_ == "Complete" {
        job.status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .map(|t| t.0)
            .or(finished.last_transition_time.map(|t| t.0))
    } else {
        finished.last_transition_time.map(|t| t.0)
    }?;
    let expires = finished_at
        .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
        .ok()?;
    if expires <= now {
        Some((true, None))
    } else {
        Some((false, Some(duration_until(now, expires))))
    }
}

/// Decides the actions for `job` given the pods it owns (controller reference to its uid).
pub fn reconcile(job: &Job, pods: &[Pod], now: Timestamp) -> Result<JobPlan, Error> {
    let spec = job
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("job has no spec".into()))?;
    let old = job.status.clone().unwrap_or_default();
    let mut plan = JobPlan {
        status: old.clone(),
        ..JobPlan::default()
    };
    if let Some(managed_by) = &spec.managed_by
        && managed_by != JOB_CONTROLLER_NAME
    {
        return Ok(plan);
    }
    if job_finished(job).is_some() {
        if let Some((delete, requeue)) = ttl_decision(job, now) {
            plan.delete_job = delete;
            plan.requeue_after = requeue;
        }
        return Ok(plan);
    }
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(plan);
    }

    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    let owned: Vec<&Pod> = pods
        .iter()
        .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            spec.selector
                .as_ref()
                .is_none_or(|s| selector_matches(s, &labels).unwrap_or(false))
        })
        .collect();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let completions = spec.completions;
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let suspended = spec.suspend == Some(true);
    let only_failed_replaced = spec.pod_replacement_policy.as_deref() == Some("Failed");

    let active: Vec<&Pod> = owned.iter().copied().filter(|p| pod_is_active(p)).collect();
    let terminating_pods: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_some()
                && !matches!(phase(p), Some("Succeeded" | "Failed"))
        })
        .collect();
    // Upstream counts a terminating pod as failed unless only Failed pods are replaced.
    let failed_pods: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| {
            phase(p) == Some("Failed")
                || (!only_failed_replaced
                    && p.metadata.deletion_timestamp.is_some()
                    && phase(p) != Some("Succeeded"))
        })
        .collect();
    let succeeded_pods: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| phase(p) == Some("Succeeded"))
        .collect();

    let mut completed_indexes = BTreeSet::new();
    let succeeded = if indexed {
        let total = completions.unwrap_or(0);
        completed_indexes = parse_indexes(old.completed_indexes.as_deref().unwrap_or(""), total);
        completed_indexes.extend(
            succeeded_pods
                .iter()
                .filter_map(|p| completion_index(p))
                .filter(|i| *i < total),
        );
        i32::try_from(completed_indexes.len()).unwrap_or(i32::MAX)
    } else {
        old.succeeded
            .unwrap_or(0)
            .max(i32::try_from(succeeded_pods.len()).unwrap_or(i32::MAX))
    };
    let failed = old
        .failed
        .unwrap_or(0)
        .max(i32::try_from(failed_pods.len()).unwrap_or(i32::MAX));

    let mut status = JobStatus {
        active: Some(i32::try_from(active.len()).unwrap_or(i32::MAX)),
        ready: Some(i32::try_from(active.iter().filter(|p| pod_is_ready(p)).count()).unwrap_or(0)),
        terminating: Some(i32::try_from(terminating_pods.len()).unwrap_or(i32::MAX)),
        succeeded: Some(succeeded),
        failed: Some(failed),
        completed_indexes: (indexed && !completed_indexes.is_empty())
            .then(|| format_indexes(&completed_indexes)),
        uncounted_terminated_pods: Some(UncountedTerminatedPods::default()),
        ..old.clone()
    };
    let mut conditions = old.conditions.clone().unwrap_or_default();

    // Suspension: no pods run and the deadline clock stops; resuming restarts it.
    let was_suspended = condition_true(Some(&old), "Suspended").is_some();
    if suspended && !was_suspended {
        set_condition(
            &mut conditions,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        );
        plan.events
            .push(EventSpec::normal("Suspended", "Job suspended"));
        status.start_time = None;
    } else if !suspended && was_suspended {
        set_condition(
            &mut conditions,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now,
        );
        plan.events
            .push(EventSpec::normal("Resumed", "Job resumed"));
        status.start_time = Some(Time(now));
    }
    if !suspended && status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }

    // The interim condition is sticky: once a target is reached it is not re-decided.
    let mut target: Option<(&str, &str, &str)> = None;
    if let Some(c) = condition_true(Some(&old), "FailureTarget") {
        let reason = c.reason.unwrap_or_default();
        target = Some(if reason == REASON_DEADLINE {
            ("Failed", REASON_DEADLINE, MESSAGE_DEADLINE)
        } else {
            ("Failed", REASON_BACKOFF_LIMIT, MESSAGE_BACKOFF_LIMIT)
        });
    } else if condition_true(Some(&old), "SuccessCriteriaMet").is_some() {
        target = Some((
            "Complete",
            REASON_COMPLETIONS_REACHED,
            MESSAGE_COMPLETIONS_REACHED,
        ));
    }
    let restarts_on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    let restarts: i32 = if restarts_on_failure {
        active
            .iter()
            .filter_map(|p| p.status.as_ref())
            .flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            })
            .map(|c| c.restart_count)
            .sum()
    } else {
        0
    };
    let exceeds_backoff = failed > backoff_limit
        || (restarts_on_failure
            && if backoff_limit == 0 {
                restarts > 0
            } else {
                restarts >= backoff_limit
            });
    let deadline_at = spec.active_deadline_seconds.and_then(|seconds| {
        status
            .start_time
            .as_ref()?
            .0
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .ok()
    });
    if target.is_none() {
        let complete = match completions {
            Some(c) => succeeded >= c,
            // Without completions the first success ends the Job once nothing else runs.
            None => succeeded > 0 && active.is_empty(),
        };
        if exceeds_backoff {
            target = Some(("Failed", REASON_BACKOFF_LIMIT, MESSAGE_BACKOFF_LIMIT));
        } else if !suspended && deadline_at.is_some_and(|at| at <= now) {
            target = Some(("Failed", REASON_DEADLINE, MESSAGE_DEADLINE));
        } else if complete {
            target = Some((
                "Complete",
                REASON_COMPLETIONS_REACHED,
                MESSAGE_COMPLETIONS_REACHED,
            ));
        }
        if let Some((kind, reason, message)) = target {
            let interim = if kind == "Failed" {
                "FailureTarget"
            } else {
                "SuccessCriteriaMet"
            };
            set_condition(&mut conditions, interim, "True", reason, message, now);
        }
    }

    let to_delete = |pods: Vec<&Pod>| -> Vec<PodToDelete> {
        pods.iter()
            .map(|p| PodToDelete {
                name: p.name_any(),
                uid: p.metadata.uid.clone(),
            })
            .collect()
    };
    if let Some((kind, reason, message)) = target {
        // The terminal condition waits until no pod of the Job runs or terminates any more.
        plan.delete = to_delete(active.clone());
        let terminating = terminating_pods.len() + plan.delete.len();
        status.terminating = Some(i32::try_from(terminating).unwrap_or(i32::MAX));
        status.active = Some(0);
        status.ready = Some(0);
        if terminating == 0 {
            set_condition(&mut conditions, kind, "True", reason, message, now);
            if kind == "Complete" {
                status.completion_time = Some(Time(now));
                plan.events
                    .push(EventSpec::normal("Completed", "Job completed"));
            } else {
                plan.events.push(EventSpec::warning(reason, message));
            }
        }
    } else if suspended {
        plan.delete = to_delete(active.clone());
    } else {
        let active_count = i32::try_from(active.len()).unwrap_or(i32::MAX);
        // Replacements of failed pods wait for the back-off of the failures seen so far.
        let last_failure = failed_pods.iter().filter_map(|p| finish_time(p)).max();
        let backoff_until = last_failure.and_then(|at| {
            at.checked_add(jiff::SignedDuration::try_from(failure_backoff(failed)).ok()?)
                .ok()
        });
        let backing_off = backoff_until.filter(|until| *until > now);
        if indexed {
            let total = completions.unwrap_or(0);
            let mut running: HashSet<i32> = HashSet::new();
            let mut excess: Vec<&Pod> = Vec::new();
            let mut sorted = active.clone();
            sorted.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            for pod in sorted {
                match completion_index(pod) {
                    Some(i)
                        if i < total && !completed_indexes.contains(&i) && running.insert(i) => {}
                    // Duplicate, finished or out-of-range indexes are removed.
                    _ => excess.push(pod),
                }
            }
            let running_count = i32::try_from(running.len()).unwrap_or(i32::MAX);
            if backing_off.is_none() {
                let room = usize::try_from((parallelism - running_count).max(0)).unwrap_or(0);
                plan.create = (0..total)
                    .filter(|i| !completed_indexes.contains(i) && !running.contains(i))
                    .take(room.min(BURST_REPLICAS))
                    .map(Some)
                    .collect();
            }
            let mut extra: Vec<&Pod> = excess;
            if running_count > parallelism {
                let mut keep: Vec<&Pod> = active
                    .iter()
                    .copied()
                    .filter(|p| !extra.iter().any(|e| e.metadata.uid == p.metadata.uid))
                    .collect();
                keep.sort_by(|a, b| deletion_order(a, b, now));
                let surplus = usize::try_from(running_count - parallelism).unwrap_or(0);
                extra.extend(keep.into_iter().take(surplus));
            }
            plan.delete = to_delete(extra);
        } else {
            let want = match completions {
                Some(c) => (c - succeeded).min(parallelism).max(0),
                None if succeeded > 0 => active_count.min(parallelism),
                None => parallelism,
            };
            if active_count < want && backing_off.is_none() {
                plan.create = vec![
                    None;
                    usize::try_from(want - active_count)
                        .unwrap_or(0)
                        .min(BURST_REPLICAS)
                ];
            } else if active_count > want {
                let mut victims = active.clone();
                victims.sort_by(|a, b| deletion_order(a, b, now));
                let surplus = usize::try_from(active_count - want).unwrap_or(0);
                plan.delete = to_delete(victims.into_iter().take(surplus).collect());
            }
        }
        if let Some(until) = backing_off {
            plan.requeue_after = Some(duration_until(now, until));
        }
        let created = i32::try_from(plan.create.len()).unwrap_or(i32::MAX);
        let deleted = i32::try_from(plan.delete.len()).unwrap_or(i32::MAX);
        status.active = Some(active_count + created - deleted);
        status.terminating =
            Some(i32::try_from(terminating_pods.len()).unwrap_or(i32::MAX) + deleted);
        if let Some(at) = deadline_at {
            plan.requeue_after = earliest(plan.requeue_after, Some(duration_until(now, at)));
        }
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    plan.status = status;
    Ok(plan)
}

/// The pod a Job creates: its template, `generateName: <job>-` (`<job>-<index>-` when
/// Indexed), the index annotation, label, hostname and `JOB_COMPLETION_INDEX` variable.
pub fn pod_for(job: &Job, index: Option<i32>) -> Result<Pod, Error> {
    let template: PodTemplateSpec = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .ok_or_else(|| Error::InvalidObject("job has no pod template".into()))?;
    let owner = controller_reference(job)
        .ok_or_else(|| Error::InvalidObject("job has no name or uid".into()))?;
    let name = job.name_any();
    let template_meta = template.metadata.unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
            if spec.hostname.as_deref().is_none_or(str::is_empty) {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            let variable = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            for container in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                let env = container.env.get_or_insert_default();
                if !env.iter().any(|e| e.name == variable.name) {
                    env.push(variable.clone());
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// Creations and deletions issued but not yet seen in the pod cache, so that a lagging cache
/// never makes the Job run more than `parallelism` pods (upstream's ControllerExpectations).
#[derive(Debug, Default)]
struct Expectations {
    pending_creates: HashSet<String>,
    pending_deletes: HashSet<String>,
    set_at: Option<Instant>,
}

const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

impl Expectations {
    fn satisfied(&self, pods: &Store<Pod>, namespace: &str) -> bool {
        if self
            .set_at
            .is_none_or(|t| t.elapsed() > EXPECTATIONS_TIMEOUT)
        {
            return true;
        }
        let created_seen = self
            .pending_creates
            .iter()
            .all(|name| pods.get(&ObjectRef::new(name).within(namespace)).is_some());
        let deleted_seen = self.pending_deletes.iter().all(|uid| {
            pods.find(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        });
        created_seen && deleted_seen
    }
}

struct Context {
    client: Client,
    options: ControllerOptions,
    pods: Store<Pod>,
    expectations: Mutex<HashMap<String, Expectations>>,
}

async fn sync(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let namespace = job.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", job.name_any());
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let satisfied = {
        let guard = ctx.expectations.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .get(&key)
            .is_none_or(|e| e.satisfied(&ctx.pods, &namespace))
    };
    if !satisfied {
        // The pod watch wakes this Job again once the cache caught up.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let pods: Vec<Pod> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
        .map(|p| (*p).clone())
        .collect();
    let plan = reconcile(&job, &pods, Timestamp::now())?;
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let reference = object_reference(job.as_ref());

    if plan.delete_job {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match job_api.delete(&job.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Action::await_change());
    }

    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut status = plan.status.clone();
    if !plan.create.is_empty() || !plan.delete.is_empty() {
        let mut expectation = Expectations {
            set_at: Some(Instant::now()),
            ..Default::default()
        };
        let mut failed_creates = 0;
        let mut remaining: &[Option<i32>] = &plan.create;
        'batches: for batch in slow_start_batches(plan.create.len()) {
            let (now_batch, rest) = remaining.split_at(batch);
            remaining = rest;
            let templates = now_batch
                .iter()
                .map(|index| pod_for(&job, *index))
                .collect::<Result<Vec<_>, _>>()?;
            let params = PostParams::default();
            let results =
                futures::future::join_all(templates.iter().map(|t| pod_api.create(&params, t)))
                    .await;
            let mut failed = false;
            for result in results {
                match result {
                    Ok(pod) => {
                        let name = pod.name_any();
                        let event =
                            EventSpec::normal("SuccessfulCreate", format!("Created pod: {name}"));
                        emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                        expectation.pending_creates.insert(name);
                    }
                    Err(error) => {
                        failed = true;
                        failed_creates += 1;
                        let event =
                            EventSpec::warning("FailedCreate", format!("Error creating: {error}"));
                        emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                    }
                }
            }
            if failed {
                failed_creates += remaining.len();
                break 'batches;
            }
        }
        for victim in &plan.delete {
            let params = DeleteParams {
                preconditions: victim.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pod_api.delete(&victim.name, &params).await {
                Ok(_) => {
                    let event = EventSpec::normal(
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", victim.name),
                    );
                    emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                    if let Some(uid) = &victim.uid {
                        expectation.pending_deletes.insert(uid.clone());
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(error) => {
                    let event =
                        EventSpec::warning("FailedDelete", format!("Error deleting: {error}"));
                    emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                }
            }
        }
        if failed_creates > 0 {
            let failed = i32::try_from(failed_creates).unwrap_or(i32::MAX);
            status.active = status.active.map(|a| (a - failed).max(0));
        }
        ctx.expectations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, expectation);
    }

    if job.status.as_ref() != Some(&status) {
        // The resourceVersion makes a write from a stale cached Job fail instead of undoing
        // a newer status.
        let mut patch = serde_json::json!({
            "metadata": {"resourceVersion": job.metadata.resource_version},
            "status": status,
        });
        if status.start_time.is_none() {
            // A merge patch keeps what it omits: suspending must clear the start time.
            patch["status"]["startTime"] = serde_json::Value::Null;
        }
        match job_api
            .patch_status(
                &job.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) => return Err(e.into()),
        }
        for event in &plan.events {
            emit_event(&ctx.client, &reference, event, COMPONENT).await;
        }
    }
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(ctx.options.resync_period),
    ))
}

/// Runs the Job and TTL-after-finished controllers until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let job_api: Api<Job> = Api::all(client.clone());
    let pod_api: Api<Pod> = Api::all(client.clone());
    let (pods, writer) = reflector::store();
    let pod_stream = watcher(pod_api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let concurrency = options.concurrency;
    let context = Arc::new(Context {
        client,
        options,
        pods,
        expectations: Mutex::default(),
    });
    Controller::new(job_api, watcher::Config::default())
        .watches_stream(pod_stream, |pod: Pod| {
            let namespace = pod.namespace().unwrap_or_default();
            controller_of(&pod.metadata)
                .filter(|owner| owner.kind == "Job")
                .map(|owner| ObjectRef::new(&owner.name).within(&namespace))
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "job sync failed");
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
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
    use std::collections::BTreeMap;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn selector_labels() -> BTreeMap<String, String> {
        BTreeMap::from([(
            "batch.kubernetes.io/controller-uid".to_string(),
            "job-uid".to_string(),
        )])
    }

    fn job(completions: Option<i32>, parallelism: i32) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some("job-uid".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                backoff_limit: Some(6),
                completion_mode: Some("NonIndexed".into()),
                suspend: Some(false),
                selector: Some(LabelSelector {
                    match_labels: Some(selector_labels()),
                    match_expressions: None,
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(selector_labels()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        containers: vec![Container {
                            name: "c".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn indexed(completions: i32, parallelism: i32) -> Job {
        let mut j = job(Some(completions), parallelism);
        if let Some(spec) = j.spec.as_mut() {
            spec.completion_mode = Some("Indexed".into());
        }
        j
    }

    fn pod(name: &str, phase: &str, index: Option<i32>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("{name}-uid")),
                labels: Some(selector_labels()),
                annotations: index
                    .map(|i| BTreeMap::from([(COMPLETION_INDEX.into(), i.to_string())])),
                creation_timestamp: Some(Time(ts(0))),
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: "pi".into(),
                    uid: "job-uid".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn with_status(mut j: Job, status: JobStatus) -> Job {
        j.status = Some(status);
        j
    }

    fn condition(plan: &JobPlan, type_: &str) -> Option<JobCondition> {
        condition_true(Some(&plan.status), type_)
    }

    #[test]
    fn starts_parallelism_pods_and_sets_start_time() {
        let plan = reconcile(&job(Some(3), 2), &[], ts(0)).unwrap();
        assert_eq!(plan.create, vec![None, None]);
        assert_eq!(plan.status.active, Some(2));
        assert_eq!(plan.status.start_time, Some(Time(ts(0))));
        assert_eq!(plan.status.succeeded, Some(0));
        assert_eq!(plan.status.ready, Some(0));
    }

    #[test]
    fn never_runs_more_than_the_remaining_completions() {
        let pods = vec![
            pod("a", "Succeeded", None),
            pod("b", "Succeeded", None),
            pod("c", "Running", None),
        ];
        let plan = reconcile(&job(Some(3), 2), &pods, ts(5)).unwrap();
        assert!(plan.create.is_empty());
        assert!(plan.delete.is_empty());
        assert_eq!(plan.status.succeeded, Some(2));
        assert_eq!(plan.status.active, Some(1));
    }

    #[test]
    fn excess_active_pods_are_deleted_when_parallelism_drops() {
        let pods = vec![
            pod("a", "Running", None),
            pod("b", "Running", None),
            pod("c", "Pending", None),
        ];
        let plan = reconcile(&job(Some(10), 1), &pods, ts(5)).unwrap();
        assert_eq!(plan.delete.len(), 2);
        assert_eq!(plan.delete[0].name, "c");
        assert_eq!(plan.status.active, Some(1));
        assert_eq!(plan.status.terminating, Some(2));
    }

    #[test]
    fn completion_sets_success_criteria_then_complete() {
        let pods: Vec<Pod> = (0..3)
            .map(|i| pod(&format!("p{i}"), "Succeeded", None))
            .collect();
        let started = with_status(
            job(Some(3), 2),
            JobStatus {
                start_time: Some(Time(ts(0))),
                ..Default::default()
            },
        );
        let plan = reconcile(&started, &pods, ts(9)).unwrap();
        assert_eq!(plan.status.succeeded, Some(3));
        let met = condition(&plan, "SuccessCriteriaMet").unwrap();
        assert_eq!(met.reason.as_deref(), Some("CompletionsReached"));
        let complete = condition(&plan, "Complete").unwrap();
        assert_eq!(
            complete.message.as_deref(),
            Some("Reached expected number of succeeded pods")
        );
        assert_eq!(plan.status.completion_time, Some(Time(ts(9))));
        assert_eq!(
            plan.events,
            vec![EventSpec::normal("Completed", "Job completed")]
        );
        // Conditions come in upstream's order: the interim one first.
        let types: Vec<String> = plan
            .status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.clone())
            .collect();
        assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    }

    #[test]
    fn terminal_condition_waits_for_terminating_pods() {
        let mut lingering = pod("x", "Running", None);
        lingering.metadata.deletion_timestamp = Some(Time(ts(1)));
        let pods = vec![pod("a", "Succeeded", None), lingering];
        let plan = reconcile(&job(Some(1), 1), &pods, ts(2)).unwrap();
        assert!(condition(&plan, "SuccessCriteriaMet").is_some());
        assert!(condition(&plan, "Complete").is_none());
        assert_eq!(plan.status.terminating, Some(1));
        // Once it is gone the Job completes, keeping the earlier interim condition.
        let next = with_status(job(Some(1), 1), plan.status.clone());
        let plan = reconcile(&next, &[pod("a", "Succeeded", None)], ts(3)).unwrap();
        assert!(condition(&plan, "Complete").is_some());
        assert_eq!(
            condition(&plan, "SuccessCriteriaMet")
                .unwrap()
                .last_transition_time,
            Some(Time(ts(2)))
        );
    }

    #[test]
    fn deleted_finished_pods_are_not_uncounted() {
        let counted = with_status(
            job(Some(3), 1),
            JobStatus {
                succeeded: Some(2),
                failed: Some(1),
                start_time: Some(Time(ts(0))),
                ..Default::default()
            },
        );
        // The finished pods were deleted: the counts stay, one more pod runs.
        let plan = reconcile(&counted, &[], ts(5)).unwrap();
        assert_eq!(plan.status.succeeded, Some(2));
        assert_eq!(plan.status.failed, Some(1));
        assert_eq!(plan.create.len(), 1);
    }

    #[test]
    fn backoff_limit_fails_the_job_and_deletes_active_pods() {
        let mut j = job(Some(5), 2);
        if let Some(spec) = j.spec.as_mut() {
            spec.backoff_limit = Some(1);
        }
        let pods = vec![
            pod("f1", "Failed", None),
            pod("f2", "Failed", None),
            pod("r", "Running", None),
        ];
        let plan = reconcile(&j, &pods, ts(5)).unwrap();
        let target = condition(&plan, "FailureTarget").unwrap();
        assert_eq!(target.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(
            target.message.as_deref(),
            Some("Job has reached the specified backoff limit")
        );
        assert!(condition(&plan, "Failed").is_none());
        assert_eq!(plan.delete.len(), 1);
        assert!(plan.create.is_empty());
        let next = with_status(j, plan.status);
        let plan = reconcile(&next, &pods[..2], ts(6)).unwrap();
        assert!(condition(&plan, "Failed").is_some());
        assert_eq!(
            plan.events,
            vec![EventSpec::warning(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit"
            )]
        );
        assert_eq!(plan.status.completion_time, None);
    }

    #[test]
    fn failed_pods_are_replaced_after_the_backoff() {
        let mut failed = pod("f", "Failed", None);
        if let Some(status) = failed.status.as_mut() {
            status.conditions = Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: "False".into(),
                last_transition_time: Some(Time(ts(100))),
                ..Default::default()
            }]);
        }
        let plan = reconcile(&job(Some(1), 1), std::slice::from_ref(&failed), ts(103)).unwrap();
        assert!(plan.create.is_empty());
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(8)));
        let plan = reconcile(&job(Some(1), 1), &[failed], ts(111)).unwrap();
        assert_eq!(plan.create.len(), 1);
        assert_eq!(failure_backoff(3), Duration::from_secs(40));
        assert_eq!(failure_backoff(20), Duration::from_secs(360));
    }

    #[test]
    fn active_deadline_fails_the_job() {
        let mut j = job(Some(1), 1);
        if let Some(spec) = j.spec.as_mut() {
            spec.active_deadline_seconds = Some(30);
        }
        let j = with_status(
            j,
            JobStatus {
                start_time: Some(Time(ts(0))),
                ..Default::default()
            },
        );
        let running = [pod("r", "Running", None)];
        let plan = reconcile(&j, &running, ts(10)).unwrap();
        assert!(condition(&plan, "FailureTarget").is_none());
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(21)));
        let plan = reconcile(&j, &running, ts(30)).unwrap();
        let target = condition(&plan, "FailureTarget").unwrap();
        assert_eq!(target.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(
            target.message.as_deref(),
            Some("Job was active longer than specified deadline")
        );
        assert_eq!(plan.delete.len(), 1);
        let next = with_status(j, plan.status);
        let plan = reconcile(&next, &[], ts(31)).unwrap();
        assert_eq!(
            condition(&plan, "Failed").unwrap().reason.as_deref(),
            Some("DeadlineExceeded")
        );
        assert_eq!(plan.events[0].reason, "DeadlineExceeded");
    }

    #[test]
    fn suspend_deletes_pods_and_resume_restarts_the_clock() {
        let mut j = job(Some(2), 2);
        if let Some(spec) = j.spec.as_mut() {
            spec.suspend = Some(true);
        }
        let plan = reconcile(&j, &[pod("r", "Running", None)], ts(5)).unwrap();
        assert_eq!(plan.delete.len(), 1);
        assert!(plan.create.is_empty());
        let suspended = condition(&plan, "Suspended").unwrap();
        assert_eq!(suspended.reason.as_deref(), Some("JobSuspended"));
        assert_eq!(plan.status.start_time, None);
        assert_eq!(
            plan.events,
            vec![EventSpec::normal("Suspended", "Job suspended")]
        );
        let mut resumed = with_status(j, plan.status);
        if let Some(spec) = resumed.spec.as_mut() {
            spec.suspend = Some(false);
        }
        let plan = reconcile(&resumed, &[], ts(50)).unwrap();
        assert_eq!(plan.create.len(), 2);
        assert_eq!(plan.status.start_time, Some(Time(ts(50))));
        let cond = plan
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Suspended")
            .unwrap();
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_deref()),
            ("False", Some("JobResumed"))
        );
    }

    #[test]
    fn no_completions_ends_with_the_first_success() {
        let pods = vec![pod("a", "Succeeded", None), pod("b", "Running", None)];
        let plan = reconcile(&job(None, 2), &pods, ts(5)).unwrap();
        assert!(plan.create.is_empty(), "no new pods after a success");
        assert!(condition(&plan, "SuccessCriteriaMet").is_none());
        let plan = reconcile(&job(None, 2), &pods[..1], ts(6)).unwrap();
        assert!(condition(&plan, "Complete").is_some());
    }

    #[test]
    fn indexed_jobs_create_missing_indexes_and_track_completed_ones() {
        let pods = vec![pod("a", "Succeeded", Some(0)), pod("b", "Running", Some(2))];
        let plan = reconcile(&indexed(5, 3), &pods, ts(5)).unwrap();
        assert_eq!(plan.create, vec![Some(1), Some(3)]);
        assert_eq!(plan.status.completed_indexes.as_deref(), Some("0"));
        assert_eq!(plan.status.succeeded, Some(1));
        // A second pod for a running index and one for a completed index are removed.
        let pods = vec![
            pod("a", "Succeeded", Some(0)),
            pod("b", "Running", Some(2)),
            pod("c", "Running", Some(2)),
            pod("d", "Running", Some(0)),
        ];
        let plan = reconcile(&indexed(3, 3), &pods, ts(5)).unwrap();
        let deleted: BTreeSet<&str> = plan.delete.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(deleted.len(), 2);
        assert!(deleted.contains("d"));
        assert_eq!(plan.create, vec![Some(1)]);
    }

    #[test]
    fn indexed_job_completes_with_completed_indexes() {
        let pods: Vec<Pod> = (0..3)
            .map(|i| pod(&format!("p{i}"), "Succeeded", Some(i)))
            .collect();
        let plan = reconcile(&indexed(3, 3), &pods, ts(5)).unwrap();
        assert_eq!(plan.status.completed_indexes.as_deref(), Some("0-2"));
        assert!(condition(&plan, "Complete").is_some());
        // Counted indexes survive their pods.
        let partial = with_status(
            indexed(3, 1),
            JobStatus {
                completed_indexes: Some("0,1".into()),
                ..Default::default()
            },
        );
        let plan = reconcile(&partial, &[], ts(5)).unwrap();
        assert_eq!(plan.status.succeeded, Some(2));
        assert_eq!(plan.create, vec![Some(2)]);
    }

    #[test]
    fn index_sets_format_like_upstream() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6,7");
        assert_eq!(parse_indexes("0-2,4,6,7", 10), set);
        assert_eq!(parse_indexes("0-9", 3), [0, 1, 2].into_iter().collect());
    }

    #[test]
    fn indexed_pods_carry_index_hostname_and_env() {
        let pod = pod_for(&indexed(3, 1), Some(2)).unwrap();
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(
            pod.metadata
                .annotations
                .unwrap()
                .get(COMPLETION_INDEX)
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(
            pod.metadata
                .labels
                .unwrap()
                .get(COMPLETION_INDEX)
                .map(String::as_str),
            Some("2")
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
        let env = spec.containers[0].env.clone().unwrap();
        assert_eq!(env[0].name, "JOB_COMPLETION_INDEX");
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
        assert_eq!(owner.block_owner_deletion, Some(true));
        let plain = pod_for(&job(Some(1), 1), None).unwrap();
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
        assert!(plain.spec.unwrap().hostname.is_none());
    }

    #[test]
    fn ttl_deletes_finished_jobs_when_it_expires() {
        let mut j = job(Some(1), 1);
        if let Some(spec) = j.spec.as_mut() {
            spec.ttl_seconds_after_finished = Some(60);
        }
        let finished = with_status(
            j,
            JobStatus {
                completion_time: Some(Time(ts(100))),
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(100))),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        );
        let plan = reconcile(&finished, &[], ts(130)).unwrap();
        assert!(!plan.delete_job);
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(31)));
        assert!(plan.create.is_empty());
        let plan = reconcile(&finished, &[], ts(160)).unwrap();
        assert!(plan.delete_job);
        // Without a TTL a finished Job is left alone.
        let mut kept = finished.clone();
        if let Some(spec) = kept.spec.as_mut() {
            spec.ttl_seconds_after_finished = None;
        }
        let plan = reconcile(&kept, &[], ts(1000)).unwrap();
        assert!(!plan.delete_job);
        assert_eq!(Some(&plan.status), kept.status.as_ref());
    }

    #[test]
    fn jobs_managed_elsewhere_are_left_alone() {
        let mut j = job(Some(1), 1);
        if let Some(spec) = j.spec.as_mut() {
            spec.managed_by = Some("example.com/other".into());
        }
        let plan = reconcile(&j, &[], ts(0)).unwrap();
        assert!(plan.create.is_empty());
        assert_eq!(plan.status, JobStatus::default());
    }

    #[test]
    fn restarts_count_against_the_backoff_limit_with_on_failure() {
        let mut j = job(Some(1), 1);
        if let Some(spec) = j.spec.as_mut() {
            spec.backoff_limit = Some(2);
            if let Some(pod_spec) = spec.template.spec.as_mut() {
                pod_spec.restart_policy = Some("OnFailure".into());
            }
        }
        let mut restarting = pod("r", "Running", None);
        if let Some(status) = restarting.status.as_mut() {
            status.container_statuses = Some(vec![k8s_openapi::api::core::v1::ContainerStatus {
                name: "c".into(),
                restart_count: 2,
                ..Default::default()
            }]);
        }
        let plan = reconcile(&j, &[restarting], ts(0)).unwrap();
        assert!(condition(&plan, "FailureTarget").is_some());
    }
}
