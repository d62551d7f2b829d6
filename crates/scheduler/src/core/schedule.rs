//! One scheduling decision: filter, score, select; and the preemption dry run.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use k8s_openapi::api::core::v1::Pod;

use super::framework::{CycleState, NodeStatus};
use super::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Upstream's floor on feasible nodes to find before stopping the filter phase.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;
const NO_VICTIMS_REASON: &str = "No preemption victims found for incoming pod.";
const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// Why a pod fits on no node. Renders upstream's message:
/// `0/N nodes are available: <sorted reason histogram>. <post-filter message>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// Node name -> why it was filtered out.
    pub node_statuses: BTreeMap<String, NodeStatus>,
    /// Reason used for nodes missing from `node_statuses` (preemption's "not helpful").
    pub absent_nodes_reason: Option<String>,
    /// The preemption outcome when it did not help ("preemption: ...").
    pub post_filter_message: Option<String>,
    /// Why a PreFilter rejected the pod for every node (e.g. a missing claim): upstream
    /// prints it instead of the per-node histogram.
    pub pre_filter_message: Option<String>,
    /// Where preemption would make room, when it can.
    pub preemption: Option<Box<Preemption>>,
}

/// A node where the pod fits once `victims` (namespace/name keys) are evicted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preemption {
    pub node: String,
    pub victims: Vec<String>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if let Some(message) = &self.pre_filter_message {
            write!(f, " {message}.")?;
            if let Some(message) = &self.post_filter_message {
                write!(f, " {message}")?;
            }
            return Ok(());
        }
        let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
        for status in self.node_statuses.values() {
            for reason in &status.reasons {
                *histogram.entry(reason.as_str()).or_default() += 1;
            }
        }
        if let Some(reason) = &self.absent_nodes_reason {
            let absent = self.num_all_nodes.saturating_sub(self.node_statuses.len());
            if absent > 0 {
                *histogram.entry(reason.as_str()).or_default() += absent;
            }
        }
        // Upstream sorts the rendered "<count> <reason>" strings bytewise.
        let mut entries: Vec<String> = histogram
            .into_iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        entries.sort();
        if !entries.is_empty() {
            write!(f, " {}.", entries.join(", "))?;
        }
        if let Some(message) = &self.post_filter_message {
            write!(f, " {message}")?;
        }
        Ok(())
    }
}

/// How many feasible nodes to find before scoring (upstream's adaptive percentageOfNodesToScore).
pub fn num_feasible_nodes_to_find(num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let percentage = 50usize
        .saturating_sub(num_all_nodes / 125)
        .max(MIN_FEASIBLE_NODES_PERCENTAGE);
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Deterministic pseudo-random numbers from the caller's seed (splitmix64).
struct SeededRng(u64);

impl SeededRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Picks a node for `pod`. Filtering starts at a node chosen by `rng_seed` and stops once enough
/// feasible nodes are found; equal top scores are broken by `rng_seed` too. On failure the error
/// carries every node's reason and the preemption outcome.
pub fn schedule(pod: &Pod, snapshot: &Snapshot, rng_seed: u64) -> Result<String, FitError> {
    let nodes = snapshot.nodes();
    let total = nodes.len();
    if total == 0 {
        return Err(FitError {
            num_all_nodes: 0,
            node_statuses: BTreeMap::new(),
            absent_nodes_reason: None,
            post_filter_message: None,
            pre_filter_message: None,
            preemption: None,
        });
    }
    let state = CycleState::new(pod, snapshot, None);
    let wanted = num_feasible_nodes_to_find(total);
    let mut rng = SeededRng(rng_seed);
    let start = rng.below(total);
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(wanted);
    let mut statuses: BTreeMap<String, NodeStatus> = BTreeMap::new();
    for offset in 0..total {
        let node = &nodes[(start + offset) % total];
        match state.filter(node, snapshot) {
            Ok(()) => {
                feasible.push(node);
                if feasible.len() >= wanted {
                    break;
                }
            }
            Err(status) => {
                statuses.insert(node.name.clone(), status);
            }
        }
    }
    match feasible.len() {
        0 => Err(fit_error_with_preemption(&state, snapshot, statuses)),
        1 => Ok(feasible[0].name.clone()),
        _ => {
            let scores = state.score(&feasible, snapshot);
            Ok(select_host(&feasible, &scores, &mut rng).to_string())
        }
    }
}

/// Highest score wins; ties are broken uniformly at random (reservoir sampling, as upstream).
fn select_host<'n>(feasible: &[&'n NodeInfo], scores: &[i64], rng: &mut SeededRng) -> &'n str {
    let mut best = 0;
    let mut ties = 1;
    for i in 1..feasible.len() {
        if scores[i] > scores[best] {
            best = i;
            ties = 1;
        } else if scores[i] == scores[best] {
            ties += 1;
            if rng.below(ties) == 0 {
                best = i;
            }
        }
    }
    &feasible[best].name
}

fn fit_error_with_preemption(
    state: &CycleState<'_>,
    snapshot: &Snapshot,
    statuses: BTreeMap<String, NodeStatus>,
) -> FitError {
    let mut error = FitError {
        num_all_nodes: snapshot.num_nodes(),
        node_statuses: statuses,
        absent_nodes_reason: None,
        post_filter_message: None,
        pre_filter_message: state.volumes.as_ref().err().cloned(),
        preemption: None,
    };
    match evaluate_preemption(state, snapshot, &error.node_statuses) {
        PreemptionOutcome::NotEligible(reason) => {
            error.post_filter_message = Some(format!("preemption: {reason}"));
        }
        PreemptionOutcome::NoCandidates(node_statuses) => {
            let inner = FitError {
                num_all_nodes: snapshot.num_nodes(),
                node_statuses,
                absent_nodes_reason: Some(PREEMPTION_NOT_HELPFUL.to_string()),
                post_filter_message: None,
                pre_filter_message: None,
                preemption: None,
            };
            error.post_filter_message = Some(format!("preemption: {inner}"));
        }
        PreemptionOutcome::Candidate(preemption) => error.preemption = Some(Box::new(preemption)),
    }
    error
}

enum PreemptionOutcome {
    NotEligible(&'static str),
    NoCandidates(BTreeMap<String, NodeStatus>),
    Candidate(Preemption),
}

/// Lower-priority pods whose eviction makes `pod` fit, on the best node for it; `None` when the
/// pod fits already, may not preempt, or no eviction helps.
pub fn preemption_victims(pod: &Pod, snapshot: &Snapshot) -> Option<(String, Vec<Pod>)> {
    let state = CycleState::new(pod, snapshot, None);
    let mut statuses = BTreeMap::new();
    for node in snapshot.nodes() {
        match state.filter(node, snapshot) {
            Ok(()) => return None,
            Err(status) => {
                statuses.insert(node.name.clone(), status);
            }
        }
    }
    match evaluate_preemption(&state, snapshot, &statuses) {
        PreemptionOutcome::Candidate(p) => {
            let node = snapshot.node(&p.node)?;
            let victims = p
                .victims
                .iter()
                .filter_map(|key| node.pods.iter().find(|i| &i.key == key))
                .map(|i| (*i.pod).clone())
                .collect();
            Some((p.node, victims))
        }
        _ => None,
    }
}

fn evaluate_preemption(
    state: &CycleState<'_>,
    snapshot: &Snapshot,
    statuses: &BTreeMap<String, NodeStatus>,
) -> PreemptionOutcome {
    let pod = state.pod;
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return PreemptionOutcome::NotEligible("not eligible due to preemptionPolicy=Never.");
    }
    // Victims already terminating on the nominated node will make room: do not preempt more.
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    if let Some(node) = nominated.and_then(|n| snapshot.node(n))
        && node.pods.iter().any(|p| {
            p.priority < state.info.priority && p.pod.metadata.deletion_timestamp.is_some()
        })
    {
        return PreemptionOutcome::NotEligible(
            "not eligible due to a terminating pod on the nominated node.",
        );
    }
    let mut candidate_statuses = BTreeMap::new();
    let mut best: Option<(Preemption, (i32, i64, usize))> = None;
    for node in snapshot.nodes() {
        let Some(status) = statuses.get(&node.name) else {
            continue;
        };
        if status.unresolvable {
            continue;
        }
        match victims_on_node(state, node, snapshot) {
            Some(victims) => {
                let rank = (
                    victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN),
                    victims
                        .iter()
                        .map(|v| i64::from(v.priority) + (1i64 << 31))
                        .sum::<i64>(),
                    victims.len(),
                );
                if best.as_ref().is_none_or(|(_, r)| rank < *r) {
                    best = Some((
                        Preemption {
                            node: node.name.clone(),
                            victims: victims.iter().map(|v| v.key.clone()).collect(),
                        },
                        rank,
                    ));
                }
            }
            None => {
                candidate_statuses.insert(
                    node.name.clone(),
                    NodeStatus {
                        reasons: vec![NO_VICTIMS_REASON.to_string()],
                        unresolvable: false,
                    },
                );
            }
        }
    }
    match best {
        Some((preemption, _)) => PreemptionOutcome::Candidate(preemption),
        None => PreemptionOutcome::NoCandidates(candidate_statuses),
    }
}

/// The minimal set of lower-priority pods to evict from `node` so the pod fits: remove all of
/// them, then give back as many as possible, most important first.
fn victims_on_node(
    state: &CycleState<'_>,
    node: &NodeInfo,
    snapshot: &Snapshot,
) -> Option<Vec<PodInfo>> {
    let priority = state.info.priority;
    let mut lower: Vec<PodInfo> = node
        .pods
        .iter()
        .filter(|p| p.priority < priority)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    let mut trial = node.clone();
    let mut excluded: HashSet<String> = HashSet::new();
    for p in &lower {
        trial.remove_pod(&p.key);
        excluded.insert(p.key.clone());
    }
    // Cluster-wide terms (affinity, spread) only need recomputing when the pod has some or an
    // existing pod's anti-affinity could be among the victims.
    let needs_cluster_state =
        node.pods_with_required_anti_affinity > 0 || pod_has_cluster_terms(state.pod);
    let fits = |trial: &NodeInfo, excluded: &HashSet<String>| {
        if needs_cluster_state {
            CycleState::new(state.pod, snapshot, Some(excluded))
                .filter(trial, snapshot)
                .is_ok()
        } else {
            state.filter(trial, snapshot).is_ok()
        }
    };
    if !fits(&trial, &excluded) {
        return None;
    }
    lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
    let mut victims = Vec::new();
    for p in lower {
        trial.add_pod(p.clone());
        excluded.remove(&p.key);
        if !fits(&trial, &excluded) {
            trial.remove_pod(&p.key);
            excluded.insert(p.key.clone());
            victims.push(p);
        }
    }
    Some(victims)
}

fn pod_has_cluster_terms(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let affinity = spec.and_then(|s| s.affinity.as_ref());
    affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
        || spec
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty())
}

/// Runs every filter on every node (no early stop): which nodes fit `pod`, and why not.
pub fn filter_nodes(pod: &Pod, snapshot: &Snapshot) -> BTreeMap<String, Result<(), NodeStatus>> {
    let state = CycleState::new(pod, snapshot, None);
    snapshot
        .nodes()
        .iter()
        .map(|n| (n.name.clone(), state.filter(n, snapshot)))
        .collect()
}
