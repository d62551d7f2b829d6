use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, Node, NodeAffinity, NodeCondition, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus as K8sNodeStatus, Pod,
    PodAffinity, PodAffinityTerm, PodAntiAffinity, PodSpec, PreferredSchedulingTerm,
    ResourceRequirements, Taint, Toleration, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    let mut m = BTreeMap::new();
    if !cpu.is_empty() {
        m.insert("cpu".to_string(), Quantity(cpu.into()));
    }
    if !memory.is_empty() {
        m.insert("memory".to_string(), Quantity(memory.into()));
    }
    m
}

fn node(name: &str, cpu: &str, memory: &str) -> Node {
    let mut allocatable = quantities(cpu, memory);
    allocatable.insert("pods".into(), Quantity("110".into()));
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(&[("kubernetes.io/hostname", name)])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(K8sNodeStatus {
            allocatable: Some(allocatable),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn with_label(mut n: Node, key: &str, value: &str) -> Node {
    n.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
    n
}

fn with_taint(mut n: Node, key: &str, value: &str, effect: &str) -> Node {
    let spec = n.spec.get_or_insert_with(Default::default);
    spec.taints.get_or_insert_with(Vec::new).push(Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.into()),
        effect: effect.into(),
        time_added: None,
    });
    n
}

fn container(cpu: &str, memory: &str) -> Container {
    let requests = quantities(cpu, memory);
    Container {
        name: "c".into(),
        resources: Some(ResourceRequirements {
            requests: (!requests.is_empty()).then_some(requests),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container(cpu, memory)],
            ..Default::default()
        }),
        status: None,
    }
}

fn bound(mut p: Pod, node: &str) -> Pod {
    p.spec.as_mut().unwrap().node_name = Some(node.into());
    p
}

fn with_pod_labels(mut p: Pod, pairs: &[(&str, &str)]) -> Pod {
    p.metadata.labels = Some(labels(pairs));
    p
}

fn spec(p: &mut Pod) -> &mut PodSpec {
    p.spec.as_mut().unwrap()
}

fn selector(pairs: &[(&str, &str)]) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    })
}

fn term(key: &str, pairs: &[(&str, &str)]) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: selector(pairs),
        topology_key: key.into(),
        ..Default::default()
    }
}

fn fit_error(p: &Pod, snapshot: &Snapshot) -> FitError {
    schedule(p, snapshot, 7).expect_err("pod should not fit")
}

/// Names of the nodes that pass every filter.
fn fitting(p: &Pod, snapshot: &Snapshot) -> std::collections::BTreeSet<String> {
    filter_nodes(p, snapshot)
        .into_iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| n)
        .collect()
}

fn set(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Schedules with several seeds and returns every node chosen.
fn chosen(p: &Pod, snapshot: &Snapshot) -> std::collections::BTreeSet<String> {
    (0..32)
        .map(|seed| schedule(p, snapshot, seed).expect("pod should fit"))
        .collect()
}

#[test]
fn not_ready_and_unschedulable_nodes_are_filtered() {
    let mut not_ready = node("a", "4", "8Gi");
    not_ready
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "False".into();
    let mut cordoned = node("b", "4", "8Gi");
    cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
    let snapshot = Snapshot::new(vec![not_ready, cordoned, node("c", "4", "8Gi")], vec![]);
    let p = pod("p", "100m", "");
    assert_eq!(chosen(&p, &snapshot), ["c".to_string()].into());

    let only_bad = Snapshot::new(
        vec![
            snapshot.node("a").unwrap().node.as_ref().clone(),
            snapshot.node("b").unwrap().node.as_ref().clone(),
        ],
        vec![],
    );
    let message = fit_error(&p, &only_bad).to_string();
    assert!(message.starts_with(
        "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable."
    ), "{message}");

    let mut tolerant = p.clone();
    spec(&mut tolerant).tolerations = Some(vec![Toleration {
        key: Some("node.kubernetes.io/unschedulable".into()),
        operator: Some("Exists".into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }]);
    assert_eq!(schedule(&tolerant, &only_bad, 1).unwrap(), "b");
}

/// A DaemonSet pod: a `metadata.name In [node]` term and the unschedulable toleration bind it
/// to its node, even a cordoned one, and nowhere else.
#[test]
fn daemon_pod_binds_to_its_named_node_even_when_cordoned() {
    let mut cordoned = node("b", "4", "8Gi");
    cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
    let snapshot = Snapshot::new(
        vec![node("a", "4", "8Gi"), cordoned, node("c", "4", "8Gi")],
        vec![],
    );
    let mut p = pod("agent-x", "100m", "");
    spec(&mut p).affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: None,
                    match_fields: Some(vec![NodeSelectorRequirement {
                        key: "metadata.name".into(),
                        operator: "In".into(),
                        values: Some(vec!["b".into()]),
                    }]),
                }],
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..Default::default()
    });
    spec(&mut p).tolerations = Some(vec![Toleration {
        key: Some("node.kubernetes.io/unschedulable".into()),
        operator: Some("Exists".into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }]);
    assert_eq!(chosen(&p, &snapshot), ["b".to_string()].into());
    spec(&mut p).tolerations = None;
    assert!(
        fit_error(&p, &snapshot)
            .to_string()
            .starts_with("0/3 nodes are available:")
    );
}

#[test]
fn taints_against_tolerations() {
    let snapshot = Snapshot::new(
        vec![
            with_taint(node("gpu", "4", "8Gi"), "dedicated", "gpu", "NoSchedule"),
            with_taint(node("evict", "4", "8Gi"), "maintenance", "", "NoExecute"),
            with_taint(node("soft", "4", "8Gi"), "spot", "", "PreferNoSchedule"),
        ],
        vec![],
    );
    let p = pod("p", "100m", "");
    assert_eq!(
        chosen(&p, &snapshot),
        ["soft".to_string()].into(),
        "PreferNoSchedule does not filter"
    );

    let mut tolerant = p.clone();
    spec(&mut tolerant).tolerations = Some(vec![
        Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("gpu".into()),
            ..Default::default()
        },
        Toleration {
            key: Some("maintenance".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        },
    ]);
    // With every NoSchedule/NoExecute taint tolerated, the soft taint now costs "soft" points.
    assert_eq!(
        chosen(&tolerant, &snapshot),
        ["evict".to_string(), "gpu".to_string()].into()
    );
}

#[test]
fn resource_fit_counts_bound_pods() {
    let snapshot = Snapshot::new(
        vec![node("small", "1", "1Gi"), node("big", "4", "8Gi")],
        vec![bound(pod("x", "3500m", "1Gi"), "big")],
    );
    let p = pod("p", "800m", "512Mi");
    assert_eq!(chosen(&p, &snapshot), ["small".to_string()].into());
    let too_big = pod("q", "2", "4Gi");
    assert_eq!(
        fit_error(&too_big, &snapshot).to_string(),
        "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.."
    );
}

#[test]
fn too_many_pods() {
    let mut n = node("n", "4", "8Gi");
    n.status
        .as_mut()
        .unwrap()
        .allocatable
        .as_mut()
        .unwrap()
        .insert("pods".into(), Quantity("1".into()));
    let snapshot = Snapshot::new(vec![n], vec![bound(pod("x", "", ""), "n")]);
    let message = fit_error(&pod("p", "", ""), &snapshot).to_string();
    assert!(
        message.starts_with("0/1 nodes are available: 1 Too many pods."),
        "{message}"
    );
}

#[test]
fn init_containers_and_sidecars_count_as_upstream() {
    let mut p = pod("p", "100m", "100Mi");
    let mut init = container("1", "50Mi");
    init.name = "init".into();
    let mut sidecar = container("200m", "10Mi");
    sidecar.restart_policy = Some("Always".into());
    spec(&mut p).init_containers = Some(vec![sidecar, init]);
    let r = pod_requests(&p, false);
    // max(app 100m + sidecar 200m, init 1000m + sidecar 200m) = 1200m
    assert_eq!(r.milli_cpu, 1200);
    // max(100Mi + 10Mi, 50Mi + 10Mi) = 110Mi
    assert_eq!(r.memory, 110 * 1024 * 1024);
    let non_zero = pod_requests(&pod("b", "", ""), true);
    assert_eq!(
        (non_zero.milli_cpu, non_zero.memory),
        (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST)
    );

    let snapshot = Snapshot::new(vec![node("n", "1", "8Gi")], vec![]);
    assert!(
        fit_error(&p, &snapshot)
            .to_string()
            .contains("1 Insufficient cpu")
    );
}

#[test]
fn node_selector_and_required_affinity() {
    let snapshot = Snapshot::new(
        vec![
            with_label(node("a", "4", "8Gi"), "disk", "ssd"),
            with_label(node("b", "4", "8Gi"), "disk", "hdd"),
            node("c", "4", "8Gi"),
        ],
        vec![],
    );
    let mut p = pod("p", "100m", "");
    spec(&mut p).node_selector = Some(labels(&[("disk", "ssd")]));
    assert_eq!(chosen(&p, &snapshot), ["a".to_string()].into());

    let mut q = pod("q", "100m", "");
    spec(&mut q).affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![
                    NodeSelectorTerm {
                        match_expressions: Some(vec![
                            NodeSelectorRequirement {
                                key: "disk".into(),
                                operator: "NotIn".into(),
                                values: Some(vec!["ssd".into()]),
                            },
                            NodeSelectorRequirement {
                                key: "disk".into(),
                                operator: "Exists".into(),
                                values: None,
                            },
                        ]),
                        match_fields: None,
                    },
                    NodeSelectorTerm {
                        match_expressions: None,
                        match_fields: Some(vec![NodeSelectorRequirement {
                            key: "metadata.name".into(),
                            operator: "In".into(),
                            values: Some(vec!["c".into()]),
                        }]),
                    },
                ],
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..Default::default()
    });
    assert_eq!(
        chosen(&q, &snapshot),
        ["b".to_string(), "c".to_string()].into()
    );
    spec(&mut q).node_selector = Some(labels(&[("disk", "nvme")]));
    assert!(fit_error(&q, &snapshot).to_string().starts_with(
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    ));
}

fn zoned_nodes() -> Vec<Node> {
    vec![
        with_label(node("a1", "4", "8Gi"), "zone", "a"),
        with_label(node("a2", "4", "8Gi"), "zone", "a"),
        with_label(node("b1", "4", "8Gi"), "zone", "b"),
    ]
}

#[test]
fn required_pod_affinity_follows_matching_pods_by_topology() {
    let db = with_pod_labels(bound(pod("db", "100m", ""), "a2"), &[("app", "db")]);
    let snapshot = Snapshot::new(zoned_nodes(), vec![db]);
    let mut p = pod("web", "100m", "");
    spec(&mut p).affinity = Some(Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![term(
                "zone",
                &[("app", "db")],
            )]),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(fitting(&p, &snapshot), set(&["a1", "a2"]));

    // No pod matches: only a pod matching its own term may go first.
    let empty = Snapshot::new(zoned_nodes(), vec![]);
    assert!(
        fit_error(&p, &empty)
            .to_string()
            .contains("3 node(s) didn't match pod affinity rules")
    );
    let self_matching = with_pod_labels(p.clone(), &[("app", "db")]);
    assert_eq!(fitting(&self_matching, &empty).len(), 3);
}

#[test]
fn required_anti_affinity_both_directions() {
    let existing = with_pod_labels(bound(pod("w1", "100m", ""), "a1"), &[("app", "web")]);
    let snapshot = Snapshot::new(zoned_nodes(), vec![existing.clone()]);
    let mut p = with_pod_labels(pod("w2", "100m", ""), &[("app", "web")]);
    spec(&mut p).affinity = Some(Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![term(
                "zone",
                &[("app", "web")],
            )]),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(chosen(&p, &snapshot), ["b1".to_string()].into());

    // The existing pod's anti-affinity rejects newcomers it selects, even without their own terms.
    let mut guarded = existing.clone();
    spec(&mut guarded).affinity = p.spec.as_ref().unwrap().affinity.clone();
    let snapshot = Snapshot::new(zoned_nodes(), vec![guarded]);
    let plain = with_pod_labels(pod("w3", "100m", ""), &[("app", "web")]);
    assert_eq!(chosen(&plain, &snapshot), ["b1".to_string()].into());
    let other_ns = {
        let mut o = plain.clone();
        o.metadata.namespace = Some("other".into());
        o
    };
    assert_eq!(
        fitting(&other_ns, &snapshot).len(),
        3,
        "terms default to the owner's namespace"
    );
}

#[test]
fn topology_spread_do_not_schedule() {
    let web = |name: &str, node_name: &str| {
        with_pod_labels(bound(pod(name, "100m", ""), node_name), &[("app", "web")])
    };
    let snapshot = Snapshot::new(zoned_nodes(), vec![web("w1", "a1"), web("w2", "a2")]);
    let mut p = with_pod_labels(pod("w3", "100m", ""), &[("app", "web")]);
    spec(&mut p).topology_spread_constraints = Some(vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "zone".into(),
        when_unsatisfiable: "DoNotSchedule".into(),
        label_selector: selector(&[("app", "web")]),
        ..Default::default()
    }]);
    assert_eq!(chosen(&p, &snapshot), ["b1".to_string()].into());

    let mut unlabeled = zoned_nodes();
    unlabeled.push(node("bare", "4", "8Gi"));
    let snapshot = Snapshot::new(
        unlabeled,
        vec![web("w1", "a1"), web("w2", "a2"), web("w4", "b1")],
    );
    let mut q = p.clone();
    spec(&mut q).node_selector = Some(labels(&[("zone", "a")]));
    // With the default nodeAffinityPolicy=Honor only zone a counts as a domain, so skew is fine.
    assert_eq!(fitting(&q, &snapshot), set(&["a1", "a2"]));
    spec(&mut q).topology_spread_constraints.as_mut().unwrap()[0].node_affinity_policy =
        Some("Ignore".into());
    let message = fit_error(&q, &snapshot).to_string();
    assert!(
        message.contains("2 node(s) didn't match pod topology spread constraints"),
        "{message}"
    );
}

#[test]
fn host_port_conflicts() {
    let with_port = |p: Pod, port: i32, ip: &str| {
        let mut p = p;
        spec(&mut p).containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(port),
            host_ip: (!ip.is_empty()).then(|| ip.into()),
            ..Default::default()
        }]);
        p
    };
    let snapshot = Snapshot::new(
        vec![node("a", "4", "8Gi"), node("b", "4", "8Gi")],
        vec![with_port(bound(pod("x", "", ""), "a"), 8080, "")],
    );
    assert_eq!(
        chosen(&with_port(pod("p", "", ""), 8080, "10.0.0.1"), &snapshot),
        ["b".to_string()].into()
    );
    assert_eq!(
        fitting(&with_port(pod("p", "", ""), 8081, ""), &snapshot).len(),
        2
    );
    assert_eq!(
        fitting(&with_port(pod("p", "", ""), 8080, "10.0.0.1"), &snapshot),
        set(&["b"])
    );
    let mut udp = with_port(pod("p", "", ""), 8080, "");
    spec(&mut udp).containers[0].ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
    assert_eq!(
        fitting(&udp, &snapshot).len(),
        2,
        "other protocol does not conflict"
    );
}

#[test]
fn least_allocated_prefers_emptier_nodes() {
    let snapshot = Snapshot::new(
        vec![node("busy", "4", "8Gi"), node("idle", "4", "8Gi")],
        vec![bound(pod("x", "2", "4Gi"), "busy")],
    );
    assert_eq!(
        chosen(&pod("p", "500m", "1Gi"), &snapshot),
        ["idle".to_string()].into()
    );
}

#[test]
fn balanced_allocation_prefers_even_usage() {
    // Both nodes end with the same free fraction on average, but "even" keeps cpu and memory
    // usage balanced.
    let snapshot = Snapshot::new(
        vec![node("skewed", "4", "4Gi"), node("even", "4", "4Gi")],
        vec![
            bound(pod("x", "2", "0"), "skewed"),
            bound(pod("y", "1", "1Gi"), "even"),
        ],
    );
    assert_eq!(
        chosen(&pod("p", "1", "1Gi"), &snapshot),
        ["even".to_string()].into()
    );
}

#[test]
fn preferred_node_affinity_wins() {
    let snapshot = Snapshot::new(
        vec![
            with_label(node("a", "4", "8Gi"), "disk", "ssd"),
            node("b", "4", "8Gi"),
        ],
        vec![],
    );
    let mut p = pod("p", "100m", "");
    spec(&mut p).affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                PreferredSchedulingTerm {
                    weight: 10,
                    preference: NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "disk".into(),
                            operator: "In".into(),
                            values: Some(vec!["ssd".into()]),
                        }]),
                        match_fields: None,
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(chosen(&p, &snapshot), ["a".to_string()].into());
}

#[test]
fn preferred_pod_affinity_and_anti_affinity() {
    let cache = with_pod_labels(bound(pod("cache", "100m", ""), "b1"), &[("app", "cache")]);
    let snapshot = Snapshot::new(zoned_nodes(), vec![cache]);
    let weighted = |t: PodAffinityTerm| {
        vec![WeightedPodAffinityTerm {
            weight: 50,
            pod_affinity_term: t,
        }]
    };
    let mut near = pod("near", "100m", "");
    spec(&mut near).affinity = Some(Affinity {
        pod_affinity: Some(PodAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(weighted(term(
                "zone",
                &[("app", "cache")],
            ))),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(chosen(&near, &snapshot), ["b1".to_string()].into());
    let mut far = pod("far", "100m", "");
    spec(&mut far).affinity = Some(Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(weighted(term(
                "zone",
                &[("app", "cache")],
            ))),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(
        chosen(&far, &snapshot),
        ["a1".to_string(), "a2".to_string()].into()
    );
}

#[test]
fn soft_spread_prefers_less_crowded_domains() {
    let web = |name: &str, node_name: &str| {
        with_pod_labels(bound(pod(name, "", ""), node_name), &[("app", "web")])
    };
    // Zone a holds two web pods; resources are otherwise equal per node.
    let snapshot = Snapshot::new(
        zoned_nodes(),
        vec![
            web("w1", "a1"),
            web("w2", "a2"),
            bound(pod("filler", "", ""), "b1"),
        ],
    );
    let mut p = with_pod_labels(pod("w3", "", ""), &[("app", "web")]);
    spec(&mut p).topology_spread_constraints = Some(vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "zone".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: selector(&[("app", "web")]),
        ..Default::default()
    }]);
    assert_eq!(chosen(&p, &snapshot), ["b1".to_string()].into());
}

#[test]
fn fit_error_message_shape() {
    let snapshot = Snapshot::new(
        vec![
            with_taint(
                node("cp", "8", "8Gi"),
                "node-role.kubernetes.io/control-plane",
                "",
                "NoSchedule",
            ),
            node("w1", "1", "8Gi"),
            node("w2", "1", "8Gi"),
        ],
        vec![],
    );
    let error = fit_error(&pod("p", "2", ""), &snapshot);
    assert_eq!(
        error.to_string(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
         2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
         2 No preemption victims found for incoming pod.."
    );
    let mut never = pod("p", "2", "");
    spec(&mut never).preemption_policy = Some("Never".into());
    assert!(
        fit_error(&never, &snapshot).to_string().ends_with(
            "2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
        )
    );
    assert_eq!(
        fit_error(&never, &Snapshot::default()).to_string(),
        "no nodes available to schedule pods"
    );
}

#[test]
fn preemption_picks_fewest_lowest_priority_victims() {
    let prioritized = |p: Pod, priority: i32| {
        let mut p = p;
        spec(&mut p).priority = Some(priority);
        p
    };
    let snapshot = Snapshot::new(
        vec![node("a", "2", "8Gi"), node("b", "2", "8Gi")],
        vec![
            prioritized(bound(pod("a-low", "1", ""), "a"), 10),
            prioritized(bound(pod("a-lower", "1", ""), "a"), 5),
            prioritized(bound(pod("b-mid", "1", ""), "b"), 50),
            prioritized(bound(pod("b-high", "1", ""), "b"), 2000),
        ],
    );
    let p = prioritized(pod("urgent", "1", ""), 1000);
    let (node_name, victims) = preemption_victims(&p, &snapshot).expect("a victim exists");
    // One victim is enough on either node; "a" offers the lowest-priority one.
    assert_eq!(node_name, "a");
    let names: Vec<_> = victims
        .iter()
        .map(|v| v.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["a-lower".to_string()]);

    let error = fit_error(&p, &snapshot);
    assert_eq!(
        error.preemption.as_ref().map(|p| p.node.as_str()),
        Some("a")
    );
    assert_eq!(
        error.to_string(),
        "0/2 nodes are available: 2 Insufficient cpu."
    );

    let low = prioritized(pod("low", "1", ""), 1);
    assert!(preemption_victims(&low, &snapshot).is_none());
    assert!(fit_error(&low, &snapshot).to_string().ends_with(
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.."
    ));
}

#[test]
fn snapshot_tracks_assumed_and_removed_pods() {
    let mut snapshot = Snapshot::new(vec![node("a", "1", "1Gi")], vec![]);
    let p = pod("p", "600m", "");
    snapshot.assume_pod(&p, "a");
    assert_eq!(snapshot.pod_node("default/p"), Some("a"));
    assert_eq!(snapshot.node("a").unwrap().requested.milli_cpu, 600);
    assert!(schedule(&pod("q", "600m", ""), &snapshot, 0).is_err());
    snapshot.remove_pod("default/p");
    assert_eq!(snapshot.node("a").unwrap().requested.milli_cpu, 0);
    // Pods bound to unknown nodes are kept and attached when the node shows up.
    snapshot.upsert_pod(bound(pod("o", "300m", ""), "late"));
    snapshot.upsert_node(node("late", "1", "1Gi"));
    assert_eq!(snapshot.node("late").unwrap().requested.milli_cpu, 300);
    let mut done = bound(pod("o", "300m", ""), "late");
    done.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    snapshot.upsert_pod(done);
    assert_eq!(
        snapshot.node("late").unwrap().requested.milli_cpu,
        0,
        "terminal pods free resources"
    );
}

#[test]
fn feasible_nodes_to_find_follows_upstream() {
    assert_eq!(num_feasible_nodes_to_find(50), 50);
    assert_eq!(num_feasible_nodes_to_find(100), 100);
    assert_eq!(num_feasible_nodes_to_find(1000), 420);
    assert_eq!(num_feasible_nodes_to_find(5000), 500);
    assert_eq!(num_feasible_nodes_to_find(6000), 300);
    assert_eq!(num_feasible_nodes_to_find(10_000), 500);
}

#[test]
fn thousand_pods_spread_over_thousand_nodes() {
    let nodes: Vec<Node> = (0..1000)
        .map(|i| node(&format!("n{i}"), "4", "16Gi"))
        .collect();
    let mut snapshot = Snapshot::new(nodes, vec![]);
    let mut seed = 12345u64;
    for i in 0..1000 {
        let p = pod(&format!("p{i}"), "100m", "128Mi");
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let chosen = schedule(&p, &snapshot, seed).expect("fits");
        snapshot.assume_pod(&p, &chosen);
    }
    let max = snapshot.nodes().iter().map(|n| n.pods.len()).max().unwrap();
    assert_eq!(snapshot.num_pods(), 1000);
    assert!(max <= 2, "a node got {max} pods");
}

#[test]
fn a_missing_claim_is_reported_once_as_upstream_pre_filter_failures_are() {
    let snapshot = Snapshot::new(
        vec![
            node("a", "4", "8Gi"),
            node("b", "4", "8Gi"),
            node("c", "4", "8Gi"),
        ],
        vec![],
    );
    let mut p = pod("web", "100m", "64Mi");
    spec(&mut p).volumes = Some(vec![k8s_openapi::api::core::v1::Volume {
        name: "data".into(),
        persistent_volume_claim: Some(
            k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                claim_name: "data".into(),
                read_only: None,
            },
        ),
        ..Default::default()
    }]);
    assert_eq!(
        fit_error(&p, &snapshot).to_string(),
        "0/3 nodes are available: persistentvolumeclaim \"data\" not found. preemption: \
         0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}
