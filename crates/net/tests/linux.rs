//! Root integration tests on the real kernel.
//!
//! They use a test-only bridge `timonelt<4 hex>`, a pod CIDR `10.254.<n>.0/24` and a blackhole
//! for 10.253.0.0/16, never the production 10.42/10.43 ranges, and all traffic stays between the
//! host and namespaces the test made. They run one at a time (they share the blackhole route)
//! and every test resets its network in a Drop guard, so a failure leaves nothing behind.
//! Without root they fail, on purpose: run them as root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ipnet::Ipv4Net;
use timonel_net::{
    LinkKind, LinuxKernel, NetConfig, NetKernel, NsKind, PodNetwork, connect_in_netns,
    run_in_namespace, run_in_netns,
};

static SERIAL: Mutex<()> = Mutex::new(());

const BLACKHOLE: &str = "10.253.0.0/16";

struct Fixture {
    net: PodNetwork,
    config: NetConfig,
    _dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Err(e) = self.net.reset() {
            eprintln!("cleanup: reset failed: {e}");
        }
    }
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the timonel-net Linux tests create bridges, veths and namespaces and need root: \
         run them as root (e.g. `sudo -E cargo test -p timonel-net --test linux`)"
    );
}

fn fixture() -> Fixture {
    require_root();
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tag: u16 = rand::random();
    let octet: u8 = rand::random_range(1..=250);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = NetConfig {
        bridge: format!("timonelt{tag:04x}"),
        pod_cidr: format!("10.254.{octet}.0/24").parse().unwrap(),
        blackhole_cidrs: vec![BLACKHOLE.parse().unwrap()],
        state_dir: dir.path().join("state"),
        netns_dir: dir.path().join("netns"),
        mtu: 1500,
    };
    let net = PodNetwork::linux(config.clone()).expect("PodNetwork::linux");
    Fixture {
        net,
        config,
        _dir: dir,
        _serial: serial,
    }
}

/// Accepts one connection inside `netns` on `ip:port`, reads a line and answers "pong <line>".
fn serve_once(netns: &Path, ip: Ipv4Addr, port: u16) -> std::thread::JoinHandle<String> {
    let listener = run_in_netns(netns, move || TcpListener::bind((ip, port)))
        .expect("join netns")
        .expect("bind inside the pod");
    std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().expect("accept");
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).expect("read");
        let got = String::from_utf8_lossy(&buf[..n]).to_string();
        stream
            .write_all(format!("pong {got}").as_bytes())
            .expect("write");
        format!("{peer} {got}")
    })
}

fn ping(mut stream: TcpStream, word: &str) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(word.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

#[test]
fn two_pods_talk_over_the_bridge() {
    let f = fixture();
    f.net.ensure_host().unwrap();
    let ns_a = f.net.create_namespaces("pod-a", "alpha").unwrap();
    let ns_b = f.net.create_namespaces("pod-b", "bravo").unwrap();
    let a = f.net.attach("pod-a", &ns_a.net).unwrap();
    let b = f.net.attach("pod-b", &ns_b.net).unwrap();
    assert_ne!(a.ip, b.ip);
    assert!(f.config.pod_cidr.contains(&a.ip) && f.config.pod_cidr.contains(&b.ip));
    assert_eq!(a.gateway, f.net.gateway());

    // Inside A: eth0 with a default route via the gateway (/proc/thread-self/net is the
    // namespace of the reading thread).
    let routes = run_in_netns(&ns_a.net, || {
        std::fs::read_to_string("/proc/thread-self/net/route").unwrap()
    })
    .unwrap();
    let gateway_hex = format!("{:08X}", u32::from_le_bytes(a.gateway.octets()));
    assert!(
        routes.lines().any(|l| {
            let cols: Vec<_> = l.split_whitespace().collect();
            cols.len() > 2 && cols[0] == "eth0" && cols[1] == "00000000" && cols[2] == gateway_hex
        }),
        "default route via {} on eth0 in:\n{routes}",
        a.gateway
    );

    // Host -> pod A.
    let server = serve_once(&ns_a.net, a.ip, 8080);
    let answer = ping(connect(SocketAddr::from((a.ip, 8080))), "from-host");
    assert_eq!(answer, "pong from-host");
    let seen = server.join().unwrap();
    assert!(
        seen.starts_with(&f.net.gateway().to_string()),
        "host came from the gateway: {seen}"
    );

    // Pod B -> pod A.
    let server = serve_once(&ns_a.net, a.ip, 8081);
    let target = SocketAddr::from((a.ip, 8081));
    let stream = run_in_netns(&ns_b.net, move || connect(target)).unwrap();
    assert_eq!(ping(stream, "from-b"), "pong from-b");
    let seen = server.join().unwrap();
    assert!(
        seen.starts_with(&b.ip.to_string()),
        "B's own address: {seen}"
    );
}

#[test]
fn connect_in_netns_reaches_pod_loopback() {
    let f = fixture();
    f.net.ensure_host().unwrap();
    let ns = f.net.create_namespaces("pod-lo", "loopy").unwrap();
    // Before attach too: `lo` is up from namespace creation.
    let server = serve_once(&ns.net, Ipv4Addr::LOCALHOST, 9090);
    let stream = connect_in_netns(&ns.net, 9090).unwrap();
    assert_eq!(ping(stream, "pf"), "pong pf");
    server.join().unwrap();
    // Nothing listens on that port on the host's loopback, and not in the pod any more.
    assert!(connect_in_netns(&ns.net, 9090).is_err());
}

#[test]
fn host_setup_is_idempotent_and_blackhole_is_installed() {
    let f = fixture();
    f.net.ensure_host().unwrap();
    f.net.ensure_host().unwrap();
    let kernel = LinuxKernel::new();
    assert_eq!(
        kernel.link_kind(&f.config.bridge).unwrap(),
        Some(LinkKind::Bridge)
    );
    let gateway = Ipv4Net::new(f.net.gateway(), 24).unwrap();
    assert_eq!(
        kernel.link_addresses(&f.config.bridge).unwrap(),
        vec![gateway]
    );
    let blackhole: Ipv4Net = BLACKHOLE.parse().unwrap();
    assert!(kernel.blackhole_routes().unwrap().contains(&blackhole));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
}

#[test]
fn hostname_is_set_in_the_uts_namespace() {
    let f = fixture();
    let ns = f.net.create_namespaces("pod-h", "hosty").unwrap();
    let inside =
        run_in_namespace(&ns.uts, NsKind::Uts, || nix::unistd::gethostname().unwrap()).unwrap();
    assert_eq!(inside.to_str(), Some("hosty"));
    let outside = nix::unistd::gethostname().unwrap();
    assert_ne!(outside.to_str(), Some("hosty"));
    // Asking again returns the same files and does not recreate (hostname would be reset).
    let again = f.net.create_namespaces("pod-h", "other").unwrap();
    assert_eq!(again, ns);
    let inside =
        run_in_namespace(&ns.uts, NsKind::Uts, || nix::unistd::gethostname().unwrap()).unwrap();
    assert_eq!(inside.to_str(), Some("hosty"));
}

#[test]
fn restart_keeps_addresses_and_touches_nothing() {
    let f = fixture();
    f.net.ensure_host().unwrap();
    let ns = f.net.create_namespaces("pod-r", "restart").unwrap();
    let first = f.net.attach("pod-r", &ns.net).unwrap();
    let index_before = link_index(&first.host_veth);

    // A new agent process: fresh PodNetwork over the same state.
    let restarted = PodNetwork::linux(f.config.clone()).unwrap();
    restarted.ensure_host().unwrap();
    assert_eq!(restarted.create_namespaces("pod-r", "restart").unwrap(), ns);
    let second = restarted.attach("pod-r", &ns.net).unwrap();
    assert_eq!(second, first);
    assert_eq!(
        link_index(&first.host_veth),
        index_before,
        "veth was not recreated"
    );
    assert_eq!(restarted.known_pods().unwrap(), vec!["pod-r".to_string()]);
    assert_eq!(restarted.pod_address("pod-r").unwrap(), Some(first.clone()));
    assert_eq!(restarted.pod_namespaces("pod-r").unwrap(), Some(ns.clone()));

    // Still works.
    let server = serve_once(&ns.net, first.ip, 7070);
    assert_eq!(
        ping(connect(SocketAddr::from((first.ip, 7070))), "again"),
        "pong again"
    );
    server.join().unwrap();
}

fn link_index(name: &str) -> u32 {
    let path = PathBuf::from(format!("/sys/class/net/{name}/ifindex"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

fn links_named(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn teardown_and_reset_leave_nothing() {
    let f = fixture();
    f.net.ensure_host().unwrap();
    let ns_a = f.net.create_namespaces("pod-x", "x").unwrap();
    let ns_b = f.net.create_namespaces("pod-y", "y").unwrap();
    let a = f.net.attach("pod-x", &ns_a.net).unwrap();
    let b = f.net.attach("pod-y", &ns_b.net).unwrap();
    assert!(links_named(&a.host_veth).len() == 1 && links_named(&b.host_veth).len() == 1);
    assert_eq!(
        f.net.known_pods().unwrap(),
        vec!["pod-x".to_string(), "pod-y".to_string()]
    );

    f.net.teardown("pod-x").unwrap();
    f.net.teardown("pod-x").unwrap();
    assert!(links_named(&a.host_veth).is_empty());
    assert!(!ns_a.net.exists() && !ns_a.ipc.exists() && !ns_a.uts.exists());
    assert!(!ns_a.net.parent().unwrap().exists());
    assert_eq!(f.net.known_pods().unwrap(), vec!["pod-y".to_string()]);
    // The released address can be had again; B is unaffected.
    assert!(links_named(&b.host_veth).len() == 1 && ns_b.net.exists());

    f.net.reset().unwrap();
    f.net.reset().unwrap();
    assert!(links_named(&b.host_veth).is_empty());
    assert!(links_named(&f.config.bridge).is_empty(), "bridge gone");
    assert!(!ns_b.net.exists());
    assert!(!f.config.state_dir.exists());
    assert!(!f.config.netns_dir.exists());
    let blackhole: Ipv4Net = BLACKHOLE.parse().unwrap();
    assert!(
        !LinuxKernel::new()
            .blackhole_routes()
            .unwrap()
            .contains(&blackhole)
    );
    assert!(f.net.known_pods().unwrap().is_empty());
}
