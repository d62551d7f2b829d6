//! CronJob controller (upstream `pkg/controller/cronjob`, the v2 controller): creates a Job
//! named `<cronjob>-<scheduled minutes since epoch>` at each schedule time, honouring
//! `timeZone`, `startingDeadlineSeconds`, `concurrencyPolicy` and `suspend`, keeps
//! `status.active`, `lastScheduleTime` and `lastSuccessfulTime`, trims finished Jobs to the
//! history limits, and requeues itself for the next schedule time.
//!
//! Schedules without `timeZone` run in UTC (upstream uses the controller-manager's local zone).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use timonel_api::cron::{self, Schedule};

use crate::ControllerOptions;
use crate::common::{
    Error, EventSpec, controller_of, controller_reference, emit_event, object_reference,
};
use crate::job::job_finished;

/// Annotation with the Job's scheduled time (RFC 3339 in the CronJob's time zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

const COMPONENT: &str = "cronjob-controller";

/// Upstream's `nextScheduleDelta`: wake a little after the schedule time, never just before.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// A Job of the CronJob to delete (history limit or `Replace`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobToDelete {
    pub name: String,
    pub uid: Option<String>,
}

/// What one sync of a CronJob must do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CronJobPlan {
    /// Jobs to delete (background propagation, as upstream), each with a SuccessfulDelete Event.
    pub delete: Vec<JobToDelete>,
    /// The Job to create and its scheduled time; on success the runner adds it to
    /// `status.active` and sets `lastScheduleTime`.
    pub create: Option<(Job, Timestamp)>,
    /// Status after this sync's bookkeeping (without the Job still to create).
    pub status: CronJobStatus,
    pub events: Vec<EventSpec>,
    /// When to look again: just after the next schedule time.
    pub requeue_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missed {
    None,
    Few,
    Many,
}

/// The CronJob's time zone (`spec.timeZone`, UTC when unset); `None` when unknown.
pub fn time_zone(cj: &CronJob) -> Option<TimeZone> {
    match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        None => Some(TimeZone::UTC),
        Some(name) => cron::load_time_zone(name),
    }
}

/// Upstream's `getJobName`: the scheduled time in minutes makes creation idempotent.
pub fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!("{}-{}", cj.name_any(), scheduled.as_second().div_euclid(60))
}

/// Go's `time.RFC3339` of `at` in `zone` ("Z" for a zero offset).
fn rfc3339_in(at: Timestamp, zone: &TimeZone) -> String {
    let zoned = at.to_zoned(zone.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Go's `time.RFC1123Z` in UTC, as in the MissSchedule message.
fn rfc1123z(at: Timestamp) -> String {
    at.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// Upstream's `mostRecentScheduleTime`: the start of the window, the latest schedule time in
/// it that is not after `now`, and how many were missed.
fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
    zone: &TimeZone,
    include_starting_deadline: bool,
) -> Result<(Timestamp, Option<Timestamp>, Missed), String> {
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(now);
    if include_starting_deadline
        && let Some(deadline) = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds)
        && let Ok(limit) = now.checked_sub(jiff::SignedDuration::from_secs(deadline))
        && limit > earliest
    {
        earliest = limit;
    }
    let Some(t1) = schedule.next(earliest, zone) else {
        return Ok((earliest, None, Missed::None));
    };
    if now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    let Some(t2) = schedule.next(t1, zone) else {
        return Ok((earliest, Some(t1), Missed::None));
    };
    if now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    let interval = (t2.as_second() - t1.as_second()).max(0);
    if interval < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    // A rough count from the interval, then an exact walk over the last two intervals, so
    // that irregular schedules ("30 6-16/4 * * 1-5") land on a real schedule time.
    let elapsed = now.as_second() - t1.as_second();
    let missed = elapsed / interval + 1;
    let potential = Timestamp::from_second(t1.as_second() + (missed - 2) * interval)
        .map_err(|e| e.to_string())?;
    let mut most_recent = None;
    let mut t = schedule.next(potential, zone);
    while let Some(at) = t.filter(|at| *at <= now) {
        most_recent = Some(at);
        t = schedule.next(at, zone);
    }
    let kind = if missed > 100 {
        Missed::Many
    } else if missed > 0 {
        Missed::Few
    } else {
        Missed::None
    };
    Ok((earliest, most_recent, kind))
}

/// Upstream's `nextScheduleTimeDuration`: how long until just after the next schedule time.
fn next_schedule_duration(
    cj: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
    zone: &TimeZone,
) -> Option<Duration> {
    let base = match most_recent_schedule_time(cj, now, schedule, zone, false) {
        Err(_) => now,
        Ok((_, Some(recent), _)) => recent,
        Ok((earliest, None, Missed::None)) => earliest,
        Ok((_, None, _)) => now,
    };
    let next = schedule.next(base, zone)?;
    let millis = next.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(u64::try_from(millis.max(0)).unwrap_or(0)) + NEXT_SCHEDULE_DELTA)
}

fn is_succeeded(job: &Job) -> bool {
    job_finished(job).is_some_and(|c| c.type_ == "Complete")
}

/// Upstream's `byJobStartTime`: oldest start first, Jobs not started last, names break ties.
fn by_start_time(a: &&Job, b: &&Job) -> std::cmp::Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ => a.name_any().cmp(&b.name_any()),
    }
}

/// The Job for one schedule time (upstream `getJobFromTemplate2`).
pub fn job_from_template(
    cj: &CronJob,
    scheduled: Timestamp,
    zone: &TimeZone,
) -> Result<Job, Error> {
    let spec = cj
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("cronjob has no spec".into()))?;
    let template_meta = spec.job_template.metadata.clone().unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, zone));
    let owner = controller_reference(cj)
        .ok_or_else(|| Error::InvalidObject("cronjob has no name or uid".into()))?;
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: spec.job_template.spec.clone(),
        status: None,
    })
}

/// The ObjectReference the CronJob keeps in `status.active` for a Job.
pub fn job_reference(job: &Job) -> ObjectReference {
    object_reference(job)
}

/// Decides the actions for `cj` given the Jobs it controls; `missing` names active Jobs the
/// runner confirmed are gone from the API server.
pub fn reconcile(
    cj: &CronJob,
    jobs: &[Job],
    missing: &HashSet<String>,
    now: Timestamp,
) -> Result<CronJobPlan, Error> {
    let spec = cj
        .spec
        .as_ref()
        .ok_or_else(|| Error::InvalidObject("cronjob has no spec".into()))?;
    let mut plan = CronJobPlan::default();
    let mut status = cj.status.clone().unwrap_or_default();
    let mut active: Vec<ObjectReference> = status.active.clone().unwrap_or_default();
    let in_active = |active: &[ObjectReference], uid: &Option<String>| {
        active.iter().any(|r| r.uid.is_some() && r.uid == *uid)
    };

    // History limits: the oldest finished Jobs beyond each limit go.
    let mut deleted: HashSet<String> = HashSet::new();
    for (want_complete, limit) in [
        (true, spec.successful_jobs_history_limit),
        (false, spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Job> = jobs
            .iter()
            .filter(|j| job_finished(j).is_some_and(|c| (c.type_ == "Complete") == want_complete))
            .collect();
        finished.sort_by(by_start_time);
        let excess = finished
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        for job in finished.into_iter().take(excess) {
            plan.delete.push(JobToDelete {
                name: job.name_any(),
                uid: job.metadata.uid.clone(),
            });
            active.retain(|r| r.uid != job.metadata.uid);
            deleted.insert(job.name_any());
        }
    }

    for job in jobs.iter().filter(|j| !deleted.contains(&j.name_any())) {
        let found = in_active(&active, &job.metadata.uid);
        if let Some(condition) = job_finished(job) {
            if found {
                active.retain(|r| r.uid != job.metadata.uid);
                plan.events.push(EventSpec::normal(
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, condition: {}",
                        job.name_any(),
                        condition.type_
                    ),
                ));
            }
            if is_succeeded(job)
                && let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.clone())
                && status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|last| done.0 > last.0)
            {
                status.last_successful_time = Some(done);
            }
        }
    }
    for reference in active.clone() {
        let name = reference.name.clone().unwrap_or_default();
        if missing.contains(&name) {
            plan.events.push(EventSpec::normal(
                "MissingJob",
                format!("Active job went missing: {name}"),
            ));
            active.retain(|r| r.uid != reference.uid);
        }
    }
    status.active = (!active.is_empty()).then_some(active.clone());
    plan.status = status;

    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(plan);
    }
    let Some(zone) = time_zone(cj) else {
        let name = spec.time_zone.clone().unwrap_or_default();
        plan.events.push(EventSpec::warning(
            "UnknownTimeZone",
            format!("invalid timeZone: {name:?}: unknown time zone {name}"),
        ));
        return Ok(plan);
    };
    if spec.suspend == Some(true) {
        return Ok(plan);
    }
    if spec.schedule.contains("TZ") {
        plan.events.push(EventSpec::warning(
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                spec.schedule
            ),
        ));
    }
    let schedule = match cron::parse(&spec.schedule) {
        Ok(schedule) => schedule,
        Err(error) => {
            plan.events.push(EventSpec::warning(
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {error}", spec.schedule),
            ));
            return Ok(plan);
        }
    };
    let requeue = next_schedule_duration(cj, now, &schedule, &zone);
    plan.requeue_after = requeue;
    let scheduled = match most_recent_schedule_time(cj, now, &schedule, &zone, true) {
        Err(error) => {
            plan.events.push(EventSpec::warning(
                "InvalidSchedule",
                format!("invalid schedule: {} : {error}", spec.schedule),
            ));
            plan.requeue_after = None;
            return Ok(plan);
        }
        Ok((_, None, _)) => return Ok(plan),
        Ok((_, Some(at), missed)) => {
            if missed == Missed::Many {
                plan.events.push(EventSpec::warning(
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                ));
            }
            at
        }
    };
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled.as_second() + deadline < now.as_second()
    {
        plan.events.push(EventSpec::warning(
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                rfc1123z(scheduled)
            ),
        ));
        return Ok(plan);
    }
    let name = job_name(cj, scheduled);
    let already = active
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || plan
            .status
            .last_schedule_time
            .as_ref()
            .is_some_and(|t| t.0 == scheduled);
    if already {
        return Ok(plan);
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            plan.events.push(EventSpec::normal(
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            ));
            return Ok(plan);
        }
        Some("Replace") => {
            for reference in &active {
                plan.delete.push(JobToDelete {
                    name: reference.name.clone().unwrap_or_default(),
                    uid: reference.uid.clone(),
                });
            }
            plan.status.active = None;
        }
        _ => {}
    }
    plan.create = Some((job_from_template(cj, scheduled, &zone)?, scheduled));
    Ok(plan)
}

struct Context {
    client: Client,
    jobs: Store<Job>,
}

fn owned_by(job: &Job, cj: &CronJob) -> bool {
    job.metadata.namespace == cj.metadata.namespace
        && controller_of(&job.metadata)
            .is_some_and(|o| o.kind == "CronJob" && Some(&o.name) == cj.metadata.name.as_ref())
}

fn status_patch(cj: &CronJob, status: &CronJobStatus) -> serde_json::Value {
    // Explicit nulls: a merge patch must remove an emptied active list or an unset time.
    serde_json::json!({
        "metadata": {"resourceVersion": cj.metadata.resource_version},
        "status": {
            "active": status.active,
            "lastScheduleTime": status.last_schedule_time,
            "lastSuccessfulTime": status.last_successful_time,
        }
    })
}

async fn sync(cj: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _ = ctx.jobs.wait_until_ready().await;
    let namespace = cj.namespace().unwrap_or_default();
    let jobs: Vec<Job> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| owned_by(j, &cj))
        .map(|j| (*j).clone())
        .collect();
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    // An active Job missing from the cache may just be new: ask the server before dropping it.
    let mut missing = HashSet::new();
    for reference in cj.status.iter().flat_map(|s| s.active.iter().flatten()) {
        let Some(name) = reference.name.clone() else {
            continue;
        };
        if jobs.iter().any(|j| j.metadata.uid == reference.uid) {
            continue;
        }
        match job_api.get_opt(&name).await? {
            None => {
                missing.insert(name);
            }
            Some(job) if job.metadata.uid != reference.uid => {
                missing.insert(name);
            }
            Some(_) => {}
        }
    }
    let plan = reconcile(&cj, &jobs, &missing, Timestamp::now())?;
    let reference = object_reference(cj.as_ref());
    for event in &plan.events {
        emit_event(&ctx.client, &reference, event, COMPONENT).await;
    }
    let mut status = plan.status.clone();
    for victim in &plan.delete {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        let result = match job_api.delete(&victim.name, &params).await {
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            other => other.map(|_| ()),
        };
        match result {
            Ok(()) => {
                let event =
                    EventSpec::normal("SuccessfulDelete", format!("Deleted job {}", victim.name));
                emit_event(&ctx.client, &reference, &event, COMPONENT).await;
            }
            Err(error) => {
                let event = EventSpec::warning("FailedDelete", format!("Deleted job: {error}"));
                emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                return Err(error.into());
            }
        }
    }
    if let Some((job, scheduled)) = &plan.create {
        let created = match job_api.create(&PostParams::default(), job).await {
            Ok(created) => {
                let event = EventSpec::normal(
                    "SuccessfulCreate",
                    format!("Created job {}", created.name_any()),
                );
                emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                Some(created)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Created before, but the status update was lost: record it now if it is ours.
                let existing = job_api.get(&job.name_any()).await?;
                let ours = controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == cj.metadata.uid.as_ref());
                let listed = status
                    .active
                    .iter()
                    .flatten()
                    .any(|r| r.uid == existing.metadata.uid);
                (ours && !listed).then_some(existing)
            }
            Err(error) => {
                let event =
                    EventSpec::warning("FailedCreate", format!("Error creating job: {error}"));
                emit_event(&ctx.client, &reference, &event, COMPONENT).await;
                return Err(error.into());
            }
        };
        if let Some(created) = created {
            status
                .active
                .get_or_insert_default()
                .push(job_reference(&created));
            status.last_schedule_time = Some(Time(*scheduled));
        }
    }
    if cj.status.clone().unwrap_or_default() != status {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
        match api
            .patch_status(
                &cj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status_patch(&cj, &status)),
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
    }
    Ok(match plan.requeue_after {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Runs the CronJob controller until the watch streams end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let cj_api: Api<CronJob> = Api::all(client.clone());
    let job_api: Api<Job> = Api::all(client.clone());
    let (jobs, writer) = reflector::store();
    let job_stream = watcher(job_api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let context = Arc::new(Context { client, jobs });
    Controller::new(cj_api, watcher::Config::default())
        .watches_stream(job_stream, |job: Job| {
            let namespace = job.namespace().unwrap_or_default();
            controller_of(&job.metadata)
                .filter(|owner| owner.kind == "CronJob")
                .map(|owner| ObjectRef::new(&owner.name).within(&namespace))
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "cronjob sync failed");
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
    use k8s_openapi::api::batch::v1::{
        CronJobSpec, JobCondition, JobSpec, JobStatus, JobTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use std::collections::BTreeMap;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cronjob(schedule: &str, created: &str) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("hello".into()),
                namespace: Some("default".into()),
                uid: Some("cj-uid".into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: Some(CronJobSpec {
                schedule: schedule.into(),
                concurrency_policy: Some("Allow".into()),
                suspend: Some(false),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(1),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([("app".into(), "hello".into())])),
                        ..Default::default()
                    }),
                    spec: Some(JobSpec::default()),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn owned_job(name: &str, uid: &str, finished: Option<(&str, &str)>, started: &str) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "CronJob".into(),
                    name: "hello".into(),
                    uid: "cj-uid".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(JobSpec::default()),
            status: Some(JobStatus {
                start_time: Some(Time(ts(started))),
                completion_time: finished
                    .filter(|(kind, _)| *kind == "Complete")
                    .map(|(_, at)| Time(ts(at))),
                conditions: finished.map(|(kind, at)| {
                    vec![JobCondition {
                        type_: kind.into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(at))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn active_ref(name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    #[test]
    fn creates_the_job_for_the_latest_schedule_time() {
        let cj = cronjob("* * * * *", "2026-12-01T10:00:30Z");
        let plan = reconcile(&cj, &[], &none(), ts("2026-12-01T10:01:00.2Z")).unwrap();
        let (job, scheduled) = plan.create.unwrap();
        assert_eq!(scheduled, ts("2026-12-01T10:01:00Z"));
        let minutes = ts("2026-12-01T10:01:00Z").as_second() / 60;
        assert_eq!(job.metadata.name, Some(format!("hello-{minutes}")));
        assert_eq!(
            job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
            "2026-12-01T10:01:00Z"
        );
        assert_eq!(job.metadata.labels.unwrap()["app"], "hello");
        let owner = &job.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CronJob", Some(true))
        );
        // Requeued just after the next minute.
        assert_eq!(plan.requeue_after, Some(Duration::from_millis(59_900)));
    }

    #[test]
    fn waits_for_the_first_schedule_time() {
        let cj = cronjob("0 * * * *", "2026-12-01T10:00:30Z");
        let plan = reconcile(&cj, &[], &none(), ts("2026-12-01T10:30:00Z")).unwrap();
        assert!(plan.create.is_none());
        assert_eq!(plan.requeue_after, Some(Duration::from_millis(1_800_100)));
    }

    #[test]
    fn a_processed_schedule_time_is_not_run_twice() {
        let mut cj = cronjob("* * * * *", "2026-12-01T10:00:30Z");
        cj.status = Some(CronJobStatus {
            last_schedule_time: Some(Time(ts("2026-12-01T10:01:00Z"))),
            ..Default::default()
        });
        let plan = reconcile(&cj, &[], &none(), ts("2026-12-01T10:01:20Z")).unwrap();
        assert!(plan.create.is_none());
        assert_eq!(plan.requeue_after, Some(Duration::from_millis(40_100)));
    }

    #[test]
    fn time_zone_shapes_schedule_and_annotation() {
        let mut cj = cronjob("0 9 * * *", "2026-07-01T00:00:00Z");
        if let Some(spec) = cj.spec.as_mut() {
            spec.time_zone = Some("Europe/Berlin".into());
        }
        let plan = reconcile(&cj, &[], &none(), ts("2026-07-01T07:00:05Z")).unwrap();
        let (job, scheduled) = plan.create.unwrap();
        assert_eq!(scheduled, ts("2026-07-01T07:00:00Z"));
        assert_eq!(
            job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
            "2026-07-01T09:00:00+02:00"
        );
    }

    #[test]
    fn unknown_time_zone_and_bad_schedule_only_warn() {
        let mut cj = cronjob("* * * * *", "2026-07-01T00:00:00Z");
        if let Some(spec) = cj.spec.as_mut() {
            spec.time_zone = Some("Mars/Base".into());
        }
        let plan = reconcile(&cj, &[], &none(), ts("2026-07-01T01:00:00Z")).unwrap();
        assert!(plan.create.is_none());
        assert_eq!(plan.events[0].reason, "UnknownTimeZone");
        let cj = cronjob("61 * * * *", "2026-07-01T00:00:00Z");
        let plan = reconcile(&cj, &[], &none(), ts("2026-07-01T01:00:00Z")).unwrap();
        assert_eq!(plan.events[0].reason, "UnparseableSchedule");
        assert_eq!(plan.requeue_after, None);
    }

    #[test]
    fn suspended_cronjobs_do_not_run() {
        let mut cj = cronjob("* * * * *", "2026-07-01T00:00:00Z");
        if let Some(spec) = cj.spec.as_mut() {
            spec.suspend = Some(true);
        }
        let plan = reconcile(&cj, &[], &none(), ts("2026-07-01T01:00:00Z")).unwrap();
        assert!(plan.create.is_none());
        assert_eq!(plan.requeue_after, None);
    }

    #[test]
    fn starting_deadline_limits_catch_up_and_reports_misses() {
        let mut cj = cronjob("0 * * * *", "2026-07-01T00:00:30Z");
        if let Some(spec) = cj.spec.as_mut() {
            spec.starting_deadline_seconds = Some(60);
        }
        // Hours were missed, but only a schedule time within the last minute may start.
        let plan = reconcile(&cj, &[], &none(), ts("2026-07-01T05:30:00Z")).unwrap();
        assert!(plan.create.is_none());
        let plan = reconcile(&cj, &[], &none(), ts("2026-07-01T06:00:40Z")).unwrap();
        assert_eq!(plan.create.unwrap().1, ts("2026-07-01T06:00:00Z"));
        // Without a deadline the latest missed time runs.
        let cj = cronjob("0 * * * *", "2026-07-01T00:00:30Z");
        let plan = reconcile(&cj, &[], &none(), ts("2026-07-01T05:30:00Z")).unwrap();
        assert_eq!(plan.create.unwrap().1, ts("2026-07-01T05:00:00Z"));
    }

    #[test]
    fn too_many_missed_times_warn() {
        let cj = cronjob("* * * * *", "2026-07-01T00:00:00Z");
        let plan = reconcile(&cj, &[], &none(), ts("2026-07-01T05:00:30Z")).unwrap();
        assert_eq!(plan.events[0].reason, "TooManyMissedTimes");
        assert_eq!(plan.create.unwrap().1, ts("2026-07-01T05:00:00Z"));
    }

    #[test]
    fn forbid_skips_while_a_job_runs_and_replace_deletes_it() {
        let mut cj = cronjob("* * * * *", "2026-07-01T00:00:00Z");
        cj.status = Some(CronJobStatus {
            active: Some(vec![active_ref("hello-1", "u1")]),
            last_schedule_time: Some(Time(ts("2026-07-01T00:01:00Z"))),
            ..Default::default()
        });
        let running = [owned_job("hello-1", "u1", None, "2026-07-01T00:01:00Z")];
        let now = ts("2026-07-01T00:02:00.5Z");
        if let Some(spec) = cj.spec.as_mut() {
            spec.concurrency_policy = Some("Forbid".into());
        }
        let plan = reconcile(&cj, &running, &none(), now).unwrap();
        assert!(plan.create.is_none());
        assert_eq!(plan.events[0].reason, "JobAlreadyActive");
        if let Some(spec) = cj.spec.as_mut() {
            spec.concurrency_policy = Some("Replace".into());
        }
        let plan = reconcile(&cj, &running, &none(), now).unwrap();
        assert_eq!(
            plan.delete,
            vec![JobToDelete {
                name: "hello-1".into(),
                uid: Some("u1".into())
            }]
        );
        assert!(plan.create.is_some());
        assert_eq!(plan.status.active, None);
        if let Some(spec) = cj.spec.as_mut() {
            spec.concurrency_policy = Some("Allow".into());
        }
        let plan = reconcile(&cj, &running, &none(), now).unwrap();
        assert!(plan.delete.is_empty());
        assert!(plan.create.is_some());
    }

    #[test]
    fn finished_jobs_leave_active_and_set_last_successful_time() {
        let mut cj = cronjob("0 0 * * *", "2026-07-01T00:00:00Z");
        cj.status = Some(CronJobStatus {
            active: Some(vec![active_ref("hello-1", "u1")]),
            last_schedule_time: Some(Time(ts("2026-07-02T00:00:00Z"))),
            ..Default::default()
        });
        let done = [owned_job(
            "hello-1",
            "u1",
            Some(("Complete", "2026-07-02T00:00:09Z")),
            "2026-07-02T00:00:01Z",
        )];
        let plan = reconcile(&cj, &done, &none(), ts("2026-07-02T00:00:10Z")).unwrap();
        assert_eq!(plan.status.active, None);
        assert_eq!(
            plan.status.last_successful_time,
            Some(Time(ts("2026-07-02T00:00:09Z")))
        );
        assert_eq!(
            plan.events,
            vec![EventSpec::normal(
                "SawCompletedJob",
                "Saw completed job: hello-1, condition: Complete"
            )]
        );
        assert!(plan.create.is_none());
    }

    #[test]
    fn history_limits_delete_the_oldest_finished_jobs() {
        let cj = cronjob("0 0 * * *", "2026-07-01T00:00:00Z");
        let jobs = [
            owned_job(
                "s1",
                "1",
                Some(("Complete", "2026-07-01T01:00:00Z")),
                "2026-07-01T01:00:00Z",
            ),
            owned_job(
                "s2",
                "2",
                Some(("Complete", "2026-07-02T01:00:00Z")),
                "2026-07-02T01:00:00Z",
            ),
            owned_job(
                "s3",
                "3",
                Some(("Complete", "2026-07-03T01:00:00Z")),
                "2026-07-03T01:00:00Z",
            ),
            owned_job(
                "s4",
                "4",
                Some(("Complete", "2026-07-04T01:00:00Z")),
                "2026-07-04T01:00:00Z",
            ),
            owned_job(
                "f1",
                "5",
                Some(("Failed", "2026-07-01T02:00:00Z")),
                "2026-07-01T02:00:00Z",
            ),
            owned_job(
                "f2",
                "6",
                Some(("Failed", "2026-07-02T02:00:00Z")),
                "2026-07-02T02:00:00Z",
            ),
            owned_job("r", "7", None, "2026-07-05T00:00:00Z"),
        ];
        let plan = reconcile(&cj, &jobs, &none(), ts("2026-07-05T00:00:10Z")).unwrap();
        let names: Vec<&str> = plan.delete.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["s1", "f1"]);
    }

    #[test]
    fn missing_active_jobs_are_dropped_with_an_event() {
        let mut cj = cronjob("0 0 * * *", "2026-07-01T00:00:00Z");
        cj.status = Some(CronJobStatus {
            active: Some(vec![active_ref("gone", "g")]),
            last_schedule_time: Some(Time(ts("2026-07-02T00:00:00Z"))),
            ..Default::default()
        });
        let missing: HashSet<String> = ["gone".to_string()].into();
        let plan = reconcile(&cj, &[], &missing, ts("2026-07-02T00:00:10Z")).unwrap();
        assert_eq!(plan.status.active, None);
        assert_eq!(plan.events[0].reason, "MissingJob");
        assert_eq!(plan.events[0].message, "Active job went missing: gone");
    }

    #[test]
    fn miss_schedule_message_uses_rfc1123z() {
        assert_eq!(
            rfc1123z(ts("2026-12-01T21:05:00Z")),
            "Tue, 01 Dec 2026 21:05:00 +0000"
        );
    }
}
