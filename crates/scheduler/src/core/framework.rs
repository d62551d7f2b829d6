//! Per-pod cycle state (upstream's PreFilter/PreScore) and the filter and score plugins.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{NodeSelectorTerm, Pod, PodAffinityTerm, Taint, Toleration};

use super::selectors::{Selector, node_matches_term, node_matches_terms, tolerated};
use super::snapshot::{NodeInfo, PodInfo, Readiness, Snapshot};

pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const REASON_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_SPREAD_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// Why one node was filtered out. `unresolvable` failures cannot be fixed by preemption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub reasons: Vec<String>,
    pub unresolvable: bool,
}

impl NodeStatus {
    fn resolvable(reason: &str) -> Self {
        NodeStatus {
            reasons: vec![reason.to_string()],
            unresolvable: false,
        }
    }
    fn unresolvable(reason: impl Into<String>) -> Self {
        NodeStatus {
            reasons: vec![reason.into()],
            unresolvable: true,
        }
    }
}

/// An inter-pod affinity term with its namespaces and selector resolved.
pub struct AffinityTerm {
    namespaces: Vec<String>,
    namespace_selector: Option<Selector>,
    selector: Selector,
    topology_key: String,
    weight: i64,
}

impl AffinityTerm {
    fn new(owner: &Pod, term: &PodAffinityTerm, weight: i32) -> Self {
        let own_labels = owner.metadata.labels.as_ref();
        let mut selector = Selector::from_label_selector(term.label_selector.as_ref());
        if term.label_selector.is_some() {
            selector.add_label_keys(
                term.match_label_keys.as_deref().unwrap_or_default(),
                own_labels,
                false,
            );
            selector.add_label_keys(
                term.mismatch_label_keys.as_deref().unwrap_or_default(),
                own_labels,
                true,
            );
        }
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(owner.metadata.namespace.clone().unwrap_or_default());
        }
        AffinityTerm {
            namespaces,
            namespace_selector: term
                .namespace_selector
                .as_ref()
                .map(|s| Selector::from_label_selector(Some(s))),
            selector,
            topology_key: term.topology_key.clone(),
            weight: i64::from(weight),
        }
    }

    fn matches(&self, pod: &Pod, snapshot: &Snapshot) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let ns_ok = self.namespaces.iter().any(|n| n == ns)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.matches(snapshot.namespace_labels(ns)));
        ns_ok && self.selector.matches(pod.metadata.labels.as_ref())
    }
}

fn required_terms(pod: &Pod, anti: bool) -> Vec<AffinityTerm> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    };
    terms
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::new(pod, t, 1))
        .collect()
}

fn preferred_terms(pod: &Pod, anti: bool) -> Vec<AffinityTerm> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    };
    terms
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::new(pod, &t.pod_affinity_term, t.weight))
        .collect()
}

type TopologyPair = (String, String);

/// A topology spread constraint, compiled.
struct SpreadConstraint {
    max_skew: i64,
    topology_key: String,
    selector: Selector,
    min_domains: usize,
    honor_node_affinity: bool,
    honor_taints: bool,
}

/// Matching pod counts per domain for a set of constraints.
#[derive(Default)]
struct SpreadCounts {
    /// Per constraint: domain value -> matching pods.
    per_domain: Vec<HashMap<String, i64>>,
}

pub struct CycleState<'a> {
    pub pod: &'a Pod,
    pub info: PodInfo,
    tolerations: &'a [Toleration],
    node_selector: Option<&'a std::collections::BTreeMap<String, String>>,
    required_node_terms: Option<&'a [NodeSelectorTerm]>,
    affinity_terms: Vec<AffinityTerm>,
    anti_affinity_terms: Vec<AffinityTerm>,
    /// Pairs where existing pods match all the pod's affinity terms.
    affinity_counts: HashMap<TopologyPair, i64>,
    anti_affinity_counts: HashMap<TopologyPair, i64>,
    /// Pairs where an existing pod's required anti-affinity rejects this pod.
    existing_anti_affinity_counts: HashMap<TopologyPair, i64>,
    hard_spread: Vec<SpreadConstraint>,
    hard_spread_counts: SpreadCounts,
    hard_spread_min: Vec<i64>,
    soft_spread: Vec<SpreadConstraint>,
    /// The pod's claims resolved, or why no node can take it.
    pub volumes: Result<super::volumes::PodVolumes, String>,
}

/// Pods to leave out of the cluster-wide counts (preemption victims being evaluated).
pub type Excluded<'e> = Option<&'e HashSet<String>>;

fn spread_constraints(pod: &Pod, hard: bool) -> Vec<SpreadConstraint> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.topology_spread_constraints.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| (c.when_unsatisfiable == "DoNotSchedule") == hard)
        .map(|c| {
            let mut selector = Selector::from_label_selector(c.label_selector.as_ref());
            if c.label_selector.is_some() {
                selector.add_label_keys(
                    c.match_label_keys.as_deref().unwrap_or_default(),
                    pod.metadata.labels.as_ref(),
                    false,
                );
            }
            SpreadConstraint {
                max_skew: i64::from(c.max_skew.max(1)),
                topology_key: c.topology_key.clone(),
                selector,
                min_domains: c.min_domains.unwrap_or(1).max(1) as usize,
                honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

impl<'a> CycleState<'a> {
    pub fn new(pod: &'a Pod, snapshot: &Snapshot, excluded: Excluded<'_>) -> Self {
        let spec = pod.spec.as_ref();
        let node_affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref());
        let mut state = CycleState {
            pod,
            info: PodInfo::new(Arc::new(pod.clone())),
            tolerations: spec
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default(),
            node_selector: spec.and_then(|s| s.node_selector.as_ref()),
            required_node_terms: node_affinity
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|s| s.node_selector_terms.as_slice()),
            affinity_terms: required_terms(pod, false),
            anti_affinity_terms: required_terms(pod, true),
            affinity_counts: HashMap::new(),
            anti_affinity_counts: HashMap::new(),
            existing_anti_affinity_counts: HashMap::new(),
            hard_spread: spread_constraints(pod, true),
            hard_spread_counts: SpreadCounts::default(),
            hard_spread_min: Vec::new(),
            soft_spread: spread_constraints(pod, false),
            volumes: super::volumes::resolve(pod, &snapshot.volumes),
        };
        state.compute_inter_pod_affinity(snapshot, excluded);
        if !state.hard_spread.is_empty() {
            let (counts, min) = state.count_spread(&state.hard_spread, snapshot, excluded, None);
            state.hard_spread_counts = counts;
            state.hard_spread_min = min;
        }
        state
    }

    fn compute_inter_pod_affinity(&mut self, snapshot: &Snapshot, excluded: Excluded<'_>) {
        let own_terms = !self.affinity_terms.is_empty() || !self.anti_affinity_terms.is_empty();
        for node in snapshot.nodes() {
            if !own_terms && node.pods_with_required_anti_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                if excluded.is_some_and(|e| e.contains(&existing.key)) {
                    continue;
                }
                if existing.has_required_anti_affinity {
                    for term in required_terms(&existing.pod, true) {
                        if let Some(value) = node.label(&term.topology_key)
                            && term.matches(self.pod, snapshot)
                        {
                            *self
                                .existing_anti_affinity_counts
                                .entry((term.topology_key.clone(), value.to_string()))
                                .or_default() += 1;
                        }
                    }
                }
                if !own_terms {
                    continue;
                }
                if !self.affinity_terms.is_empty()
                    && self
                        .affinity_terms
                        .iter()
                        .all(|t| t.matches(&existing.pod, snapshot))
                {
                    for t in &self.affinity_terms {
                        if let Some(value) = node.label(&t.topology_key) {
                            *self
                                .affinity_counts
                                .entry((t.topology_key.clone(), value.to_string()))
                                .or_default() += 1;
                        }
                    }
                }
                for t in &self.anti_affinity_terms {
                    if let Some(value) = node.label(&t.topology_key)
                        && t.matches(&existing.pod, snapshot)
                    {
                        *self
                            .anti_affinity_counts
                            .entry((t.topology_key.clone(), value.to_string()))
                            .or_default() += 1;
                    }
                }
            }
        }
    }

    fn matches_node_selector_and_affinity(&self, node: &NodeInfo) -> bool {
        let labels = node.labels();
        if let Some(selector) = self.node_selector
            && !selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return false;
        }
        match self.required_node_terms {
            Some(terms) => node_matches_terms(terms, &node.name, labels),
            None => true,
        }
    }

    /// Counts pods matching each constraint per domain over eligible nodes; returns the counts
    /// and each constraint's minimum across domains (0 when there are fewer than minDomains).
    fn count_spread(
        &self,
        constraints: &[SpreadConstraint],
        snapshot: &Snapshot,
        excluded: Excluded<'_>,
        only_nodes: Option<&HashSet<&str>>,
    ) -> (SpreadCounts, Vec<i64>) {
        let mut counts = SpreadCounts {
            per_domain: constraints.iter().map(|_| HashMap::new()).collect(),
        };
        for node in snapshot.nodes() {
            if only_nodes.is_some_and(|o| !o.contains(node.name.as_str())) {
                continue;
            }
            // Upstream only counts nodes carrying every constraint's topology key.
            if constraints
                .iter()
                .any(|c| node.label(&c.topology_key).is_none())
            {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.honor_node_affinity && !self.matches_node_selector_and_affinity(node) {
                    continue;
                }
                if c.honor_taints
                    && first_untolerated_taint(node, self.tolerations, NO_SCHEDULE_EFFECTS)
                        .is_some()
                {
                    continue;
                }
                let value = node.label(&c.topology_key).unwrap_or_default();
                let matching = node
                    .pods
                    .iter()
                    .filter(|p| {
                        p.namespace == self.info.namespace
                            && p.pod.metadata.deletion_timestamp.is_none()
                            && excluded.is_none_or(|e| !e.contains(&p.key))
                            && c.selector.matches(p.labels())
                    })
                    .count() as i64;
                *counts.per_domain[i].entry(value.to_string()).or_default() += matching;
            }
        }
        let mins = constraints
            .iter()
            .zip(&counts.per_domain)
            .map(|(c, domains)| {
                if domains.len() < c.min_domains {
                    0
                } else {
                    domains.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
        (counts, mins)
    }

    /// Runs the filter plugins in upstream's default order, stopping at the first failure.
    pub fn filter(&self, node: &NodeInfo, snapshot: &Snapshot) -> Result<(), NodeStatus> {
        // VolumeBinding's PreFilter: a pod whose claims cannot be resolved fits no node.
        let volumes = self
            .volumes
            .as_ref()
            .map_err(|reason| NodeStatus::unresolvable(reason.clone()))?;
        self.filter_node_local(node)?;
        if !volumes
            .node_terms
            .iter()
            .all(|terms| node_matches_terms(terms, &node.name, node.labels()))
        {
            return Err(NodeStatus::unresolvable(
                super::volumes::REASON_VOLUME_NODE_AFFINITY,
            ));
        }
        self.filter_spread(node)?;
        self.filter_inter_pod_affinity(node, snapshot)
    }

    fn filter_node_local(&self, node: &NodeInfo) -> Result<(), NodeStatus> {
        // NodeUnschedulable
        let spec = node.node.spec.as_ref();
        if spec.and_then(|s| s.unschedulable) == Some(true) {
            let taint = Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                effect: "NoSchedule".into(),
                value: None,
                time_added: None,
            };
            if !tolerated(self.tolerations, &taint) {
                return Err(NodeStatus::unresolvable(REASON_UNSCHEDULABLE));
            }
        }
        // Readiness: the node lifecycle controller expresses it as taints; check the condition
        // directly too, reporting it as the taint it stands for.
        if node.readiness != Readiness::Ready {
            let key = if node.readiness == Readiness::NotReady {
                "node.kubernetes.io/not-ready"
            } else {
                "node.kubernetes.io/unreachable"
            };
            let taint = Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                value: None,
                time_added: None,
            };
            if !tolerated(self.tolerations, &taint) {
                return Err(NodeStatus::unresolvable(format!(
                    "node(s) had untolerated taint {{{key}: }}"
                )));
            }
        }
        // TaintToleration
        if let Some(taint) = first_untolerated_taint(node, self.tolerations, NO_SCHEDULE_EFFECTS) {
            return Err(NodeStatus::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            )));
        }
        // NodeAffinity (nodeSelector and required terms)
        if !self.matches_node_selector_and_affinity(node) {
            return Err(NodeStatus::unresolvable(REASON_NODE_AFFINITY));
        }
        // NodePorts
        if !self.info.host_ports.is_empty()
            && node
                .used_ports()
                .any(|used| self.info.host_ports.iter().any(|p| p.conflicts(used)))
        {
            return Err(NodeStatus::resolvable(REASON_PORTS));
        }
        // NodeResourcesFit
        let mut reasons = Vec::new();
        if node.pods.len() as i64 + 1 > node.allowed_pods {
            reasons.push(REASON_TOO_MANY_PODS.to_string());
        }
        let req = &self.info.requests;
        let (alloc, used) = (&node.allocatable, &node.requested);
        if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
            reasons.push("Insufficient cpu".into());
        }
        if req.memory > 0 && req.memory > alloc.memory - used.memory {
            reasons.push("Insufficient memory".into());
        }
        if req.ephemeral_storage > 0
            && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
        {
            reasons.push("Insufficient ephemeral-storage".into());
        }
        for (name, amount) in &req.scalar {
            if *amount > 0 && *amount > alloc.scalar(name) - used.scalar(name) {
                reasons.push(format!("Insufficient {name}"));
            }
        }
        if !reasons.is_empty() {
            return Err(NodeStatus {
                reasons,
                unresolvable: false,
            });
        }
        Ok(())
    }

    fn filter_spread(&self, node: &NodeInfo) -> Result<(), NodeStatus> {
        if self.hard_spread.is_empty() {
            return Ok(());
        }
        let own_labels = self.pod.metadata.labels.as_ref();
        for (i, c) in self.hard_spread.iter().enumerate() {
            let Some(value) = node.label(&c.topology_key) else {
                return Err(NodeStatus::unresolvable(REASON_SPREAD_MISSING_LABEL));
            };
            let self_match = i64::from(c.selector.matches(own_labels));
            let matching = self.hard_spread_counts.per_domain[i]
                .get(value)
                .copied()
                .unwrap_or(0);
            let skew = matching + self_match - self.hard_spread_min[i];
            if skew > c.max_skew {
                return Err(NodeStatus::resolvable(REASON_SPREAD));
            }
        }
        Ok(())
    }

    fn filter_inter_pod_affinity(
        &self,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> Result<(), NodeStatus> {
        let labels = node.labels();
        let pair_count = |counts: &HashMap<TopologyPair, i64>, key: &str| -> i64 {
            match labels.and_then(|l| l.get(key)) {
                // Avoid allocating a key for the lookup in the common empty case.
                Some(_) if counts.is_empty() => 0,
                Some(v) => counts
                    .get(&(key.to_string(), v.clone()))
                    .copied()
                    .unwrap_or(0),
                None => 0,
            }
        };
        if !self.existing_anti_affinity_counts.is_empty()
            && labels.is_some_and(|l| {
                l.iter().any(|(k, v)| {
                    self.existing_anti_affinity_counts
                        .get(&(k.clone(), v.clone()))
                        .is_some_and(|c| *c > 0)
                })
            })
        {
            return Err(NodeStatus::resolvable(REASON_EXISTING_ANTI_AFFINITY));
        }
        if self
            .anti_affinity_terms
            .iter()
            .any(|t| pair_count(&self.anti_affinity_counts, &t.topology_key) > 0)
        {
            return Err(NodeStatus::resolvable(REASON_ANTI_AFFINITY));
        }
        if !self.affinity_terms.is_empty() {
            if self
                .affinity_terms
                .iter()
                .any(|t| node.label(&t.topology_key).is_none())
            {
                return Err(NodeStatus::unresolvable(REASON_AFFINITY));
            }
            let all_exist = self
                .affinity_terms
                .iter()
                .all(|t| pair_count(&self.affinity_counts, &t.topology_key) > 0);
            // The first pod of a group whose affinity points at itself may go anywhere.
            let first_of_group = self.affinity_counts.is_empty()
                && self
                    .affinity_terms
                    .iter()
                    .all(|t| t.matches(self.pod, snapshot));
            if !all_exist && !first_of_group {
                return Err(NodeStatus::unresolvable(REASON_AFFINITY));
            }
        }
        Ok(())
    }

    /// Weighted, normalised scores of the feasible nodes (upstream default profile weights).
    pub fn score(&self, feasible: &[&NodeInfo], snapshot: &Snapshot) -> Vec<i64> {
        let mut total = vec![0i64; feasible.len()];
        let mut add = |scores: Vec<i64>, weight: i64| {
            for (t, s) in total.iter_mut().zip(scores) {
                *t += s * weight;
            }
        };
        // TaintToleration (weight 3): fewer untolerated PreferNoSchedule taints is better.
        let soft_tolerations: Vec<&Toleration> = self
            .tolerations
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .collect();
        let taint_counts: Vec<i64> = feasible
            .iter()
            .map(|n| prefer_no_schedule_count(n, &soft_tolerations))
            .collect();
        add(normalize_default(taint_counts, true), 3);
        // NodeAffinity (weight 2): sum of matching preferred terms' weights.
        let preferred = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default();
        if !preferred.is_empty() {
            let scores = feasible
                .iter()
                .map(|n| {
                    preferred
                        .iter()
                        .filter(|p| node_matches_term(&p.preference, &n.name, n.labels()))
                        .map(|p| i64::from(p.weight))
                        .sum()
                })
                .collect();
            add(normalize_default(scores, false), 2);
        }
        // NodeResourcesFit LeastAllocated (weight 1) and BalancedAllocation (weight 1).
        add(
            feasible.iter().map(|n| self.least_allocated(n)).collect(),
            1,
        );
        add(
            feasible
                .iter()
                .map(|n| self.balanced_allocation(n))
                .collect(),
            1,
        );
        // PodTopologySpread (weight 2)
        if !self.soft_spread.is_empty() {
            add(self.spread_scores(feasible, snapshot), 2);
        }
        // InterPodAffinity (weight 2)
        add(self.inter_pod_affinity_scores(feasible, snapshot), 2);
        total
    }

    fn least_allocated(&self, node: &NodeInfo) -> i64 {
        let one = |requested: i64, allocatable: i64| {
            if allocatable <= 0 || requested > allocatable {
                0
            } else {
                (allocatable - requested) * 100 / allocatable
            }
        };
        let cpu = one(
            node.non_zero_milli_cpu + self.info.non_zero_milli_cpu,
            node.allocatable.milli_cpu,
        );
        let memory = one(
            node.non_zero_memory + self.info.non_zero_memory,
            node.allocatable.memory,
        );
        (cpu + memory) / 2
    }

    fn balanced_allocation(&self, node: &NodeInfo) -> i64 {
        let req = &self.info.requests;
        // Upstream skips best-effort pods: they do not change the balance.
        if req.milli_cpu == 0 && req.memory == 0 {
            return 0;
        }
        let fraction = |requested: i64, allocatable: i64| {
            if allocatable <= 0 {
                1.0
            } else {
                (requested as f64 / allocatable as f64).min(1.0)
            }
        };
        let cpu = fraction(
            node.requested.milli_cpu + req.milli_cpu,
            node.allocatable.milli_cpu,
        );
        let memory = fraction(node.requested.memory + req.memory, node.allocatable.memory);
        let std_dev = (cpu - memory).abs() / 2.0;
        ((1.0 - std_dev) * 100.0) as i64
    }

    fn spread_scores(&self, feasible: &[&NodeInfo], snapshot: &Snapshot) -> Vec<i64> {
        let constraints = &self.soft_spread;
        let (counts, _) = self.count_spread(constraints, snapshot, None, None);
        // Upstream weighs each constraint by log(number of domains among feasible nodes + 2).
        let weights: Vec<f64> = constraints
            .iter()
            .map(|c| {
                let domains: HashSet<&str> = feasible
                    .iter()
                    .filter_map(|n| n.label(&c.topology_key))
                    .collect();
                ((domains.len() + 2) as f64).ln()
            })
            .collect();
        let raw: Vec<Option<f64>> = feasible
            .iter()
            .map(|n| {
                let mut score = 0.0;
                for (i, c) in constraints.iter().enumerate() {
                    let value = n.label(&c.topology_key)?;
                    let matching = counts.per_domain[i].get(value).copied().unwrap_or(0);
                    score += matching as f64 * weights[i] + (c.max_skew - 1) as f64;
                }
                Some(score.round())
            })
            .collect();
        let known = raw.iter().flatten();
        let max = known.clone().copied().fold(f64::MIN, f64::max);
        let min = known.copied().fold(f64::MAX, f64::min);
        raw.into_iter()
            .map(|s| match s {
                None => 0,
                Some(_) if max <= 0.0 => 100,
                Some(s) => (100.0 * (max + min - s) / max) as i64,
            })
            .collect()
    }

    fn inter_pod_affinity_scores(&self, feasible: &[&NodeInfo], snapshot: &Snapshot) -> Vec<i64> {
        let pref_affinity = preferred_terms(self.pod, false);
        let pref_anti = preferred_terms(self.pod, true);
        let own_terms = !pref_affinity.is_empty() || !pref_anti.is_empty();
        let mut topology_scores: HashMap<TopologyPair, i64> = HashMap::new();
        let mut bump = |key: &str, node: &NodeInfo, amount: i64| {
            if let Some(v) = node.label(key) {
                *topology_scores
                    .entry((key.to_string(), v.to_string()))
                    .or_default() += amount;
            }
        };
        for node in snapshot.nodes() {
            if !own_terms && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                for t in &pref_affinity {
                    if t.matches(&existing.pod, snapshot) {
                        bump(&t.topology_key, node, t.weight);
                    }
                }
                for t in &pref_anti {
                    if t.matches(&existing.pod, snapshot) {
                        bump(&t.topology_key, node, -t.weight);
                    }
                }
                if !existing.has_affinity {
                    continue;
                }
                // Existing pods' terms that point at the incoming pod (symmetry); required
                // affinity counts with upstream's hardPodAffinityWeight of 1.
                for t in required_terms(&existing.pod, false)
                    .into_iter()
                    .chain(preferred_terms(&existing.pod, false))
                {
                    if t.matches(self.pod, snapshot) {
                        bump(&t.topology_key, node, t.weight);
                    }
                }
                for t in preferred_terms(&existing.pod, true) {
                    if t.matches(self.pod, snapshot) {
                        bump(&t.topology_key, node, -t.weight);
                    }
                }
            }
        }
        if topology_scores.is_empty() {
            return vec![0; feasible.len()];
        }
        let keys: HashSet<&str> = topology_scores.keys().map(|(k, _)| k.as_str()).collect();
        let raw: Vec<i64> = feasible
            .iter()
            .map(|n| {
                keys.iter()
                    .filter_map(|k| {
                        let v = n.label(k)?;
                        topology_scores
                            .get(&(k.to_string(), v.to_string()))
                            .copied()
                    })
                    .sum()
            })
            .collect();
        let max = raw.iter().copied().max().unwrap_or(0);
        let min = raw.iter().copied().min().unwrap_or(0);
        raw.into_iter()
            .map(|s| {
                if max > min {
                    100 * (s - min) / (max - min)
                } else {
                    0
                }
            })
            .collect()
    }
}

const NO_SCHEDULE_EFFECTS: &[&str] = &["NoSchedule", "NoExecute"];

pub fn first_untolerated_taint<'n>(
    node: &'n NodeInfo,
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'n Taint> {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|t| effects.contains(&t.effect.as_str()) && !tolerated(tolerations, t))
}

/// Untolerated PreferNoSchedule taints; `relevant` holds tolerations that can match them.
fn prefer_no_schedule_count(node: &NodeInfo, relevant: &[&Toleration]) -> i64 {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| {
            t.effect == "PreferNoSchedule"
                && !relevant
                    .iter()
                    .any(|tol| super::selectors::tolerates(tol, t))
        })
        .count() as i64
}

/// Upstream's DefaultNormalizeScore: scale so the maximum is 100, optionally reversed.
fn normalize_default(scores: Vec<i64>, reverse: bool) -> Vec<i64> {
    let max = scores.iter().copied().max().unwrap_or(0);
    scores
        .into_iter()
        .map(|s| {
            let scaled = if max == 0 { 0 } else { s * 100 / max };
            if reverse { 100 - scaled } else { scaled }
        })
        .collect()
}
