//! The control plane on simulated nodes, driven by the real kubectl: a Deployment of 10
//! replicas is scheduled over 3 nodes, rolls out, scales and replaces a deleted pod.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kubectl_path() -> PathBuf {
    let dir = std::env::var("TIMONEL_KUBE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/timonel/kube-tools")
        });
    let kubectl = dir.join("kubectl");
    assert!(
        kubectl.exists(),
        "kubectl not found in {}: run scripts/fetch-kube-tools.sh",
        dir.display()
    );
    kubectl
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", home)
        .output()
        .expect("run kubectl")
}

fn ok(kubeconfig: &Path, home: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, home, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Polls `check` until it returns true; panics with `what` after `limit`.
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn deployment_rolls_out_over_simulated_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = env!("CARGO_BIN_EXE_timonel");
    let _server = Killed(
        Command::new(bin)
            .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
            .arg("--https-listen-port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let home = dir.path();
    eventually(Duration::from_secs(30), "server ready", || {
        kubeconfig.exists()
            && kubectl(&kubeconfig, home, &["get", "--raw", "/readyz"])
                .status
                .success()
    });
    let _nodes = Killed(
        Command::new(bin)
            .args([
                "sim-nodes",
                "--count",
                "3",
                "--prefix",
                "sim",
                "--start-delay-ms",
                "100",
            ])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(30), "3 nodes", || {
        ok(&kubeconfig, home, &["get", "nodes", "-o", "name"])
            .lines()
            .count()
            == 3
    });
    ok(
        &kubeconfig,
        home,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=10",
        ],
    );
    ok(
        &kubeconfig,
        home,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    );
    let nodes = ok(
        &kubeconfig,
        home,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
    );
    let nodes: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!(nodes.len(), 10, "{nodes:?}");
    for node in ["sim-0", "sim-1", "sim-2"] {
        assert!(nodes.contains(&node), "no pod on {node}: {nodes:?}");
    }
    // A deleted pod is replaced.
    let first = ok(
        &kubeconfig,
        home,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
    );
    ok(
        &kubeconfig,
        home,
        &["delete", "pod", &first, "--wait=false"],
    );
    eventually(Duration::from_secs(60), "a replacement pod", || {
        let names = ok(
            &kubeconfig,
            home,
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ],
        );
        let names: Vec<&str> = names.split_whitespace().collect();
        names.len() == 10 && !names.contains(&first.as_str())
    });
    // Scale down.
    ok(
        &kubeconfig,
        home,
        &["scale", "deployment/web", "--replicas=4"],
    );
    eventually(Duration::from_secs(60), "4 pods", || {
        ok(
            &kubeconfig,
            home,
            &["get", "pods", "-l", "app=web", "-o", "name"],
        )
        .lines()
        .count()
            == 4
    });
    ok(
        &kubeconfig,
        home,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    );
}
