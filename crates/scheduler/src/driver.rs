//! The scheduler process: watches nodes, pods and namespaces into a [`Snapshot`], schedules
//! pending pods one by one with the pure core and binds them through `pods/binding`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    Binding, Event, EventSource, Namespace, Node, ObjectReference, PersistentVolumeClaim, Pod,
    PodCondition,
};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event as WatchEvent};
use tokio::sync::{Notify, Semaphore};

use crate::core::{FitError, Snapshot, occupies_node, schedule};

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Pods whose `spec.schedulerName` equals this are ours.
    pub scheduler_name: String,
    /// First retry delay of an unschedulable pod; doubles per failed attempt.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Bindings in flight at once.
    pub max_concurrent_binds: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_concurrent_binds: 256,
        }
    }
}

/// Retry bookkeeping of a pod that failed to schedule.
struct Waiting {
    attempts: u32,
    last_failure: Instant,
    ready_at: Instant,
}

#[derive(Default)]
struct Queue {
    /// Latest version of every unbound pod of ours.
    pending: HashMap<String, Arc<Pod>>,
    active: VecDeque<String>,
    in_active: HashSet<String>,
    waiting: HashMap<String, Waiting>,
    /// Assumed on a node, binding not yet confirmed.
    in_flight: HashSet<String>,
}

impl Queue {
    fn activate(&mut self, key: &str) {
        if self.in_active.insert(key.to_string()) {
            self.active.push_back(key.to_string());
        }
    }

    fn forget(&mut self, key: &str) {
        self.pending.remove(key);
        self.waiting.remove(key);
        self.in_active.remove(key);
    }

    fn pop(&mut self) -> Option<(String, Arc<Pod>)> {
        while let Some(key) = self.active.pop_front() {
            if !self.in_active.remove(&key) {
                continue;
            }
            if let Some(pod) = self.pending.get(&key) {
                return Some((key, pod.clone()));
            }
        }
        None
    }
}

struct State {
    snapshot: Snapshot,
    queue: Queue,
    priorities: PriorityClasses,
}

/// PriorityClass values, to fill `spec.priority` when admission has not (upstream's Priority
/// admission plugin resolves it; ours may not).
#[derive(Default)]
struct PriorityClasses {
    values: HashMap<String, i32>,
    global_default: Option<(String, i32)>,
}

impl PriorityClasses {
    /// A known class wins over `spec.priority` (upstream admission keeps them equal; a server
    /// without that plugin may default the field to 0).
    fn resolve(&self, pod: &mut Pod) {
        let Some(spec) = pod.spec.as_mut() else {
            return;
        };
        let from_class = match spec.priority_class_name.as_deref() {
            Some("system-node-critical") => Some(2_000_001_000),
            Some("system-cluster-critical") => Some(2_000_000_000),
            Some(name) if !name.is_empty() => self.values.get(name).copied(),
            _ => None,
        };
        if from_class.is_some() {
            spec.priority = from_class;
        } else if spec.priority.is_none() {
            spec.priority = self.global_default.as_ref().map(|(_, v)| *v);
        }
    }

    fn apply(&mut self, class: &PriorityClass) {
        let name = class.metadata.name.clone().unwrap_or_default();
        self.values.insert(name.clone(), class.value);
        if class.global_default == Some(true) {
            self.global_default = Some((name, class.value));
        } else if self
            .global_default
            .as_ref()
            .is_some_and(|(n, _)| *n == name)
        {
            self.global_default = None;
        }
    }

    fn remove(&mut self, name: &str) {
        self.values.remove(name);
        if self.global_default.as_ref().is_some_and(|(n, _)| n == name) {
            self.global_default = None;
        }
    }
}

struct Scheduler {
    state: Mutex<State>,
    wake: Notify,
    options: SchedulerOptions,
    client: kube::Client,
}

impl Scheduler {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(16);
        (self.options.initial_backoff * factor).min(self.options.max_backoff)
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A node or pod changed: pods that failed may fit now, so shorten their wait to the first
/// backoff step.
fn cluster_changed(state: &mut State, initial_backoff: Duration) {
    for w in state.queue.waiting.values_mut() {
        w.ready_at = w.ready_at.min(w.last_failure + initial_backoff);
    }
}

/// Runs the scheduler until a watch stream ends or fails for good.
pub async fn run(client: kube::Client, options: SchedulerOptions) -> anyhow::Result<()> {
    let scheduler = Arc::new(Scheduler {
        state: Mutex::new(State {
            snapshot: Snapshot::default(),
            queue: Queue::default(),
            priorities: PriorityClasses::default(),
        }),
        wake: Notify::new(),
        options,
        client,
    });
    tokio::select! {
        r = watch_nodes(scheduler.clone()) => r,
        r = watch_pods(scheduler.clone()) => r,
        r = watch_namespaces(scheduler.clone()) => r,
        r = watch_priority_classes(scheduler.clone()) => r,
        r = watch_volumes(scheduler.clone()) => r,
        r = retry_ticker(scheduler.clone()) => r,
        r = schedule_loop(scheduler.clone()) => r,
    }
}

async fn watch_nodes(s: Arc<Scheduler>) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(s.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(event) = stream.try_next().await? {
        let mut state = s.lock();
        match event {
            WatchEvent::Init => seen.clear(),
            WatchEvent::InitApply(node) => {
                seen.insert(node.metadata.name.clone().unwrap_or_default());
                state.snapshot.upsert_node(node);
            }
            WatchEvent::InitDone => {
                let gone: Vec<String> = state
                    .snapshot
                    .nodes()
                    .iter()
                    .filter(|n| !seen.contains(&n.name))
                    .map(|n| n.name.clone())
                    .collect();
                for name in gone {
                    state.snapshot.remove_node(&name);
                }
            }
            WatchEvent::Apply(node) => state.snapshot.upsert_node(node),
            WatchEvent::Delete(node) => {
                state
                    .snapshot
                    .remove_node(node.metadata.name.as_deref().unwrap_or_default());
            }
        }
        cluster_changed(&mut state, s.options.initial_backoff);
    }
    anyhow::bail!("node watch ended")
}

async fn watch_namespaces(s: Arc<Scheduler>) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(s.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.try_next().await? {
        let mut state = s.lock();
        match event {
            WatchEvent::InitApply(ns) | WatchEvent::Apply(ns) => {
                let labels = ns.metadata.labels.unwrap_or_default();
                state
                    .snapshot
                    .set_namespace_labels(ns.metadata.name.unwrap_or_default(), labels);
            }
            WatchEvent::Delete(ns) => state
                .snapshot
                .remove_namespace(ns.metadata.name.as_deref().unwrap_or_default()),
            WatchEvent::Init | WatchEvent::InitDone => {}
        }
    }
    anyhow::bail!("namespace watch ended")
}

async fn watch_priority_classes(s: Arc<Scheduler>) -> anyhow::Result<()> {
    let api: Api<PriorityClass> = Api::all(s.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.try_next().await? {
        let mut state = s.lock();
        match event {
            WatchEvent::InitApply(class) | WatchEvent::Apply(class) => {
                state.priorities.apply(&class)
            }
            WatchEvent::Delete(class) => state
                .priorities
                .remove(class.metadata.name.as_deref().unwrap_or_default()),
            WatchEvent::Init | WatchEvent::InitDone => {}
        }
    }
    anyhow::bail!("priority class watch ended")
}

/// Claims, volumes and storage classes for the VolumeBinding filter; a change may make a
/// waiting pod schedulable (its claim created, bound, or its class added).
async fn watch_volumes(s: Arc<Scheduler>) -> anyhow::Result<()> {
    use crate::core::volumes::VolumeCatalog;
    fn name_of<K: kube::Resource>(object: &K) -> String {
        object.meta().name.clone().unwrap_or_default()
    }
    tokio::select! {
        r = watch_into_catalog(&s, "claim", |c: &mut VolumeCatalog, event| match event {
            WatchEvent::Init => c.clear_claims(),
            WatchEvent::InitApply(claim) | WatchEvent::Apply(claim) => c.upsert_claim(claim),
            WatchEvent::Delete(claim) => c.remove_claim(
                claim.metadata.namespace.as_deref().unwrap_or_default(),
                &name_of(&claim),
            ),
            WatchEvent::InitDone => {}
        }) => r,
        r = watch_into_catalog(&s, "volume", |c: &mut VolumeCatalog, event| match event {
            WatchEvent::Init => c.clear_volumes(),
            WatchEvent::InitApply(pv) | WatchEvent::Apply(pv) => c.upsert_volume(pv),
            WatchEvent::Delete(pv) => c.remove_volume(&name_of(&pv)),
            WatchEvent::InitDone => {}
        }) => r,
        r = watch_into_catalog(&s, "storage class", |c: &mut VolumeCatalog, event| match event {
            WatchEvent::Init => c.clear_classes(),
            WatchEvent::InitApply(sc) | WatchEvent::Apply(sc) => c.upsert_class(sc),
            WatchEvent::Delete(sc) => c.remove_class(&name_of(&sc)),
            WatchEvent::InitDone => {}
        }) => r,
    }
}

async fn watch_into_catalog<K>(
    s: &Scheduler,
    what: &str,
    apply: impl Fn(&mut crate::core::volumes::VolumeCatalog, WatchEvent<K>),
) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let api: Api<K> = Api::all(s.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.try_next().await? {
        let mut state = s.lock();
        apply(&mut state.snapshot.volumes, event);
        cluster_changed(&mut state, s.options.initial_backoff);
    }
    anyhow::bail!("{what} watch ended")
}

async fn watch_pods(s: Arc<Scheduler>) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::all(s.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(event) = stream.try_next().await? {
        let mut state = s.lock();
        let mut woke = false;
        match event {
            WatchEvent::Init => seen.clear(),
            WatchEvent::InitApply(pod) => {
                seen.insert(pod_key(&pod));
                woke |= apply_pod(&s, &mut state, pod);
            }
            WatchEvent::InitDone => {
                let state = &mut *state;
                let stale: Vec<String> = state
                    .snapshot
                    .pods()
                    .map(|(_, p)| p.key.clone())
                    .chain(state.queue.pending.keys().cloned())
                    .filter(|k| !seen.contains(k) && !state.queue.in_flight.contains(k))
                    .collect();
                for key in stale {
                    state.snapshot.remove_pod(&key);
                    state.queue.forget(&key);
                }
                cluster_changed(state, s.options.initial_backoff);
            }
            WatchEvent::Apply(pod) => woke |= apply_pod(&s, &mut state, pod),
            WatchEvent::Delete(pod) => {
                let key = pod_key(&pod);
                state.snapshot.remove_pod(&key);
                state.queue.forget(&key);
                cluster_changed(&mut state, s.options.initial_backoff);
            }
        }
        drop(state);
        if woke {
            s.wake.notify_one();
        }
    }
    anyhow::bail!("pod watch ended")
}

/// Folds one pod version into the cache and the queue; returns whether the queue gained work.
fn apply_pod(s: &Scheduler, state: &mut State, mut pod: Pod) -> bool {
    state.priorities.resolve(&mut pod);
    let key = pod_key(&pod);
    let bound = pod
        .spec
        .as_ref()
        .and_then(|sp| sp.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if bound {
        state.queue.forget(&key);
        state.queue.in_flight.remove(&key);
        if occupies_node(&pod) {
            state.snapshot.upsert_pod(pod);
        } else {
            state.snapshot.remove_pod(&key);
        }
        cluster_changed(state, s.options.initial_backoff);
        return false;
    }
    let ours = pod
        .spec
        .as_ref()
        .and_then(|sp| sp.scheduler_name.as_deref())
        .unwrap_or(DEFAULT_SCHEDULER_NAME)
        == s.options.scheduler_name;
    let terminal = matches!(
        pod.status.as_ref().and_then(|st| st.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if !ours || terminal || pod.metadata.deletion_timestamp.is_some() {
        state.queue.forget(&key);
        return false;
    }
    if state.queue.in_flight.contains(&key) {
        // Our binding is on its way; keep the assumed copy and just remember the newest version.
        state.queue.pending.insert(key, Arc::new(pod));
        return false;
    }
    let pod = Arc::new(pod);
    let previous = state.queue.pending.insert(key.clone(), pod.clone());
    match previous {
        None => {
            state.queue.activate(&key);
            true
        }
        Some(old) => {
            // Our own status writes change nothing the decision depends on: do not retry on them.
            let relevant = old.spec != pod.spec || old.metadata.labels != pod.metadata.labels;
            if relevant && state.queue.waiting.remove(&key).is_some() {
                state.queue.activate(&key);
                return true;
            }
            false
        }
    }
}

async fn retry_ticker(s: Arc<Scheduler>) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let now = Instant::now();
        let mut state = s.lock();
        let due: Vec<String> = state
            .queue
            .waiting
            .iter()
            .filter(|(_, w)| w.ready_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &due {
            state.queue.activate(key);
        }
        drop(state);
        if !due.is_empty() {
            s.wake.notify_one();
        }
    }
}

async fn schedule_loop(s: Arc<Scheduler>) -> anyhow::Result<()> {
    let binds = Arc::new(Semaphore::new(s.options.max_concurrent_binds.max(1)));
    loop {
        let notified = s.wake.notified();
        let next = s.lock().queue.pop();
        let Some((key, pod)) = next else {
            notified.await;
            continue;
        };
        let permit = binds.clone().acquire_owned().await?;
        let seed = rand::random::<u64>();
        let decision = {
            let mut state = s.lock();
            let state = &mut *state;
            // The pod may have been bound or deleted while it sat in the queue.
            if !state.queue.pending.contains_key(&key) {
                continue;
            }
            let decision = schedule(&pod, &state.snapshot, seed).map(|node| {
                let delayed = crate::core::volumes::resolve(&pod, &state.snapshot.volumes)
                    .map(|v| v.delayed)
                    .unwrap_or_default();
                (node, delayed)
            });
            match &decision {
                Ok((node, _)) => {
                    state.snapshot.assume_pod(&pod, node);
                    state.queue.in_flight.insert(key.clone());
                    state.queue.waiting.remove(&key);
                }
                Err(_) => {
                    let attempts = state.queue.waiting.get(&key).map_or(0, |w| w.attempts) + 1;
                    let now = Instant::now();
                    state.queue.waiting.insert(
                        key.clone(),
                        Waiting {
                            attempts,
                            last_failure: now,
                            ready_at: now + s.backoff(attempts),
                        },
                    );
                }
            }
            decision
        };
        match decision {
            Ok((node, delayed_claims)) => {
                let s = s.clone();
                tokio::spawn(async move {
                    let result =
                        match select_node_for_claims(&s.client, &pod, &node, &delayed_claims).await
                        {
                            Ok(()) => bind(&s.client, &pod, &node).await,
                            Err(e) => Err(e),
                        };
                    drop(permit);
                    if let Err(error) = result {
                        tracing::warn!(pod = %key, %node, %error, "binding failed");
                        forget_assumed(&s, &key, &node);
                    }
                });
            }
            Err(fit) => {
                drop(permit);
                tracing::debug!(pod = %key, reason = %fit, "pod is unschedulable");
                let s = s.clone();
                tokio::spawn(async move {
                    if let Err(error) = report_unschedulable(&s, &pod, &fit).await {
                        tracing::warn!(pod = %key, %error, "reporting FailedScheduling failed");
                    }
                });
            }
        }
    }
}

/// Undoes an assumption after a failed binding and schedules a retry with backoff.
fn forget_assumed(s: &Scheduler, key: &str, node: &str) {
    let mut state = s.lock();
    state.queue.in_flight.remove(key);
    if state.queue.pending.contains_key(key) {
        if state.snapshot.pod_node(key) == Some(node) {
            state.snapshot.remove_pod(key);
        }
        let attempts = state.queue.waiting.get(key).map_or(0, |w| w.attempts) + 1;
        let now = Instant::now();
        state.queue.waiting.insert(
            key.to_string(),
            Waiting {
                attempts,
                last_failure: now,
                ready_at: now + s.backoff(attempts),
            },
        );
    }
}

/// Upstream's VolumeBinding PreBind for claims of a `WaitForFirstConsumer` class: records
/// the chosen node on each, for the provisioner to create the volume there.
async fn select_node_for_claims(
    client: &kube::Client,
    pod: &Pod,
    node: &str,
    claims: &[String],
) -> anyhow::Result<()> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({
        "metadata": {"annotations": {"volume.kubernetes.io/selected-node": node}},
    });
    for claim in claims {
        api.patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> anyhow::Result<()> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        &name,
        &PostParams::default(),
        &binding,
    )
    .await?;
    Ok(())
}

/// Sets `PodScheduled=False/Unschedulable`, posts a `FailedScheduling` Event, and carries out a
/// preemption when the core found one.
async fn report_unschedulable(s: &Scheduler, pod: &Pod, fit: &FitError) -> anyhow::Result<()> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), namespace);
    let message = fit.to_string();
    let now = k8s_openapi::jiff::Timestamp::now();

    if let Some(preemption) = &fit.preemption {
        for victim in &preemption.victims {
            if let Some((victim_ns, victim_name)) = victim.split_once('/') {
                let api: Api<Pod> = Api::namespaced(s.client.clone(), victim_ns);
                if let Err(error) = api.delete(victim_name, &DeleteParams::default()).await {
                    tracing::warn!(victim = %victim, %error, "preempting victim failed");
                }
            }
        }
        let patch = serde_json::json!({"status": {"nominatedNodeName": preemption.node}});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }

    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|st| st.conditions.clone())
        .unwrap_or_default();
    let existing = conditions.iter().position(|c| c.type_ == "PodScheduled");
    let unchanged = existing.is_some_and(|i| {
        let c = &conditions[i];
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(message.as_str())
    });
    if !unchanged {
        let condition = PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(message.clone()),
            last_transition_time: Some(Time(now)),
            ..Default::default()
        };
        match existing {
            Some(i) => conditions[i] = condition,
            None => conditions.push(condition),
        }
        // A merge patch replaces the list; send it whole so other conditions survive.
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }

    let events: Api<Event> = Api::namespaced(s.client.clone(), namespace);
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some("FailedScheduling".into()),
        message: Some(message),
        type_: Some("Warning".into()),
        action: Some("Scheduling".into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        reporting_component: Some(s.options.scheduler_name.clone()),
        reporting_instance: Some(s.options.scheduler_name.clone()),
        source: Some(EventSource {
            component: Some(s.options.scheduler_name.clone()),
            host: None,
        }),
        ..Default::default()
    };
    events.create(&PostParams::default(), &event).await?;
    Ok(())
}
