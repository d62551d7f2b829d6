//! Unit tests of the logic against [`FakeKernel`]; no root needed.

use std::fs;
use std::net::Ipv4Addr;

use super::*;

struct Setup {
    kernel: FakeKernel,
    net: PodNetwork<FakeKernel>,
    config: NetConfig,
    _dir: tempfile::TempDir,
}

fn config_in(dir: &Path, cidr: &str) -> NetConfig {
    NetConfig {
        bridge: "timonel0".to_string(),
        pod_cidr: cidr.parse().unwrap(),
        blackhole_cidrs: vec![
            "10.42.0.0/16".parse().unwrap(),
            "10.43.0.0/16".parse().unwrap(),
        ],
        state_dir: dir.join("state"),
        netns_dir: dir.join("netns"),
        mtu: 1500,
    }
}

fn setup_cidr(cidr: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), cidr);
    let kernel = FakeKernel::new();
    let net = PodNetwork::with_kernel(kernel.clone(), config.clone()).unwrap();
    Setup {
        kernel,
        net,
        config,
        _dir: dir,
    }
}

fn setup() -> Setup {
    setup_cidr("10.42.0.0/24")
}

impl Setup {
    /// A second PodNetwork over the same kernel and directories: an agent restart.
    fn restart(&self) -> PodNetwork<FakeKernel> {
        PodNetwork::with_kernel(self.kernel.clone(), self.config.clone()).unwrap()
    }

    fn pod(&self, pod_id: &str) -> (PodNamespaces, PodAddress) {
        let ns = self.net.create_namespaces(pod_id, pod_id).unwrap();
        let address = self.net.attach(pod_id, &ns.net).unwrap();
        (ns, address)
    }

    fn calls(&self) -> usize {
        self.kernel.state().calls.len()
    }

    fn calls_since(&self, from: usize) -> Vec<String> {
        self.kernel.state().calls[from..].to_vec()
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

// ---- configuration and naming ----

#[test]
fn config_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let good = config_in(dir.path(), "10.42.0.0/24");
    let bad = |f: &dyn Fn(&mut NetConfig)| {
        let mut c = good.clone();
        f(&mut c);
        matches!(
            PodNetwork::with_kernel(FakeKernel::new(), c),
            Err(NetError::Config(_))
        )
    };
    assert!(
        bad(&|c| c.bridge = "br0".into()),
        "bridge must be named timonel*"
    );
    assert!(
        bad(&|c| c.bridge = "timonel-too-long-name".into()),
        "15 chars max"
    );
    assert!(
        bad(&|c| c.bridge = "timonel01234567".into()),
        "looks like a pod veth"
    );
    assert!(bad(&|c| c.pod_cidr = "10.42.0.0/31".parse().unwrap()));
    assert!(
        bad(&|c| c.pod_cidr = "10.42.0.5/24".parse().unwrap()),
        "host bits"
    );
    assert!(bad(&|c| c.mtu = 10));
    assert!(PodNetwork::with_kernel(FakeKernel::new(), good).is_ok());
}

#[test]
fn veth_names_are_ours_short_and_stable() {
    let a = host_veth_name("0b6e4a5c-1111-4a4a-9999-000000000001");
    let b = host_veth_name("0b6e4a5c-1111-4a4a-9999-000000000002");
    assert_eq!(a, host_veth_name("0b6e4a5c-1111-4a4a-9999-000000000001"));
    assert_ne!(a, b);
    for name in [&a, &b] {
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("timonel"));
        assert!(
            name[7..]
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
    let peer = peer_temp_name("pod");
    assert_eq!(peer.len(), 15);
    assert!(peer.starts_with("timonelp"));
    assert_ne!(peer, host_veth_name("pod"));
}

#[test]
fn bad_pod_ids_and_hostnames_are_rejected() {
    let s = setup();
    for id in ["", ".", "..", "../etc", "a/b", "a b", &"x".repeat(254)] {
        assert!(
            matches!(
                s.net.create_namespaces(id, "h"),
                Err(NetError::InvalidArgument(_))
            ),
            "{id:?}"
        );
        assert!(
            matches!(s.net.teardown(id), Err(NetError::InvalidArgument(_))),
            "{id:?}"
        );
    }
    assert!(matches!(
        s.net.create_namespaces("p", ""),
        Err(NetError::InvalidArgument(_))
    ));
    assert!(matches!(
        s.net.create_namespaces("p", &"h".repeat(65)),
        Err(NetError::InvalidArgument(_))
    ));
    assert!(s.kernel.state().calls.is_empty());
}

// ---- host ----

#[test]
fn ensure_host_builds_bridge_gateway_forwarding_and_blackholes() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let state = s.kernel.state();
    let bridge = &state.links["timonel0"];
    assert_eq!(bridge.kind, LinkKind::Bridge);
    assert!(bridge.up);
    assert_eq!(bridge.mtu, 1500);
    assert_eq!(bridge.addresses, vec!["10.42.0.1/24".parse().unwrap()]);
    assert!(state.ip_forward);
    assert_eq!(state.blackholes, s.config.blackhole_cidrs);
    assert_eq!(s.net.gateway(), ip("10.42.0.1"));
}

#[test]
fn ensure_host_is_idempotent_and_repairs_what_is_missing() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let before = s.calls();
    s.net.ensure_host().unwrap();
    let again = s.calls_since(before);
    assert!(
        again
            .iter()
            .all(|c| c.starts_with("set_link_up") || c.starts_with("enable_ip_forward")),
        "second ensure_host only re-asserts state: {again:?}"
    );
    // Someone deleted a blackhole route: it comes back, nothing else is re-added.
    s.kernel
        .delete_blackhole_route("10.43.0.0/16".parse().unwrap())
        .unwrap();
    let before = s.calls();
    s.restart().ensure_host().unwrap();
    let added: Vec<_> = s
        .calls_since(before)
        .into_iter()
        .filter(|c| c.starts_with("add_"))
        .collect();
    assert_eq!(added, vec!["add_blackhole_route 10.43.0.0/16".to_string()]);
}

#[test]
fn ensure_host_refuses_a_foreign_link_with_the_bridge_name() {
    let s = setup();
    s.kernel
        .add_foreign_link("timonel0", LinkKind::Other("dummy".into()));
    assert!(matches!(s.net.ensure_host(), Err(NetError::Conflict(_))));
    // and reset leaves it alone too
    assert!(matches!(s.net.reset(), Err(NetError::Conflict(_))));
    assert!(s.kernel.state().links.contains_key("timonel0"));
}

// ---- namespaces ----

#[test]
fn create_namespaces_makes_three_files_sets_hostname_and_lo() {
    let s = setup();
    let ns = s.net.create_namespaces("uid-1", "web-0").unwrap();
    let dir = s.config.netns_dir.join("uid-1");
    assert_eq!(
        ns,
        PodNamespaces {
            net: dir.join("net"),
            ipc: dir.join("ipc"),
            uts: dir.join("uts")
        }
    );
    assert!(ns.net.exists() && ns.ipc.exists() && ns.uts.exists());
    let state = s.kernel.state();
    assert_eq!(state.namespaces.len(), 3);
    assert_eq!(state.hostnames[&ns.uts], "web-0");
    assert!(state.lo_up.contains(&ns.net));
}

#[test]
fn create_namespaces_is_idempotent_across_restarts() {
    let s = setup();
    let ns = s.net.create_namespaces("uid-1", "web-0").unwrap();
    let before = s.calls();
    assert_eq!(s.net.create_namespaces("uid-1", "web-0").unwrap(), ns);
    assert_eq!(
        s.restart().create_namespaces("uid-1", "renamed").unwrap(),
        ns
    );
    assert!(s.calls_since(before).is_empty(), "nothing touched");
    assert_eq!(s.kernel.state().hostnames[&ns.uts], "web-0");
}

#[test]
fn partial_namespaces_are_recreated() {
    let s = setup();
    let ns = s.net.create_namespaces("uid-1", "web-0").unwrap();
    // Crash after the first bind mount: only net survives.
    s.kernel.remove_namespace_file(&ns.ipc).unwrap();
    s.kernel.remove_namespace_file(&ns.uts).unwrap();
    let again = s.net.create_namespaces("uid-1", "web-0").unwrap();
    assert_eq!(again, ns);
    let state = s.kernel.state();
    assert_eq!(state.namespaces.len(), 3);
    assert_eq!(
        state
            .calls
            .iter()
            .filter(|c| c.starts_with("create_pod_namespaces"))
            .count(),
        2
    );
}

#[test]
fn failed_namespace_creation_leaves_no_files() {
    let s = setup();
    s.kernel.fail_next("create_pod_namespaces");
    assert!(s.net.create_namespaces("uid-1", "h").is_err());
    assert!(s.kernel.state().namespaces.is_empty());
    let ns = s.net.create_namespaces("uid-1", "h").unwrap();
    assert!(ns.net.exists());
}

// ---- attach ----

#[test]
fn attach_plumbs_veth_into_bridge_and_pod() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let (ns, a) = s.pod("uid-a");
    assert_eq!(
        a,
        PodAddress {
            ip: ip("10.42.0.2"),
            prefix_len: 24,
            gateway: ip("10.42.0.1"),
            host_veth: host_veth_name("uid-a"),
        }
    );
    let state = s.kernel.state();
    let host = &state.links[&a.host_veth];
    assert_eq!(host.kind, LinkKind::Veth);
    assert_eq!(host.master.as_deref(), Some("timonel0"));
    assert!(host.up);
    assert_eq!(host.mtu, 1500);
    assert!(
        !state.links.contains_key(&peer_temp_name("uid-a")),
        "peer left the host"
    );
    let pod_links = &state.pod_links[&ns.net];
    assert_eq!(pod_links.len(), 1);
    let eth0 = &pod_links[0];
    assert_eq!(eth0.name, "eth0");
    assert!(eth0.up);
    assert_eq!(eth0.mtu, 1500);
    assert_eq!(eth0.addresses, vec!["10.42.0.2/24".parse().unwrap()]);
    assert_eq!(state.pod_default_routes[&ns.net], ip("10.42.0.1"));
}

#[test]
fn attach_is_idempotent_and_survives_restart_untouched() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let (ns, a) = s.pod("uid-a");
    let before = s.calls();
    assert_eq!(s.net.attach("uid-a", &ns.net).unwrap(), a);
    let restarted = s.restart();
    assert_eq!(restarted.attach("uid-a", &ns.net).unwrap(), a);
    assert!(
        s.calls_since(before).is_empty(),
        "no kernel changes: {:?}",
        s.calls_since(before)
    );
}

#[test]
fn attach_redoes_a_half_done_attempt_with_the_same_address() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let ns = s.net.create_namespaces("uid-a", "a").unwrap();
    s.kernel.fail_next("configure_pod_interface");
    assert!(s.net.attach("uid-a", &ns.net).is_err());
    let state = s.kernel.state();
    assert!(
        !state.links.contains_key(&host_veth_name("uid-a")),
        "cleaned up after failure"
    );
    assert!(state.pod_links.get(&ns.net).is_none_or(|l| l.is_empty()));

    let a = s.net.attach("uid-a", &ns.net).unwrap();
    assert_eq!(
        a.ip,
        ip("10.42.0.2"),
        "address kept across the failed attempt"
    );
    assert_eq!(s.kernel.state().pod_links[&ns.net][0].name, "eth0");
}

#[test]
fn attach_without_completion_record_is_redone() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let (ns, a) = s.pod("uid-a");
    // Crash after plumbing but before the record was written.
    fs::remove_file(s.config.state_dir.join("attached/uid-a")).unwrap();
    let before = s.calls();
    assert_eq!(s.net.attach("uid-a", &ns.net).unwrap(), a);
    let calls = s.calls_since(before);
    assert!(calls[0].starts_with("delete_link timonel"), "{calls:?}");
    assert!(calls.iter().any(|c| c.starts_with("create_veth")));
    let state = s.kernel.state();
    assert_eq!(state.pod_links[&ns.net].len(), 1);
    assert!(state.links.contains_key(&a.host_veth));
}

#[test]
fn attach_recreates_a_veth_that_vanished() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let (ns, a) = s.pod("uid-a");
    s.kernel.delete_link(&a.host_veth).unwrap();
    assert_eq!(s.net.attach("uid-a", &ns.net).unwrap(), a);
    assert!(s.kernel.state().links.contains_key(&a.host_veth));
}

#[test]
fn attach_needs_the_bridge() {
    let s = setup();
    let ns = s.net.create_namespaces("uid-a", "a").unwrap();
    assert!(s.net.attach("uid-a", &ns.net).is_err());
    assert!(
        !s.kernel
            .state()
            .links
            .keys()
            .any(|k| k.starts_with("timonel"))
    );
}

// ---- IPAM ----

#[test]
fn ipam_never_hands_out_network_gateway_or_broadcast_and_exhausts_cleanly() {
    let s = setup_cidr("10.42.0.0/29");
    s.net.ensure_host().unwrap();
    let mut ips = Vec::new();
    for i in 0..5 {
        ips.push(s.pod(&format!("p{i}")).1.ip);
    }
    let expected: Vec<_> = (2..=6).map(|h| Ipv4Addr::new(10, 42, 0, h)).collect();
    assert_eq!(ips, expected);
    let ns = s.net.create_namespaces("p5", "p5").unwrap();
    let err = s.net.attach("p5", &ns.net).unwrap_err();
    assert!(matches!(err, NetError::Exhausted { .. }), "{err}");
    assert!(err.to_string().contains("10.42.0.0/29"), "{err}");
    // Freeing one makes room again.
    s.net.teardown("p3").unwrap();
    assert_eq!(s.net.attach("p5", &ns.net).unwrap().ip, ip("10.42.0.5"));
}

#[test]
fn ipam_smallest_cidr_has_one_address() {
    let s = setup_cidr("10.42.0.0/30");
    s.net.ensure_host().unwrap();
    assert_eq!(s.pod("only").1.ip, ip("10.42.0.2"));
    let ns = s.net.create_namespaces("second", "s").unwrap();
    assert!(matches!(
        s.net.attach("second", &ns.net),
        Err(NetError::Exhausted { .. })
    ));
}

#[test]
fn ipam_is_round_robin_and_persisted() {
    let s = setup();
    s.net.ensure_host().unwrap();
    assert_eq!(s.pod("a").1.ip, ip("10.42.0.2"));
    assert_eq!(s.pod("b").1.ip, ip("10.42.0.3"));
    s.net.teardown("a").unwrap();
    // .2 is free again but allocation continues after the last one handed out...
    assert_eq!(s.pod("c").1.ip, ip("10.42.0.4"));
    // ...also after a restart.
    let restarted = s.restart();
    let ns = restarted.create_namespaces("d", "d").unwrap();
    assert_eq!(restarted.attach("d", &ns.net).unwrap().ip, ip("10.42.0.5"));
    let ipam = s.config.state_dir.join("ipam");
    assert_eq!(fs::read_to_string(ipam.join("10.42.0.3")).unwrap(), "b");
    assert_eq!(
        fs::read_to_string(ipam.join("last_reserved")).unwrap(),
        "10.42.0.5"
    );
    assert!(!ipam.join("10.42.0.2").exists());
}

#[test]
fn ipam_wraps_around_and_skips_taken_addresses() {
    let s = setup_cidr("10.42.0.0/29");
    s.net.ensure_host().unwrap();
    for i in 0..5 {
        s.pod(&format!("p{i}"));
    }
    s.net.teardown("p1").unwrap(); // frees .3; last reserved is .6
    assert_eq!(s.pod("again").1.ip, ip("10.42.0.3"));
}

#[test]
fn ipam_respects_files_it_did_not_write_and_drops_crash_leftovers() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let ipam = s.config.state_dir.join("ipam");
    fs::create_dir_all(&ipam).unwrap();
    fs::write(ipam.join("10.42.0.2"), "other-agent-pod").unwrap();
    fs::write(ipam.join("10.42.0.3"), "").unwrap(); // crash between O_EXCL create and write
    let restarted = s.restart();
    assert!(
        !ipam.join("10.42.0.3").exists(),
        "empty leftover removed at start"
    );
    let ns = restarted.create_namespaces("mine", "m").unwrap();
    assert_eq!(
        restarted.attach("mine", &ns.net).unwrap().ip,
        ip("10.42.0.3")
    );
    assert_eq!(
        fs::read_to_string(ipam.join("10.42.0.2")).unwrap(),
        "other-agent-pod"
    );
}

#[test]
fn same_pod_always_gets_its_address_back() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let (ns, a) = s.pod("a");
    s.pod("b");
    s.kernel.delete_link(&a.host_veth).unwrap();
    assert_eq!(s.restart().attach("a", &ns.net).unwrap().ip, a.ip);
    let owners: Vec<_> = fs::read_dir(s.config.state_dir.join("ipam"))
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.unwrap().path()).ok())
        .filter(|c| c == "a")
        .collect();
    assert_eq!(owners.len(), 1, "one address per pod");
}

// ---- teardown, known pods, reset ----

#[test]
fn teardown_removes_everything_of_one_pod_only() {
    let s = setup();
    s.net.ensure_host().unwrap();
    s.kernel.add_foreign_link("eth9", LinkKind::Veth);
    let (ns_a, a) = s.pod("a");
    let (ns_b, b) = s.pod("b");
    s.net.teardown("a").unwrap();
    let state = s.kernel.state();
    assert!(!state.links.contains_key(&a.host_veth));
    assert!(state.links.contains_key(&b.host_veth));
    assert!(state.links.contains_key("eth9") && state.links.contains_key("timonel0"));
    assert!(!ns_a.net.exists() && !ns_a.ipc.exists() && !ns_a.uts.exists());
    assert!(!s.config.netns_dir.join("a").exists());
    assert!(ns_b.net.exists());
    assert!(
        !s.config
            .state_dir
            .join("ipam")
            .join(a.ip.to_string())
            .exists()
    );
    assert!(!s.config.state_dir.join("attached/a").exists());
    assert_eq!(s.net.known_pods().unwrap(), vec!["b".to_string()]);

    let before = s.calls();
    s.net.teardown("a").unwrap();
    s.net.teardown("never-existed").unwrap();
    let mutating: Vec<_> = s
        .calls_since(before)
        .into_iter()
        .filter(|c| c.starts_with("delete_link"))
        .collect();
    assert!(mutating.is_empty(), "{mutating:?}");
}

#[test]
fn teardown_of_a_half_attached_pod_removes_the_temporary_peer() {
    let s = setup();
    s.net.ensure_host().unwrap();
    let ns = s.net.create_namespaces("a", "a").unwrap();
    // Veth created, then the agent died before moving the peer.
    s.kernel
        .create_veth(&host_veth_name("a"), &peer_temp_name("a"), 1500)
        .unwrap();
    s.net.teardown("a").unwrap();
    let state = s.kernel.state();
    assert!(!state.links.contains_key(&host_veth_name("a")));
    assert!(!state.links.contains_key(&peer_temp_name("a")));
    assert!(!ns.net.exists());
}

#[test]
fn known_pods_lists_namespaces_and_addresses() {
    let s = setup();
    s.net.ensure_host().unwrap();
    assert!(s.net.known_pods().unwrap().is_empty());
    s.net.create_namespaces("only-ns", "x").unwrap();
    s.pod("full");
    let ipam = s.config.state_dir.join("ipam");
    fs::write(ipam.join("10.42.0.200"), "only-ip").unwrap();
    assert_eq!(
        s.net.known_pods().unwrap(),
        vec![
            "full".to_string(),
            "only-ip".to_string(),
            "only-ns".to_string()
        ]
    );
}

#[test]
fn reset_removes_all_we_created_and_nothing_else() {
    let s = setup();
    s.net.ensure_host().unwrap();
    s.kernel
        .add_foreign_link("eth0", LinkKind::Other("".into()));
    s.kernel.add_foreign_link("timonel9", LinkKind::Bridge); // another agent's bridge
    s.kernel
        .add_blackhole_route("192.168.0.0/16".parse().unwrap())
        .unwrap();
    let (ns_a, _) = s.pod("a");
    s.pod("b");
    s.net.create_namespaces("c", "c").unwrap();

    s.net.reset().unwrap();
    let state = s.kernel.state();
    let names: Vec<_> = state.links.keys().cloned().collect();
    assert_eq!(names, vec!["eth0".to_string(), "timonel9".to_string()]);
    assert_eq!(state.blackholes, vec!["192.168.0.0/16".parse().unwrap()]);
    assert!(state.namespaces.is_empty());
    assert!(state.pod_links.is_empty());
    assert!(!ns_a.net.exists());
    assert!(!s.config.state_dir.exists());
    assert!(!s.config.netns_dir.exists());
    assert!(s.net.known_pods().unwrap().is_empty());

    // Idempotent, and the network can be built again afterwards.
    s.net.reset().unwrap();
    s.net.ensure_host().unwrap();
    assert_eq!(s.pod("a").1.ip, ip("10.42.0.2"));
}

#[test]
fn pod_network_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PodNetwork<FakeKernel>>();
    assert_send_sync::<PodNetwork<LinuxKernel>>();

    let s = setup();
    s.net.ensure_host().unwrap();
    let net = &s.net;
    let ips: Vec<Ipv4Addr> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                scope.spawn(move || {
                    let id = format!("pod{i}");
                    let ns = net.create_namespaces(&id, &id).unwrap();
                    net.attach(&id, &ns.net).unwrap().ip
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 8, "{ips:?}");
}

#[test]
fn lookups_report_without_touching() {
    let s = setup();
    s.net.ensure_host().unwrap();
    assert_eq!(s.net.pod_address("a").unwrap(), None);
    assert_eq!(s.net.pod_namespaces("a").unwrap(), None);
    let (ns, a) = s.pod("a");
    let before = s.calls();
    assert_eq!(s.restart().pod_address("a").unwrap(), Some(a.clone()));
    assert_eq!(s.net.pod_namespaces("a").unwrap(), Some(ns.clone()));
    assert!(s.calls_since(before).is_empty());
    // A vanished veth means "not attached" (attach will redo it).
    s.kernel.delete_link(&a.host_veth).unwrap();
    assert_eq!(s.net.pod_address("a").unwrap(), None);
    s.kernel.remove_namespace_file(&ns.ipc).unwrap();
    assert_eq!(s.net.pod_namespaces("a").unwrap(), None);
}

#[test]
fn veth_name_collisions_do_not_hurt_the_other_pod() {
    // Found by search: the first 32 bits of their SHA-256 agree.
    let (first, second) = ("pod-42025", "pod-87981");
    assert_eq!(host_veth_name(first), host_veth_name(second));
    let s = setup();
    s.net.ensure_host().unwrap();
    let (_, a) = s.pod(first);
    let ns = s.net.create_namespaces(second, "b").unwrap();
    let err = s.net.attach(second, &ns.net).unwrap_err();
    assert!(matches!(err, NetError::Conflict(_)), "{err}");
    s.net.teardown(second).unwrap();
    assert!(
        s.kernel.state().links.contains_key(&a.host_veth),
        "first pod keeps its veth"
    );
    assert_eq!(s.net.pod_address(first).unwrap(), Some(a));
}
