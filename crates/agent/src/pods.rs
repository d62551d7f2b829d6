//! Pod workers: one task per pod bound to the node, level-triggered. Each sync reads the
//! pod, the containers the runtime reports and the probe results, plans (`sync::plan`),
//! acts, and posts the status when it changed. Containers outlive the agent; a restarted
//! agent rebuilds every worker from what the runtime finds, so nothing restarts.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use timonel_runtime::image::{ImageRecord, ImageStore, RegistriesConfig};
use timonel_runtime::native::{
    BindMount, ContainerInfo, ContainerMeta, ContainerRuntime, ContainerSpec, ContainerState,
    NamespaceMode,
};
use tokio::sync::{Notify, watch};

use crate::containers::{apply_security_and_resources, command_line, qos_class, user_of};
use crate::env::{ConfigError, Sources, environment};
use crate::events::Recorder;
use crate::node::NodeFacts;
use crate::probes::{self, Kind};
use crate::status::{ContainerView, Inputs, pod_status};
use crate::sync::{Action, Backoff, Context, Waiting, plan};

/// A pod's namespaces and address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The pod's shared PID namespace (`shareProcessNamespace`).
    pub pid: Option<PathBuf>,
    pub ip: Option<String>,
}

/// Pod sandboxes (namespaces and networking), behind a trait so workers are tested
/// without root.
pub trait Sandboxes: Send + Sync + 'static {
    fn setup(&self, pod_uid: &str, hostname: &str) -> anyhow::Result<Sandbox>;
    fn teardown(&self, pod_uid: &str) -> anyhow::Result<()>;
    fn known(&self) -> Vec<String>;
}

/// DNS settings written into pods' resolv.conf.
#[derive(Debug, Clone)]
pub struct Dns {
    pub nameserver: String,
    pub domain: String,
}

pub struct Agent {
    pub client: kube::Client,
    pub node_name: String,
    pub facts: NodeFacts,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub images: Arc<ImageStore>,
    pub registries: RegistriesConfig,
    pub sandboxes: Arc<dyn Sandboxes>,
    pub data_dir: PathBuf,
    pub recorder: Recorder,
    pub dns: Dns,
    workers: Mutex<HashMap<String, watch::Sender<Option<Arc<Pod>>>>>,
    /// Image pull back-off by image reference: (delay, not before).
    pull_backoff: Mutex<HashMap<String, (Backoff, chrono::DateTime<chrono::Utc>)>>,
}

/// Deterministic container ID: a restarted agent derives the same one.
pub fn container_id(pod_uid: &str, name: &str, attempt: u32) -> String {
    let digest = Sha256::digest(format!("{pod_uid}/{name}/{attempt}").as_bytes());
    hex::encode(&digest[..16])
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn all_containers(pod: &Pod) -> Vec<(Container, bool)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .map(|c| (c.clone(), true))
        .chain(spec.containers.iter().map(|c| (c.clone(), false)))
        .collect()
}

impl Agent {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        facts: NodeFacts,
        runtime: Arc<dyn ContainerRuntime>,
        images: Arc<ImageStore>,
        registries: RegistriesConfig,
        sandboxes: Arc<dyn Sandboxes>,
        data_dir: PathBuf,
        dns: Dns,
    ) -> Arc<Agent> {
        Arc::new(Agent {
            recorder: Recorder::new(client.clone(), &facts.name),
            node_name: facts.name.clone(),
            client,
            facts,
            runtime,
            images,
            registries,
            sandboxes,
            data_dir,
            dns,
            workers: Mutex::new(HashMap::new()),
            pull_backoff: Mutex::new(HashMap::new()),
        })
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("pods").join(uid)
    }

    fn log_path(&self, pod: &Pod, container: &str, attempt: u32) -> PathBuf {
        self.data_dir
            .join("logs")
            .join(format!(
                "{}_{}_{}",
                pod.metadata.namespace.as_deref().unwrap_or(""),
                pod.metadata.name.as_deref().unwrap_or(""),
                pod.metadata.uid.as_deref().unwrap_or("")
            ))
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// Hands a pod event to its worker, starting one if needed.
    pub fn dispatch(self: &Arc<Self>, uid: &str, pod: Option<Arc<Pod>>) {
        let mut workers = self.workers.lock().expect("poisoned");
        if let Some(tx) = workers.get(uid) {
            let _ = tx.send(pod);
            return;
        }
        let Some(pod) = pod else {
            // Never seen alive by this agent: clean up whatever it left (a restart while
            // the pod was deleted).
            let agent = Arc::clone(self);
            let uid = uid.to_string();
            tokio::spawn(async move { agent.cleanup_orphan(&uid).await });
            return;
        };
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.to_string(), tx);
        let agent = Arc::clone(self);
        let uid = uid.to_string();
        tokio::spawn(async move {
            Worker::new(Arc::clone(&agent), uid.clone()).run(rx).await;
            agent.workers.lock().expect("poisoned").remove(&uid);
        });
    }

    /// The pods this agent has workers for.
    pub fn known_uids(&self) -> Vec<String> {
        self.workers
            .lock()
            .expect("poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Stops and removes everything of a pod the API no longer has.
    pub async fn cleanup_orphan(self: &Arc<Self>, uid: &str) {
        let containers: Vec<ContainerInfo> = self
            .runtime
            .list_matching(&|meta| meta.pod_uid == uid)
            .unwrap_or_default();
        for c in &containers {
            if matches!(c.state, ContainerState::Running(_)) {
                stop_container(self, c, 2, None).await;
            }
        }
        self.remove_pod_resources(uid, &containers).await;
    }

    async fn remove_pod_resources(&self, uid: &str, containers: &[ContainerInfo]) {
        let runtime = Arc::clone(&self.runtime);
        let images = Arc::clone(&self.images);
        let sandboxes = Arc::clone(&self.sandboxes);
        let pod_dir = self.pod_dir(uid);
        let ids: Vec<(String, String)> = containers
            .iter()
            .map(|c| (c.id.clone(), c.meta.image_id.clone()))
            .collect();
        let uid = uid.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            for (id, image_id) in ids {
                if let Err(e) = runtime.remove(&id) {
                    tracing::warn!("removing container {id}: {e}");
                }
                if let Ok(digest) = timonel_runtime::image::Digest::parse(&image_id) {
                    let _ = images.unpin(&digest, &id);
                }
            }
            timonel_runtime::native::shim::remove_cgroup_path(&crate::stats::pod_cgroup(&uid));
            if let Err(e) = sandboxes.teardown(&uid) {
                tracing::warn!("tearing down the sandbox of pod {uid}: {e}");
            }
            timonel_runtime::native::pause::stop(&pod_dir);
            crate::volumes::unmount_all(&pod_dir);
            let _ = fs::remove_dir_all(&pod_dir);
        })
        .await;
    }

    /// The container a streaming request means: the latest attempt (or the one before it
    /// for `previous`).
    pub fn find_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Option<ContainerInfo> {
        let mut attempts: Vec<ContainerInfo> = self
            .runtime
            .list_matching(&|meta| {
                meta.pod_namespace == namespace
                    && meta.pod_name == pod
                    && meta.container_name == container
            })
            .ok()?;
        attempts.sort_by_key(|c| c.meta.attempt);
        if previous {
            let n = attempts.len();
            if n < 2 {
                return None;
            }
            attempts.into_iter().nth(n - 2)
        } else {
            attempts.pop()
        }
    }

    /// The network namespace of a pod (for port-forward).
    pub fn pod_netns(&self, namespace: &str, pod: &str) -> Option<PathBuf> {
        let uid = self
            .runtime
            .list_matching(&|meta| meta.pod_namespace == namespace && meta.pod_name == pod)
            .ok()?
            .into_iter()
            .next()?
            .meta
            .pod_uid;
        let path = self.pod_dir(&uid).join("sandbox.json");
        let sandbox: Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
        sandbox["net"].as_str().map(PathBuf::from)
    }
}

/// Stops a running container: preStop hook, then its stop signal, then SIGKILL after
/// `grace` seconds.
async fn stop_container(
    agent: &Agent,
    info: &ContainerInfo,
    grace: i64,
    pre_stop: Option<(&Container, &Pod)>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(grace.max(0) as u64);
    if let Some((container, pod)) = pre_stop
        && let Some(hook) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
    {
        let outcome = tokio::time::timeout_at(deadline, run_hook(agent, info, hook, pod)).await;
        if let Ok(Err(message)) = outcome {
            agent.recorder.pod_event(
                pod,
                Some((&container.name, false)),
                true,
                "FailedPreStopHook",
                format!("PreStopHook failed: {message}"),
            );
        }
    }
    let signal = stop_signal(agent, info);
    let _ = agent.runtime.signal(&info.id, signal);
    loop {
        match agent.runtime.inspect(&info.id) {
            Ok(i) if matches!(i.state, ContainerState::Running(_)) => {}
            _ => return,
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = agent.runtime.signal(&info.id, 9);
    for _ in 0..100 {
        match agent.runtime.inspect(&info.id) {
            Ok(i) if matches!(i.state, ContainerState::Running(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => return,
        }
    }
}

/// The image's STOPSIGNAL, else SIGTERM.
fn stop_signal(agent: &Agent, info: &ContainerInfo) -> i32 {
    let configured = agent
        .images
        .get(&info.meta.image_id)
        .ok()
        .and_then(|img| img.config.stop_signal.clone());
    match configured.as_deref().map(|s| s.trim_start_matches("SIG")) {
        Some("KILL") | Some("9") => 9,
        Some("INT") | Some("2") => 2,
        Some("QUIT") | Some("3") => 3,
        Some("HUP") | Some("1") => 1,
        Some("USR1") | Some("10") => 10,
        Some("USR2") | Some("12") => 12,
        _ => 15,
    }
}

/// Runs a lifecycle hook (exec or httpGet) to completion.
async fn run_hook(
    agent: &Agent,
    info: &ContainerInfo,
    hook: &k8s_openapi::api::core::v1::LifecycleHandler,
    pod: &Pod,
) -> Result<(), String> {
    if let Some(exec) = &hook.exec {
        let command = exec.command.clone().unwrap_or_default();
        let cmd = agent
            .runtime
            .exec_command(&info.id, &command, false)
            .map_err(|e| e.to_string())?;
        let out = tokio::process::Command::from(cmd)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "command {:?} exited with {}: {}",
                command,
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        return Ok(());
    }
    if let Some(sleep) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
        return Ok(());
    }
    if let Some(http) = &hook.http_get {
        let probe = k8s_openapi::api::core::v1::Probe {
            http_get: Some(http.clone()),
            timeout_seconds: Some(30),
            ..Default::default()
        };
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_else(|| "127.0.0.1".into());
        let target = probes::Target {
            container_id: info.id.clone(),
            pod_ip: ip,
            runtime: Arc::clone(&agent.runtime),
        };
        let container = Container::default();
        return match probes::run_once(&probe, &container, &target).await {
            probes::Outcome::Success => Ok(()),
            probes::Outcome::Failure(m) => Err(m),
        };
    }
    Ok(())
}

/// How often mounted configMap, secret, downwardAPI and projected volumes are brought up to
/// date (kubelet: its sync period plus the object cache's TTL, about a minute).
const VOLUME_RESYNC: Duration = Duration::from_secs(60);

/// What one pod's worker remembers between syncs.
struct Worker {
    agent: Arc<Agent>,
    uid: String,
    /// Every attempt on disk by container name, oldest first.
    attempts: BTreeMap<String, Vec<ContainerInfo>>,
    backoff: BTreeMap<String, (Backoff, Option<chrono::DateTime<chrono::Utc>>)>,
    sandbox: Option<Sandbox>,
    volumes: Option<BTreeMap<String, PathBuf>>,
    /// When configMap, secret, downwardAPI and projected volumes were last written.
    volumes_synced: Option<tokio::time::Instant>,
    waiting: BTreeMap<String, Waiting>,
    probe_results: Arc<probes::Results>,
    probers: HashMap<(String, Kind), tokio::task::JoinHandle<()>>,
    wake: Arc<Notify>,
    last_status: Option<Value>,
    started_events: std::collections::HashSet<String>,
}

impl Worker {
    fn new(agent: Arc<Agent>, uid: String) -> Worker {
        Worker {
            agent,
            uid,
            attempts: BTreeMap::new(),
            backoff: BTreeMap::new(),
            sandbox: None,
            volumes: None,
            volumes_synced: None,
            waiting: BTreeMap::new(),
            probe_results: Arc::new(probes::Results::default()),
            probers: HashMap::new(),
            wake: Arc::new(Notify::new()),
            last_status: None,
            started_events: Default::default(),
        }
    }

    fn refresh(&mut self) {
        let mut attempts: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
        let uid = &self.uid;
        let mine = self
            .agent
            .runtime
            .list_matching(&|meta| &meta.pod_uid == uid)
            .unwrap_or_default();
        for info in mine {
            attempts
                .entry(info.meta.container_name.clone())
                .or_default()
                .push(info);
        }
        for list in attempts.values_mut() {
            list.sort_by_key(|c| c.meta.attempt);
        }
        // Containers already running when we (re)start were announced by a previous run.
        if self.attempts.is_empty() {
            for list in attempts.values() {
                for c in list {
                    self.started_events.insert(c.id.clone());
                }
            }
        }
        self.attempts = attempts;
    }

    fn latest(&self) -> BTreeMap<String, ContainerInfo> {
        self.attempts
            .iter()
            .filter_map(|(k, v)| v.last().map(|c| (k.clone(), c.clone())))
            .collect()
    }

    async fn run(mut self, mut rx: watch::Receiver<Option<Arc<Pod>>>) {
        self.refresh();
        loop {
            let pod = rx.borrow_and_update().clone();
            let next = match pod {
                None => {
                    self.terminate(None).await;
                    return;
                }
                Some(pod) => match self.sync(&pod).await {
                    Ok(Some(next)) => next,
                    Ok(None) => {
                        // Terminated and deleted: wait for the API's delete event.
                        if rx.changed().await.is_err() {
                            return;
                        }
                        if rx.borrow().is_none() {
                            return;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("pod {}: {e:#}", pod_key(&pod));
                        Duration::from_secs(2)
                    }
                },
            };
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = self.wake.notified() => {},
                _ = tokio::time::sleep(next) => {},
            }
        }
    }

    /// Kills every container (pod deleted or terminating) and releases the pod's resources.
    async fn terminate(&mut self, pod: Option<&Pod>) {
        for (_, handle) in self.probers.drain() {
            handle.abort();
        }
        self.refresh();
        let grace = pod
            .map(|p| {
                p.metadata
                    .deletion_grace_period_seconds
                    .or_else(|| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                    })
                    .unwrap_or(30)
            })
            .unwrap_or(2);
        let containers = pod.map(all_containers).unwrap_or_default();
        let running: Vec<ContainerInfo> = self
            .latest()
            .into_values()
            .filter(|c| matches!(c.state, ContainerState::Running(_)))
            .collect();
        let stops = running.iter().map(|info| {
            let container = containers
                .iter()
                .find(|(c, _)| c.name == info.meta.container_name)
                .map(|(c, _)| c);
            if let Some(p) = pod {
                self.agent.recorder.pod_event(
                    p,
                    Some((&info.meta.container_name, false)),
                    false,
                    "Killing",
                    format!("Stopping container {}", info.meta.container_name),
                );
            }
            let agent = Arc::clone(&self.agent);
            async move {
                let hook = container.zip(pod);
                stop_container(&agent, info, grace, hook).await;
            }
        });
        futures::future::join_all(stops).await;
        self.refresh();
        let all: Vec<ContainerInfo> = self.attempts.values().flatten().cloned().collect();
        self.agent.remove_pod_resources(&self.uid, &all).await;
        self.sandbox = None;
        self.volumes = None;
    }

    /// One level-triggered pass. `Ok(None)`: the pod is gone from this node.
    async fn sync(&mut self, pod: &Pod) -> anyhow::Result<Option<Duration>> {
        self.refresh();
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(Some(pod)).await;
            let api: Api<Pod> = Api::namespaced(
                self.agent.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api
                .delete(pod.metadata.name.as_deref().unwrap_or(""), &params)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(None);
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            // A finished pod keeps its status and logs; its sandbox goes.
            if let Some(_sandbox) = self.sandbox.take() {
                let sandboxes = Arc::clone(&self.agent.sandboxes);
                let uid = self.uid.clone();
                let _ = tokio::task::spawn_blocking(move || sandboxes.teardown(&uid)).await;
            }
            return Ok(Some(Duration::from_secs(3600)));
        }

        let mut next = Duration::from_secs(1);
        let ready = self.ensure_sandbox(pod).await;
        if let Err(message) = ready {
            self.agent.recorder.pod_event(
                pod,
                None,
                true,
                "FailedCreatePodSandBox",
                message.clone(),
            );
            self.waiting_all(pod, "ContainerCreating", &message);
            self.post_status(pod, false).await?;
            return Ok(Some(Duration::from_secs(2)));
        }
        // kubelet refreshes projected contents (configMap, secret, …) about once a minute; the
        // atomic writer swaps them in only when they changed.
        let refresh_due = self
            .volumes_synced
            .is_some_and(|t| t.elapsed() >= VOLUME_RESYNC);
        if self.volumes.is_some() && refresh_due && pod.metadata.deletion_timestamp.is_none() {
            self.volumes_synced = Some(tokio::time::Instant::now());
            match self.prepare_volumes(pod).await {
                Ok(Ok(v)) => self.volumes = Some(v),
                // The running containers keep what they have, as upstream.
                Ok(Err(ConfigError(message))) => {
                    tracing::debug!("pod {}: volume refresh: {message}", pod_key(pod))
                }
                Err(e) => tracing::debug!("pod {}: volume refresh: {e:#}", pod_key(pod)),
            }
        }
        if self.volumes.is_none() {
            match self.prepare_volumes(pod).await? {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volumes_synced = Some(tokio::time::Instant::now());
                }
                Err(ConfigError(message)) => {
                    self.agent
                        .recorder
                        .pod_event(pod, None, true, "FailedMount", message.clone());
                    self.waiting_all(pod, "ContainerCreating", &message);
                    self.post_status(pod, false).await?;
                    return Ok(Some(Duration::from_secs(2)));
                }
            }
        }

        let latest = self.latest();
        let unhealthy = self
            .probe_results
            .unhealthy
            .lock()
            .expect("poisoned")
            .clone();
        let plan = plan(
            pod,
            &mut Context {
                latest: &latest,
                backoff: &mut self.backoff,
                unhealthy: &unhealthy,
                now: now(),
            },
        );
        for (name, waiting) in &plan.waiting {
            // One BackOff event per exit, as upstream's event aggregation shows it.
            let announced = self.waiting.get(name) == Some(waiting);
            if waiting.reason == "CrashLoopBackOff" && !announced {
                let init = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.init_containers.as_ref())
                    .is_some_and(|c| c.iter().any(|c| &c.name == name));
                self.agent.recorder.pod_event(
                    pod,
                    Some((name, init)),
                    true,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {name} in pod {}_{}({})",
                        pod.metadata.name.as_deref().unwrap_or(""),
                        pod.metadata.namespace.as_deref().unwrap_or(""),
                        self.uid
                    ),
                );
            }
        }
        self.waiting = plan.waiting.clone();
        if let Some(secs) = plan.wake_in_secs {
            next = Duration::from_secs(secs.max(0) as u64)
                .max(Duration::from_millis(200))
                .min(next);
        }
        for action in &plan.actions {
            match action {
                Action::Kill { id, reason } => {
                    if let Some(info) = latest.values().find(|c| &c.id == id) {
                        let container = all_containers(pod)
                            .into_iter()
                            .find(|(c, _)| c.name == info.meta.container_name);
                        self.agent.recorder.pod_event(
                            pod,
                            Some((&info.meta.container_name, false)),
                            false,
                            "Killing",
                            reason.clone(),
                        );
                        let grace = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .unwrap_or(30);
                        let hook = container.as_ref().map(|(c, _)| (c, pod));
                        stop_container(&self.agent, info, grace, hook).await;
                        self.probe_results
                            .unhealthy
                            .lock()
                            .expect("poisoned")
                            .remove(id);
                    }
                }
                Action::Start {
                    name,
                    init,
                    attempt,
                } => {
                    let Some((container, _)) = all_containers(pod)
                        .into_iter()
                        .find(|(c, _)| &c.name == name)
                    else {
                        continue;
                    };
                    match self.start(pod, &container, *init, *attempt).await {
                        Ok(()) => {}
                        Err(waiting) => {
                            self.waiting.insert(name.clone(), waiting);
                            next = next.min(Duration::from_secs(1));
                        }
                    }
                    if *init {
                        // The next init container waits for this one.
                        break;
                    }
                }
            }
        }
        self.refresh();
        self.ensure_probers(pod);
        self.prune_attempts();
        self.post_status(pod, plan.initialized || self.initialized_now(pod))
            .await?;
        Ok(Some(next))
    }

    fn initialized_now(&self, pod: &Pod) -> bool {
        let latest = self.latest();
        pod.spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .all(|c| match latest.get(&c.name).map(|i| &i.state) {
                Some(ContainerState::Exited { exited, .. }) => exited.exit_code == 0,
                Some(ContainerState::Running(_)) => c.restart_policy.as_deref() == Some("Always"),
                _ => false,
            })
    }

    fn waiting_all(&mut self, pod: &Pod, reason: &str, message: &str) {
        for (c, _) in all_containers(pod) {
            self.waiting.insert(
                c.name.clone(),
                Waiting {
                    reason: reason.into(),
                    message: message.into(),
                },
            );
        }
    }

    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        if self.sandbox.is_some() {
            return Ok(());
        }
        let spec = pod.spec.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let sandbox = if host_network {
            Sandbox {
                ip: Some(self.agent.facts.ip.clone()),
                ..Sandbox::default()
            }
        } else {
            let hostname = pod_hostname(pod);
            let sandboxes = Arc::clone(&self.agent.sandboxes);
            let uid = self.uid.clone();
            tokio::task::spawn_blocking(move || sandboxes.setup(&uid, &hostname))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("Failed to create pod sandbox: {e:#}"))?
        };
        let dir = self.agent.pod_dir(&self.uid);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut sandbox = sandbox;
        let share_pids = spec.and_then(|s| s.share_process_namespace) == Some(true)
            && spec.and_then(|s| s.host_pid) != Some(true);
        if share_pids {
            let pod_dir = dir.clone();
            let pause = tokio::task::spawn_blocking(move || {
                let exe = std::env::current_exe()
                    .map_err(|e| timonel_runtime::native::RuntimeError::Start(e.to_string()))?;
                timonel_runtime::native::pause::ensure(&exe, &pod_dir)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
            sandbox.pid = Some(pause.pid_namespace());
        }
        let record = json!({"net": sandbox.net, "ipc": sandbox.ipc, "uts": sandbox.uts, "pid": sandbox.pid, "ip": sandbox.ip});
        let _ = fs::write(dir.join("sandbox.json"), record.to_string());
        self.write_etc_files(pod, &sandbox)
            .map_err(|e| e.to_string())?;
        self.sandbox = Some(sandbox);
        Ok(())
    }

    fn write_etc_files(&self, pod: &Pod, sandbox: &Sandbox) -> std::io::Result<()> {
        let dir = self.agent.pod_dir(&self.uid);
        let spec = pod.spec.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let hostname = pod_hostname(pod);
        let hosts = if host_network {
            fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            let mut text = String::from(
                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
            );
            if let Some(ip) = &sandbox.ip {
                let fqdn = spec
                    .and_then(|s| s.subdomain.as_ref())
                    .map(|sub| {
                        format!(
                            "{hostname}.{sub}.{}.svc.{}\t",
                            pod.metadata.namespace.as_deref().unwrap_or("default"),
                            self.agent.dns.domain
                        )
                    })
                    .unwrap_or_default();
                text.push_str(&format!("{ip}\t{fqdn}{hostname}\n"));
            }
            let aliases = spec.and_then(|s| s.host_aliases.as_ref());
            if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
                text.push_str("\n# Entries added by HostAliases.\n");
                for alias in aliases {
                    text.push_str(&format!(
                        "{}\t{}\n",
                        alias.ip,
                        alias.hostnames.clone().unwrap_or_default().join("\t")
                    ));
                }
            }
            text
        };
        fs::write(dir.join("etc-hosts"), hosts)?;
        fs::write(dir.join("etc-hostname"), format!("{hostname}\n"))?;
        fs::write(dir.join("resolv.conf"), self.resolv_conf(pod))?;
        Ok(())
    }

    fn resolv_conf(&self, pod: &Pod) -> String {
        let spec = pod.spec.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let policy = spec
            .and_then(|s| s.dns_policy.as_deref())
            .unwrap_or("ClusterFirst");
        let host = || fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut text = match policy {
            "Default" => host(),
            "ClusterFirst" if host_network => host(),
            "None" => String::new(),
            _ => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                let d = &self.agent.dns.domain;
                format!(
                    "search {ns}.svc.{d} svc.{d} {d}\nnameserver {}\noptions ndots:5\n",
                    self.agent.dns.nameserver
                )
            }
        };
        if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
            for ns in cfg.nameservers.iter().flatten() {
                text.push_str(&format!("nameserver {ns}\n"));
            }
            if let Some(searches) = cfg.searches.as_ref().filter(|s| !s.is_empty()) {
                text.push_str(&format!("search {}\n", searches.join(" ")));
            }
            let options: Vec<String> = cfg
                .options
                .iter()
                .flatten()
                .map(|o| match &o.value {
                    Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                    None => o.name.clone().unwrap_or_default(),
                })
                .collect();
            if !options.is_empty() {
                text.push_str(&format!("options {}\n", options.join(" ")));
            }
        }
        text
    }

    async fn prepare_volumes(
        &self,
        pod: &Pod,
    ) -> anyhow::Result<Result<BTreeMap<String, PathBuf>, ConfigError>> {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut sources = Sources::new(&self.agent.client, &namespace);
        let dir = self.agent.pod_dir(&self.uid).join("volumes");
        crate::volumes::prepare(
            pod,
            &dir,
            &mut sources,
            self.agent.facts.cpus,
            self.agent.facts.memory_bytes,
        )
        .await
    }

    /// Resolves the image, pulling it as `imagePullPolicy` says.
    async fn ensure_image(
        &self,
        pod: &Pod,
        container: &Container,
        init: bool,
    ) -> Result<ImageRecord, Waiting> {
        let image = container.image.clone().unwrap_or_default();
        let tag_latest = {
            let last = image.rsplit('/').next().unwrap_or(&image);
            !last.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
        };
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| if tag_latest { "Always" } else { "IfNotPresent" }.into());
        let present = self.agent.images.get(&image).ok();
        if let Some(record) = &present
            && policy != "Always"
        {
            self.agent.recorder.pod_event(
                pod,
                Some((&container.name, init)),
                false,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(record.clone());
        }
        if policy == "Never" {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            self.agent.recorder.pod_event(
                pod,
                Some((&container.name, init)),
                true,
                "ErrImageNeverPull",
                message.clone(),
            );
            return Err(Waiting {
                reason: "ErrImageNeverPull".into(),
                message,
            });
        }
        {
            let backoff = self.agent.pull_backoff.lock().expect("poisoned");
            if let Some((_, until)) = backoff.get(&image)
                && now() < *until
            {
                let message = format!("Back-off pulling image \"{image}\"");
                self.agent.recorder.pod_event(
                    pod,
                    Some((&container.name, init)),
                    false,
                    "BackOff",
                    message.clone(),
                );
                return Err(Waiting {
                    reason: "ImagePullBackOff".into(),
                    message,
                });
            }
        }
        self.agent.recorder.pod_event(
            pod,
            Some((&container.name, init)),
            false,
            "Pulling",
            timonel_runtime::image::pulling_event_message(&image),
        );
        let credentials = self.pull_credentials(pod).await;
        let started = std::time::Instant::now();
        let outcome = timonel_runtime::image::pull(
            &self.agent.images,
            &image,
            &self.agent.registries,
            &credentials,
            &|_| {},
        )
        .await;
        match outcome {
            Ok(pulled) => {
                self.agent
                    .pull_backoff
                    .lock()
                    .expect("poisoned")
                    .remove(&image);
                self.agent.recorder.pod_event(
                    pod,
                    Some((&container.name, init)),
                    false,
                    "Pulled",
                    timonel_runtime::image::pulled_event_message(
                        &image,
                        pulled.elapsed,
                        started.elapsed(),
                        pulled.record.size,
                    ),
                );
                Ok(pulled.record)
            }
            Err(e) => {
                let message = e.to_string();
                {
                    let mut backoff = self.agent.pull_backoff.lock().expect("poisoned");
                    let entry = backoff
                        .entry(image.clone())
                        .or_insert((Backoff::default(), now()));
                    entry.0.next(0);
                    let delay = entry.0.delay_secs;
                    entry.1 = now() + chrono::Duration::seconds(delay / 2);
                }
                self.agent.recorder.pod_event(
                    pod,
                    Some((&container.name, init)),
                    true,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {message}"),
                );
                self.agent.recorder.pod_event(
                    pod,
                    Some((&container.name, init)),
                    true,
                    "Failed",
                    "Error: ErrImagePull".into(),
                );
                Err(Waiting {
                    reason: "ErrImagePull".into(),
                    message,
                })
            }
        }
    }

    async fn pull_credentials(&self, pod: &Pod) -> Vec<timonel_runtime::image::RegistryCredential> {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut out = Vec::new();
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.agent.client.clone(), &namespace);
        for reference in pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default()
        {
            if let Ok(Some(secret)) = secrets.get_opt(&reference.name).await {
                let data = secret.data.unwrap_or_default();
                for key in [".dockerconfigjson", ".dockercfg"] {
                    if let Some(bytes) = data.get(key)
                        && let Ok(creds) =
                            timonel_runtime::image::credentials_from_docker_config(&bytes.0)
                    {
                        out.extend(creds);
                    }
                }
            }
        }
        out
    }

    /// Creates and starts one container; a `Waiting` explains why it could not.
    async fn start(
        &mut self,
        pod: &Pod,
        container: &Container,
        init: bool,
        attempt: u32,
    ) -> Result<(), Waiting> {
        let image = self.ensure_image(pod, container, init).await?;
        let config_error = |message: String| Waiting {
            reason: "CreateContainerConfigError".into(),
            message,
        };
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut sources = Sources::new(&self.agent.client, &namespace);
        let env = environment(
            pod,
            container,
            &image.config.env,
            &mut sources,
            self.agent.facts.cpus,
            self.agent.facts.memory_bytes,
        )
        .await
        .map_err(|e| config_error(e.to_string()))?
        .map_err(|ConfigError(m)| {
            self.agent.recorder.pod_event(
                pod,
                Some((&container.name, init)),
                true,
                "Failed",
                format!("Error: {m}"),
            );
            config_error(m)
        })?;
        let lower_dirs = self.agent.images.lower_dirs(&image);
        let passwd = lower_dirs
            .iter()
            .find_map(|d| fs::read_to_string(d.join("etc/passwd")).ok());
        let (uid, gid) =
            user_of(pod, container, &image.config, passwd.as_deref()).map_err(|m| {
                self.agent.recorder.pod_event(
                    pod,
                    Some((&container.name, init)),
                    true,
                    "Failed",
                    format!("Error: {m}"),
                );
                config_error(m)
            })?;
        let volumes = self.volumes.clone().unwrap_or_default();
        let mut mounts = crate::volumes::mounts_for(container, &volumes)
            .map_err(|ConfigError(m)| config_error(m))?;
        let pod_dir = self.agent.pod_dir(&self.uid);
        let spec = pod.spec.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        for (file, target) in [
            ("etc-hosts", "/etc/hosts"),
            ("resolv.conf", "/etc/resolv.conf"),
            ("etc-hostname", "/etc/hostname"),
        ] {
            if !mounts.iter().any(|m| m.destination == target) {
                mounts.push(BindMount {
                    source: pod_dir.join(file),
                    destination: target.into(),
                    read_only: false,
                });
            }
        }
        let id = container_id(&self.uid, &container.name, attempt);
        let termination_dir = pod_dir.join("containers").join(&container.name);
        let _ = fs::create_dir_all(&termination_dir);
        let termination_log = termination_dir.join(&id);
        let _ = fs::write(&termination_log, b"");
        mounts.push(BindMount {
            source: termination_log,
            destination: container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
            read_only: false,
        });
        let sandbox = self.sandbox.clone().unwrap_or_default();
        let join = |p: &Option<PathBuf>| match p {
            Some(p) => NamespaceMode::Join(p.clone()),
            None => NamespaceMode::Host,
        };
        let host_pid = spec.and_then(|s| s.host_pid).unwrap_or(false);
        let host_ipc = spec.and_then(|s| s.host_ipc).unwrap_or(false);
        let mut env_strings: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let hostname = pod_hostname(pod);
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            env_strings.push(format!(
                "HOSTNAME={}",
                if host_network {
                    self.agent.node_name.clone()
                } else {
                    hostname.clone()
                }
            ));
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env_strings
                .push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        let mut runtime_spec = ContainerSpec {
            args: command_line(container, &image.config, &env),
            env: env_strings,
            working_dir: container
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| image.config.working_dir.clone()),
            uid,
            gid,
            hostname,
            tty: container.tty.unwrap_or(false),
            stdin: container.stdin.unwrap_or(false),
            stdin_once: container.stdin_once.unwrap_or(false),
            network_namespace: if host_network {
                NamespaceMode::Host
            } else {
                join(&sandbox.net)
            },
            ipc_namespace: if host_ipc {
                NamespaceMode::Host
            } else {
                sandbox
                    .ipc
                    .clone()
                    .map(NamespaceMode::Join)
                    .unwrap_or(NamespaceMode::Private)
            },
            uts_namespace: if host_network {
                NamespaceMode::Host
            } else {
                join(&sandbox.uts)
            },
            pid_namespace: match (host_pid, &sandbox.pid) {
                (true, _) => NamespaceMode::Host,
                (false, Some(shared)) => NamespaceMode::Join(shared.clone()),
                (false, None) => NamespaceMode::Private,
            },
            mounts,
            cgroup_path: crate::stats::container_cgroup(&self.uid, &id),
            lower_dirs,
            log_path: self.agent.log_path(pod, &container.name, attempt),
            ..ContainerSpec::default()
        };
        if runtime_spec.args.is_empty() {
            return Err(Waiting {
                reason: "CreateContainerError".into(),
                message: "no command specified".into(),
            });
        }
        apply_security_and_resources(
            pod,
            container,
            self.agent.facts.memory_bytes,
            &mut runtime_spec,
        );
        let meta = ContainerMeta {
            pod_uid: self.uid.clone(),
            pod_namespace: namespace.clone(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            container_name: container.name.clone(),
            attempt,
            image: container.image.clone().unwrap_or_default(),
            image_id: image.id.to_string(),
            log_path: runtime_spec.log_path.clone(),
            created_at: timonel_runtime::native::now_rfc3339(),
        };
        let runtime = Arc::clone(&self.agent.runtime);
        let images = Arc::clone(&self.agent.images);
        let image_id = image.id.clone();
        let id_for_task = id.clone();
        let created = tokio::task::spawn_blocking(move || {
            let _ = images.pin(&image_id, &id_for_task);
            let _ = images.mark_used(&image_id, chrono::Utc::now().timestamp().max(0) as u64);
            runtime.create(&id_for_task, &meta, &runtime_spec)
        })
        .await
        .map_err(|e| Waiting {
            reason: "CreateContainerError".into(),
            message: e.to_string(),
        })?;
        if let Err(e) = created {
            let message = e.to_string();
            self.agent.recorder.pod_event(
                pod,
                Some((&container.name, init)),
                true,
                "Failed",
                format!("Error: {message}"),
            );
            return Err(Waiting {
                reason: "CreateContainerError".into(),
                message,
            });
        }
        self.agent.recorder.pod_event(
            pod,
            Some((&container.name, init)),
            false,
            "Created",
            format!("Created container: {}", container.name),
        );
        let runtime = Arc::clone(&self.agent.runtime);
        let id_for_task = id.clone();
        let started = tokio::task::spawn_blocking(move || runtime.start(&id_for_task))
            .await
            .map_err(|e| Waiting {
                reason: "RunContainerError".into(),
                message: e.to_string(),
            })?;
        match started {
            Ok(_) => {
                self.started_events.insert(id.clone());
                self.agent.recorder.pod_event(
                    pod,
                    Some((&container.name, init)),
                    false,
                    "Started",
                    format!("Started container {}", container.name),
                );
            }
            Err(e) => {
                // The shim recorded the failed start as an exit (StartError, 128); the
                // back-off takes it from there.
                self.agent.recorder.pod_event(
                    pod,
                    Some((&container.name, init)),
                    true,
                    "Failed",
                    format!("Error: {e}"),
                );
                return Ok(());
            }
        }
        if let Some(hook) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
            && let Ok(info) = self.agent.runtime.inspect(&id)
            && let Err(message) = run_hook(&self.agent, &info, hook, pod).await
        {
            self.agent.recorder.pod_event(
                pod,
                Some((&container.name, init)),
                true,
                "FailedPostStartHook",
                format!("PostStartHook failed: {message}"),
            );
            stop_container(&self.agent, &info, 2, None).await;
        }
        Ok(())
    }

    /// Starts probers for new container attempts and stops those of old ones.
    fn ensure_probers(&mut self, pod: &Pod) {
        let latest = self.latest();
        let pod_ip = self
            .sandbox
            .as_ref()
            .and_then(|s| s.ip.clone())
            .unwrap_or_else(|| self.agent.facts.ip.clone());
        let mut wanted = Vec::new();
        for (container, _init) in all_containers(pod) {
            let Some(info) = latest.get(&container.name) else {
                continue;
            };
            if !matches!(info.state, ContainerState::Running(_)) {
                continue;
            }
            for (kind, probe) in [
                (Kind::Startup, container.startup_probe.clone()),
                (Kind::Liveness, container.liveness_probe.clone()),
                (Kind::Readiness, container.readiness_probe.clone()),
            ] {
                let Some(probe) = probe else { continue };
                let key = (info.id.clone(), kind);
                wanted.push(key.clone());
                if self.probers.contains_key(&key) {
                    continue;
                }
                if kind != Kind::Liveness {
                    self.probe_results
                        .by_container
                        .lock()
                        .expect("poisoned")
                        .entry(key.clone())
                        .or_insert(false);
                }
                let target = probes::Target {
                    container_id: info.id.clone(),
                    pod_ip: pod_ip.clone(),
                    runtime: Arc::clone(&self.agent.runtime),
                };
                let recorder = self.agent.recorder.clone();
                let pod_for_events = pod.clone();
                let name = container.name.clone();
                let handle = tokio::spawn(probes::prober(
                    kind,
                    probe,
                    container.clone(),
                    target,
                    Arc::clone(&self.probe_results),
                    Arc::clone(&self.wake),
                    move |message| {
                        recorder.pod_event(
                            &pod_for_events,
                            Some((&name, false)),
                            true,
                            "Unhealthy",
                            format!("{} probe failed: {}", kind.name(), message.trim_end()),
                        );
                    },
                ));
                self.probers.insert(key, handle);
            }
        }
        self.probers.retain(|key, handle| {
            let keep = wanted.contains(key);
            if !keep {
                handle.abort();
            }
            keep
        });
    }

    /// Keeps the latest two attempts of each container (for `logs --previous`), as
    /// kubelet's container GC keeps one dead container per pod and name.
    fn prune_attempts(&mut self) {
        for list in self.attempts.values() {
            if list.len() <= 2 {
                continue;
            }
            for old in &list[..list.len() - 2] {
                if matches!(old.state, ContainerState::Exited { .. }) {
                    let _ = self.agent.runtime.remove(&old.id);
                    if let Ok(d) = timonel_runtime::image::Digest::parse(&old.meta.image_id) {
                        let _ = self.agent.images.unpin(&d, &old.id);
                    }
                }
            }
        }
    }

    async fn post_status(&mut self, pod: &Pod, initialized: bool) -> anyhow::Result<()> {
        let probe_results = self
            .probe_results
            .by_container
            .lock()
            .expect("poisoned")
            .clone();
        let mut init = BTreeMap::new();
        let mut regular = BTreeMap::new();
        for (container, is_init) in all_containers(pod) {
            let list = self.attempts.get(&container.name);
            let latest = list.and_then(|l| l.last());
            let previous = list.and_then(|l| {
                if l.len() >= 2 {
                    l.get(l.len() - 2)
                } else {
                    None
                }
            });
            let id = latest.map(|c| c.id.clone()).unwrap_or_default();
            let result = |kind| probe_results.get(&(id.clone(), kind)).copied();
            let view = ContainerView {
                latest,
                previous,
                waiting: self.waiting.get(&container.name),
                ready: container.readiness_probe.is_none() || result(Kind::Readiness) == Some(true),
                started: container.startup_probe.is_none() || result(Kind::Startup) == Some(true),
            };
            if is_init {
                init.insert(container.name.clone(), view);
            } else {
                regular.insert(container.name.clone(), view);
            }
        }
        let now = crate::node::now_seconds();
        let status = pod_status(&Inputs {
            pod,
            init,
            regular,
            initialized,
            sandbox_ready: self.sandbox.is_some(),
            host_ip: &self.agent.facts.ip,
            pod_ip: self.sandbox.as_ref().and_then(|s| s.ip.as_deref()),
            now: &now,
            qos_class: qos_class(pod),
        });
        let comparable = strip_times(&status);
        if self.last_status.as_ref() == Some(&comparable) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(
            self.agent.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .with_context(|| format!("updating the status of pod {}", pod_key(pod)))?;
        self.last_status = Some(comparable);
        Ok(())
    }
}

/// The status without its clock fields, so a sync that changed nothing posts nothing.
fn strip_times(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conditions) = s["conditions"].as_array_mut() {
        for c in conditions {
            if let Some(map) = c.as_object_mut() {
                map.remove("lastTransitionTime");
                map.remove("lastProbeTime");
            }
        }
    }
    s
}

/// The pod's hostname: `spec.hostname`, else its name (cut to 63 characters).
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with('-') || h.ends_with('.') {
        h.pop();
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_stable_and_distinct() {
        assert_eq!(container_id("u", "app", 0), container_id("u", "app", 0));
        assert_ne!(container_id("u", "app", 0), container_id("u", "app", 1));
        assert_eq!(container_id("u", "app", 0).len(), 32);
    }

    #[test]
    fn hostnames_are_cut_to_63_characters() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("{}-x", "a".repeat(62))}
        }))
        .unwrap();
        assert_eq!(pod_hostname(&pod), "a".repeat(62));
    }
}
