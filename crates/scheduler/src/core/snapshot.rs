//! The scheduler's view of the cluster: nodes with pre-computed per-node aggregates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity;

/// Requests assumed for a container without cpu/memory requests when scoring (upstream's
/// `DefaultMilliCPURequest` and `DefaultMemoryRequest`), so best-effort pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources (`vendor/name`, `hugepages-*`), sorted by name.
    pub scalar: Vec<(String, i64)>,
}

fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-") || (name.contains('/') && !name.starts_with("requests."))
}

impl Resources {
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut r = Resources::default();
        r.add_list(list);
        r
    }

    fn add_list(&mut self, list: Option<&BTreeMap<String, Quantity>>) {
        for (name, q) in list.into_iter().flatten() {
            match name.as_str() {
                "cpu" => self.milli_cpu += quantity::milli_value(&q.0).unwrap_or(0),
                "memory" => self.memory += quantity::value(&q.0).unwrap_or(0),
                "ephemeral-storage" => self.ephemeral_storage += quantity::value(&q.0).unwrap_or(0),
                other if is_scalar_resource(other) => {
                    self.add_scalar(other, quantity::value(&q.0).unwrap_or(0))
                }
                _ => {}
            }
        }
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    fn add_scalar(&mut self, name: &str, amount: i64) {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1 += amount,
            Err(i) => self.scalar.insert(i, (name.to_string(), amount)),
        }
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (n, v) in &other.scalar {
            self.add_scalar(n, *v);
        }
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (n, v) in &other.scalar {
            self.add_scalar(n, -*v);
        }
    }

    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (n, v) in &other.scalar {
            let current = self.scalar(n);
            if *v > current {
                self.add_scalar(n, *v - current);
            }
        }
    }
}

/// Requests of one container; a resource with only a limit is requested at its limit, as API
/// defaulting does.
fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let resources = c.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let mut r = Resources::from_list(requests);
    if let Some(limits) = resources.and_then(|r| r.limits.as_ref()) {
        let mut only_limits = BTreeMap::new();
        for (k, v) in limits {
            if requests.is_none_or(|req| !req.contains_key(k)) {
                only_limits.insert(k.clone(), v.clone());
            }
        }
        r.add_list(Some(&only_limits));
    }
    if non_zero {
        let has = |name: &str| {
            requests.is_some_and(|m| m.contains_key(name))
                || resources
                    .and_then(|r| r.limits.as_ref())
                    .is_some_and(|m| m.contains_key(name))
        };
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// Effective requests of a pod as upstream computes them: the sum of app containers and sidecars
/// (restartable init containers), or the largest init container plus the sidecars started before
/// it, whichever is larger; plus overhead. Pod-level requests win when set.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let req = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            total.add(&req);
            sidecars.add(&req);
            init_peak.max_with(&sidecars);
        } else {
            let mut with_sidecars = req;
            with_sidecars.add(&sidecars);
            init_peak.max_with(&with_sidecars);
        }
    }
    total.max_with(&init_peak);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        let pod_level = Resources::from_list(Some(pod_level));
        if pod_level.milli_cpu > 0 {
            total.milli_cpu = pod_level.milli_cpu;
        }
        if pod_level.memory > 0 {
            total.memory = pod_level.memory;
        }
    }
    total.add(&Resources::from_list(spec.overhead.as_ref()));
    total
}

/// A host port claimed by a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Two claims conflict on the same protocol and port when either binds all addresses.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0";
        self.port == other.port
            && self.protocol == other.protocol
            && (wildcard(&self.ip) || wildcard(&other.ip) || self.ip == other.ip)
    }
}

fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            Some(HostPort {
                ip: p.host_ip.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                port,
            })
        })
        .collect()
}

/// A pod with the values the scheduler needs pre-computed.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub namespace: String,
    pub priority: i32,
    pub requests: Resources,
    /// cpu/memory requests with upstream's non-zero defaults, used by scoring.
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub has_required_anti_affinity: bool,
    pub has_affinity: bool,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let key = format!(
            "{}/{}",
            namespace,
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let has_required_anti_affinity = affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|t| !t.is_empty());
        let has_affinity =
            affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some());
        let non_zero = pod_requests(&pod, true);
        PodInfo {
            key,
            namespace,
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            requests: pod_requests(&pod, false),
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            host_ports: host_ports(&pod),
            has_required_anti_affinity,
            has_affinity,
            pod,
        }
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.pod.metadata.labels.as_ref()
    }
}

/// Readiness as reported by the node's Ready condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady,
    Unknown,
}

/// A node and the aggregates of the pods bound to it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub readiness: Readiness,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub requested: Resources,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub pods: Vec<PodInfo>,
    /// Number of bound pods with any pod (anti-)affinity, to skip scans when zero.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> Self {
        let status = node.status.as_ref();
        let allocatable_list = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        let allowed_pods = allocatable_list
            .and_then(|l| l.get("pods"))
            .and_then(|q| quantity::value(&q.0).ok())
            .unwrap_or(0);
        let readiness = match status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str())
        {
            Some("True") => Readiness::Ready,
            Some("False") => Readiness::NotReady,
            _ => Readiness::Unknown,
        };
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            readiness,
            allocatable: Resources::from_list(allocatable_list),
            allowed_pods,
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            pods: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            node,
        }
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().and_then(|l| l.get(key)).map(String::as_str)
    }

    pub fn add_pod(&mut self, info: PodInfo) {
        self.requested.add(&info.requests);
        self.non_zero_milli_cpu += info.non_zero_milli_cpu;
        self.non_zero_memory += info.non_zero_memory;
        self.pods_with_affinity += usize::from(info.has_affinity);
        self.pods_with_required_anti_affinity += usize::from(info.has_required_anti_affinity);
        self.pods.push(info);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        let index = self.pods.iter().position(|p| p.key == key)?;
        let info = self.pods.swap_remove(index);
        self.requested.subtract(&info.requests);
        self.non_zero_milli_cpu -= info.non_zero_milli_cpu;
        self.non_zero_memory -= info.non_zero_memory;
        self.pods_with_affinity -= usize::from(info.has_affinity);
        self.pods_with_required_anti_affinity -= usize::from(info.has_required_anti_affinity);
        Some(info)
    }

    pub fn used_ports(&self) -> impl Iterator<Item = &HostPort> {
        self.pods.iter().flat_map(|p| p.host_ports.iter())
    }
}

/// Whether a pod occupies a node in the scheduler's accounting: bound and not terminal.
pub fn occupies_node(pod: &Pod) -> bool {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    bound && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// Nodes, the pods bound to them, and namespace labels (for affinity namespace selectors).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    node_index: HashMap<String, usize>,
    /// pod key -> node name, for every pod accounted on a node.
    pod_nodes: HashMap<String, String>,
    /// Pods bound to nodes the snapshot does not know (yet); attached when the node appears.
    orphans: HashMap<String, Vec<PodInfo>>,
    namespace_labels: HashMap<String, BTreeMap<String, String>>,
    /// Claims, volumes and storage classes (for the VolumeBinding filter).
    pub volumes: super::volumes::VolumeCatalog,
}

impl Snapshot {
    /// Builds a snapshot; pods that are unbound or terminal are ignored.
    pub fn new(nodes: impl IntoIterator<Item = Node>, pods: impl IntoIterator<Item = Pod>) -> Self {
        let mut snapshot = Snapshot::default();
        for node in nodes {
            snapshot.upsert_node(node);
        }
        for pod in pods {
            snapshot.upsert_pod(pod);
        }
        snapshot
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.node_index.get(name).map(|i| &self.nodes[*i])
    }

    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn num_pods(&self) -> usize {
        self.pod_nodes.len()
    }

    /// The node a pod is accounted on, if any.
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pod_nodes.get(key).map(String::as_str)
    }

    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.namespace_labels.get(namespace)
    }

    pub fn set_namespace_labels(&mut self, namespace: String, labels: BTreeMap<String, String>) {
        self.namespace_labels.insert(namespace, labels);
    }

    pub fn remove_namespace(&mut self, namespace: &str) {
        self.namespace_labels.remove(namespace);
    }

    /// Adds or replaces a node, keeping the pods already accounted on it.
    pub fn upsert_node(&mut self, node: Node) {
        let mut info = NodeInfo::new(Arc::new(node));
        if let Some(&i) = self.node_index.get(&info.name) {
            let old = std::mem::replace(&mut self.nodes[i], info);
            for pod in old.pods {
                self.nodes[i].add_pod(pod);
            }
        } else {
            for pod in self.orphans.remove(&info.name).into_iter().flatten() {
                info.add_pod(pod);
            }
            self.node_index.insert(info.name.clone(), self.nodes.len());
            self.nodes.push(info);
        }
    }

    /// Removes a node; its pods stay accounted (as orphans) until they are deleted.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.node_index.remove(name) else {
            return;
        };
        let info = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            self.node_index.insert(self.nodes[i].name.clone(), i);
        }
        if !info.pods.is_empty() {
            self.orphans.insert(info.name, info.pods);
        }
    }

    /// Adds, moves or removes a pod according to its current state.
    pub fn upsert_pod(&mut self, pod: Pod) {
        let pod = Arc::new(pod);
        let info = PodInfo::new(pod.clone());
        self.remove_pod(&info.key);
        if !occupies_node(&pod) {
            return;
        }
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        self.pod_nodes.insert(info.key.clone(), node_name.clone());
        match self.node_index.get(&node_name) {
            Some(&i) => self.nodes[i].add_pod(info),
            None => self.orphans.entry(node_name).or_default().push(info),
        }
    }

    /// Accounts `pod` on `node_name` before the API server confirms the binding.
    pub fn assume_pod(&mut self, pod: &Pod, node_name: &str) {
        let mut assumed = pod.clone();
        assumed.spec.get_or_insert_with(Default::default).node_name = Some(node_name.to_string());
        self.upsert_pod(assumed);
    }

    /// Forgets a pod by `namespace/name`; returns it when it was accounted.
    pub fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        let node_name = self.pod_nodes.remove(key)?;
        if let Some(&i) = self.node_index.get(&node_name) {
            return self.nodes[i].remove_pod(key);
        }
        let orphans = self.orphans.get_mut(&node_name)?;
        let index = orphans.iter().position(|p| p.key == key)?;
        let info = orphans.swap_remove(index);
        if orphans.is_empty() {
            self.orphans.remove(&node_name);
        }
        Some(info)
    }

    /// Every pod accounted on a known node.
    pub fn pods(&self) -> impl Iterator<Item = (&NodeInfo, &PodInfo)> {
        self.nodes
            .iter()
            .flat_map(|n| n.pods.iter().map(move |p| (n, p)))
    }
}
