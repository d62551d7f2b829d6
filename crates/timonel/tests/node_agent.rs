//! End-to-end tests of the node agent: the real `kubectl` v1.35 against `timonel server`
//! (scheduler and controllers) and one `timonel agent` that runs pods as real containers on
//! this machine (namespaces, cgroups, overlayfs, a bridge). They need root.
//!
//! All tests share one node (`e2e-node`, bridge `timonele2e0`, pods in 10.244.0.0/24); each
//! works in its own namespace. A busybox image is built at test time from Debian's
//! busybox-static: dropped as a tarball into the agent's `images/` (imported at start) and
//! pushed to a local `docker-registry` the agent pulls from through `registries.yaml`.
//! Everything the agent made is removed by `timonel reset` when the test process exits.
//! Run: `cargo test -p timonel --test node_agent`.

#[allow(dead_code)]
mod e2e {
    pub mod harness;
}

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use e2e::harness::{Cluster, ClusterConfig, Process, Session, free_loopback_port};

const BRIDGE: &str = "timonele2e0";
const CLUSTER_CIDR: &str = "10.244.0.0/16";
const NODE: &str = "e2e-node";
const IMAGE: &str = "busybox:1.36";

struct Node {
    cluster: Cluster,
    data_dir: PathBuf,
    kubelet_port: u16,
    agent: std::sync::Mutex<Option<Process>>,
    registry: String,
    _registry_process: std::process::Child,
    _reset: Process,
}

/// Tests take this shared; the agent-restart test takes it exclusively, so no other test
/// sees the agent down.
static AGENT_LOCK: RwLock<()> = RwLock::new(());

fn require(binary: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {binary}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{binary} is missing: the node agent tests need the Debian package {package} (apt-get install {package})"
    );
}

fn repo_root() -> PathBuf {
    e2e::harness::manifest_dir().join("../..")
}

// The registry's shell lives as long as the test process: it stops when its stdin closes.
#[allow(clippy::zombie_processes)]
fn start_registry(dir: &Path) -> (String, std::process::Child) {
    require("docker-registry", "docker-registry");
    require("skopeo", "skopeo");
    let port = free_loopback_port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("registry-data").display()
        ),
    )
    .unwrap();
    // A shell that stops the registry when the test process (its stdin) goes away.
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"docker-registry serve "$1" >"$2" 2>&1 & pid=$!; read -r _; kill "$pid"; wait "$pid""#)
        .arg("registry")
        .arg(&config)
        .arg(dir.join("registry.log"))
        .stdin(Stdio::piped())
        .spawn()
        .expect("start docker-registry");
    let host = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&host).is_ok() {
            return (host, child);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("docker-registry did not listen on {host}");
}

fn node() -> &'static Node {
    static NODE_CELL: OnceLock<Node> = OnceLock::new();
    static TRIED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    NODE_CELL.get_or_init(|| {
        // One node per test process: a failed set-up is reported once, not retried with a
        // second agent on the same bridge.
        assert!(
            !TRIED.swap(true, std::sync::atomic::Ordering::SeqCst),
            "the shared node failed to start in an earlier test (see its failure)"
        );
        assert!(
            rustix_is_root(),
            "the node agent tests need root (namespaces, cgroups, mounts): run them as root"
        );
        require("busybox", "busybox-static");
        let cluster = Cluster::start(
            ClusterConfig::control_plane()
                .server_arg("--cluster-cidr")
                .server_arg(CLUSTER_CIDR),
        );
        let data_dir = tempfile::Builder::new()
            .prefix("timonel-e2e-agent-")
            .tempdir()
            .unwrap()
            .keep();
        let reset = cluster.reset_agent_at_exit(&data_dir, BRIDGE, CLUSTER_CIDR);
        // The image: a tarball dropped into images/ (imported at start) and the same image
        // pushed to a local registry.
        let images = data_dir.join("images");
        std::fs::create_dir_all(&images).unwrap();
        let archive = images.join("busybox.tar");
        let built = Command::new(repo_root().join("scripts/build-busybox-image.sh"))
            .arg(&archive)
            .arg(format!("docker.io/library/{IMAGE}"))
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "building the busybox image: {built:?}"
        );
        let (registry, registry_process) = start_registry(&data_dir);
        let pushed = Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false", "--quiet"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{registry}/library/busybox:pulled"))
            .output()
            .unwrap();
        assert!(pushed.status.success(), "skopeo push: {pushed:?}");
        std::fs::write(
            data_dir.join("registries.yaml"),
            format!("mirrors:\n  \"{registry}\":\n    endpoint:\n      - \"http://{registry}\"\n"),
        )
        .unwrap();
        let kubelet_port = free_loopback_port();
        let agent = cluster.agent(
            NODE,
            &data_dir,
            kubelet_port,
            BRIDGE,
            &["--cluster-cidr", CLUSTER_CIDR],
        );
        Node {
            cluster,
            data_dir,
            kubelet_port,
            agent: std::sync::Mutex::new(Some(agent)),
            registry,
            _registry_process: registry_process,
            _reset: reset,
        }
    })
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

const WAIT: Duration = Duration::from_secs(60);

fn session(name: &str) -> (Session<'static>, std::sync::RwLockReadGuard<'static, ()>) {
    let guard = AGENT_LOCK.read().unwrap_or_else(|e| e.into_inner());
    (node().cluster.session(name), guard)
}

fn wait_phase(s: &Session<'_>, pod: &str, phase: &str) {
    s.eventually(&format!("pod {pod} {phase}"), WAIT, || {
        let got = s.jsonpath(&format!("pod/{pod}"), "{.status.phase}");
        if got == phase {
            Ok(())
        } else {
            Err(format!(
                "phase {got:?}; status {}",
                s.jsonpath(&format!("pod/{pod}"), "{.status.containerStatuses}")
            ))
        }
    })
}

fn wait_pod_gone(s: &Session<'_>, pod: &str) {
    s.eventually(
        &format!("pod {pod} deleted"),
        Duration::from_secs(60),
        || {
            let out = s.kubectl(&["get", "pod", pod]);
            if out.status.success() {
                Err("the pod is still there".to_string())
            } else {
                Ok(())
            }
        },
    );
}

fn run_pod(s: &Session<'_>, name: &str, script: &str) {
    s.kubectl_ok(&["run", name, "--image", IMAGE, "--", "sh", "-c", script]);
    wait_phase(s, name, "Running");
}

#[test]
fn a_pod_runs_and_kubectl_reads_its_logs_and_execs_into_it() {
    let (s, _g) = session("agent-run");
    run_pod(
        &s,
        "app",
        "echo started as $(hostname); i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done",
    );
    let ip = s.jsonpath("pod/app", "{.status.podIP}");
    assert!(
        ip.starts_with("10.244."),
        "pod IP {ip} from the node's CIDR"
    );
    assert_eq!(s.jsonpath("pod/app", "{.status.hostIP}"), "127.0.0.1");
    s.eventually("logs", WAIT, || {
        let logs = s.kubectl_ok(&["logs", "app"]);
        if logs.contains("started as app") && logs.contains("tick 1") {
            Ok(())
        } else {
            Err(logs)
        }
    });
    let tail = s.kubectl_ok(&["logs", "app", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let stamped = s.kubectl_ok(&["logs", "app", "--timestamps", "--tail=1"]);
    assert!(
        stamped.split(' ').next().unwrap().contains('T'),
        "{stamped}"
    );
    // Exec: output, stderr and the exit code.
    let out = s.kubectl(&[
        "exec",
        "app",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    let echoed = s.kubectl_stdin_ok(&["exec", "-i", "app", "--", "cat"], "through stdin\n");
    assert_eq!(echoed, "through stdin\n");
    assert_eq!(
        s.kubectl_ok(&["exec", "app", "--", "hostname"]).trim(),
        "app"
    );
    // The pod's network namespace: its own eth0 with the pod IP.
    let addrs = s.kubectl_ok(&["exec", "app", "--", "ip", "-4", "addr", "show", "eth0"]);
    assert!(addrs.contains(&ip), "{addrs}");
    // logs -f follows new lines.
    let mut follow = s.spawn_kubectl(&["logs", "-f", "app", "--tail=0"]);
    follow.expect_line("a followed line", Duration::from_secs(20), |l| {
        l.starts_with("tick")
    });
    // attach shows what the container writes from now on.
    let mut attached = s.spawn_kubectl(&["attach", "app"]);
    attached.expect_line("an attached line", Duration::from_secs(20), |l| {
        l.starts_with("tick")
    });
    drop(attached);
    // ... both streams, until the container exits; then kubectl attach ends successfully.
    s.kubectl_ok(&[
        "run",
        "brief",
        "--restart=Never",
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        "sleep 6; echo bye; echo oops >&2",
    ]);
    wait_phase(&s, "brief", "Running");
    let out = s.kubectl(&["attach", "brief"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bye\n", "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("oops"),
        "{out:?}"
    );
    // The image was imported from the dropped tarball: no pull.
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=app",
    ]);
    assert!(events.contains("already present on machine"), "{events}");
}

#[test]
fn a_crashing_container_goes_into_crash_loop_back_off() {
    let (s, _g) = session("agent-crash");
    s.kubectl_ok(&[
        "run",
        "crash",
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        "echo boom; exit 2",
    ]);
    s.eventually("restarts with back-off", Duration::from_secs(90), || {
        let restarts: u32 = s
            .jsonpath("pod/crash", "{.status.containerStatuses[0].restartCount}")
            .parse()
            .unwrap_or(0);
        let reason = s.jsonpath(
            "pod/crash",
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        if restarts >= 2 && reason == "CrashLoopBackOff" {
            Ok(())
        } else {
            Err(format!("restarts {restarts}, waiting reason {reason:?}"))
        }
    });
    let last = s.jsonpath(
        "pod/crash",
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert_eq!(last, "2");
    let previous = s.kubectl_ok(&["logs", "crash", "--previous"]);
    assert_eq!(previous.trim(), "boom");
    let get = s.kubectl_ok(&["get", "pod", "crash"]);
    assert!(get.contains("CrashLoopBackOff"), "{get}");
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=crash",
    ]);
    assert!(
        events.contains("Back-off restarting failed container") || events.contains("BackOff"),
        "{events}"
    );
}

#[test]
fn probes_restart_unhealthy_containers_and_gate_readiness() {
    let (s, _g) = session("agent-probes");
    s.create_stdin(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600"]
    livenessProbe:
      exec: {command: ["test", "-f", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "mkdir -p /www; echo ok > /www/index.html; httpd -f -p 8080 -h /www"]
    # Exec probes start a helper process each; give them time on a loaded 2-core machine.
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
      timeoutSeconds: 10
    livenessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
      timeoutSeconds: 5
      failureThreshold: 5
"#,
    );
    s.eventually("liveness restarts", Duration::from_secs(60), || {
        let restarts: u32 = s
            .jsonpath("pod/live", "{.status.containerStatuses[0].restartCount}")
            .parse()
            .unwrap_or(0);
        if restarts >= 1 {
            Ok(())
        } else {
            Err(format!("restarts {restarts}"))
        }
    });
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");
    assert!(
        events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );

    wait_phase(&s, "ready", "Running");
    std::thread::sleep(Duration::from_secs(2));
    let ready = s.jsonpath(
        "pod/ready",
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    );
    assert_eq!(ready, "False", "not ready before /tmp/ready exists");
    s.kubectl_ok(&["exec", "ready", "--", "touch", "/tmp/ready"]);
    s.eventually("Ready after /tmp/ready exists", WAIT, || {
        let ready = s.jsonpath(
            "pod/ready",
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        if ready == "True" {
            Ok(())
        } else {
            Err(format!(
                "Ready {ready}; statuses {}; events {}",
                s.jsonpath("pod/ready", "{.status.containerStatuses}"),
                s.kubectl_ok(&[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=ready"
                ])
            ))
        }
    });
    // The HTTP liveness probe passes: no restart.
    assert_eq!(
        s.jsonpath("pod/ready", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    // The pod IP answers from the host, through the bridge.
    let ip = s.jsonpath("pod/ready", "{.status.podIP}");
    let body = http_get(&format!("{ip}:8080"), "/index.html");
    assert!(body.contains("ok"), "{body}");
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
}

#[test]
fn a_memory_hog_is_oom_killed() {
    let (s, _g) = session("agent-oom");
    s.create_stdin(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox:1.36
    command: ["tail", "/dev/zero"]
    resources:
      limits: {memory: 32Mi}
"#,
    );
    s.eventually("OOMKilled", WAIT, || {
        let reason = s.jsonpath(
            "pod/hog",
            "{.status.containerStatuses[0].state.terminated.reason}",
        );
        if reason == "OOMKilled" {
            Ok(())
        } else {
            Err(format!("reason {reason:?}"))
        }
    });
    assert_eq!(
        s.jsonpath(
            "pod/hog",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "137"
    );
    wait_phase(&s, "hog", "Failed");
}

#[test]
fn init_containers_run_first_and_config_reaches_the_container() {
    let (s, _g) = session("agent-init");
    s.kubectl_ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=greeting=hello-config",
    ]);
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=s3cret",
    ]);
    s.create_stdin(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: init, labels: {app: demo}}
spec:
  initContainers:
  - name: first
    image: busybox:1.36
    command: ["sh", "-c", "echo first > /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: busybox:1.36
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "cat /work/order; echo $GREETING $POD_NAME $APP; cat /etc/sec/password; echo; cat /etc/cfg/greeting; echo; sleep 3600"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: APP
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: sec, mountPath: /etc/sec, readOnly: true}
    - {name: cfg, mountPath: /etc/cfg}
  volumes:
  - {name: work, emptyDir: {}}
  - {name: sec, secret: {secretName: sec}}
  - {name: cfg, configMap: {name: cfg}}
"#,
    );
    wait_phase(&s, "init", "Running");
    s.eventually("the app's output", WAIT, || {
        let logs = s.kubectl_ok(&["logs", "init", "-c", "app"]);
        if logs.contains("s3cret") {
            Ok(logs)
        } else {
            Err(logs)
        }
    });
    let logs = s.kubectl_ok(&["logs", "init", "-c", "app"]);
    assert_eq!(
        logs.lines().collect::<Vec<_>>(),
        [
            "first",
            "second",
            "hello-config init demo",
            "s3cret",
            "hello-config"
        ],
        "{logs}"
    );
    for i in 0..2 {
        assert_eq!(
            s.jsonpath(
                "pod/init",
                &format!("{{.status.initContainerStatuses[{i}].state.terminated.reason}}")
            ),
            "Completed"
        );
    }
    assert_eq!(s.kubectl_ok(&["logs", "init", "-c", "first"]), "");
}

#[test]
fn graceful_delete_runs_the_pre_stop_hook_then_sigterm() {
    let (s, _g) = session("agent-delete");
    let out = tempfile::Builder::new()
        .prefix("timonel-e2e-prestop-")
        .tempdir()
        .unwrap();
    s.create_stdin(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "trap 'echo term >> /out/log; exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /out/log"]}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {}, type: Directory}}}}
"#,
        out.path().display()
    ));
    wait_phase(&s, "graceful", "Running");
    s.kubectl_ok(&["delete", "pod", "graceful", "--timeout=60s"]);
    let log = std::fs::read_to_string(out.path().join("log")).unwrap_or_default();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["prestop", "term"],
        "{log}"
    );
    let gone = s.kubectl(&["get", "pod", "graceful"]);
    assert!(!gone.status.success());
}

#[test]
fn a_deployment_of_five_replicas_runs_on_the_node() {
    let (s, _g) = session("agent-deploy");
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image",
        IMAGE,
        "--replicas=5",
        "--",
        "sleep",
        "3600",
    ]);
    s.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let pods = s.get_json(&["pods", "-l", "app=web"]);
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let mut ips: Vec<String> = items
        .iter()
        .map(|p| {
            assert_eq!(p["status"]["phase"], "Running");
            assert_eq!(p["spec"]["nodeName"], NODE);
            p["status"]["podIP"].as_str().unwrap().to_string()
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 5, "every pod has its own address");
    s.kubectl_ok(&["delete", "deployment", "web"]);
}

#[test]
fn port_forward_and_cp_reach_the_container() {
    let (s, _g) = session("agent-pf");
    run_pod(
        &s,
        "web",
        "mkdir -p /www; echo hello-port-forward > /www/index.html; httpd -f -p 8080 -h /www",
    );
    let mut forward = s.spawn_kubectl(&["port-forward", "pod/web", ":8080"]);
    let line = forward.expect_line("the forwarded port", Duration::from_secs(20), |l| {
        l.starts_with("Forwarding from 127.0.0.1:")
    });
    let port = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let body = http_get(&format!("127.0.0.1:{port}"), "/index.html");
    assert!(body.contains("hello-port-forward"), "{body}");
    drop(forward);

    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("up.txt"), "copied up\n").unwrap();
    let src = local.path().join("up.txt").display().to_string();
    s.kubectl_ok(&["cp", &src, "web:/tmp/up.txt"]);
    assert_eq!(
        s.kubectl_ok(&["exec", "web", "--", "cat", "/tmp/up.txt"]),
        "copied up\n"
    );
    let down = local.path().join("down.txt").display().to_string();
    s.kubectl_ok(&["cp", "web:/tmp/up.txt", &down]);
    assert_eq!(std::fs::read_to_string(&down).unwrap(), "copied up\n");
}

#[test]
fn exec_with_a_terminal_under_script() {
    let (s, _g) = session("agent-tty");
    run_pod(&s, "term", "sleep 3600");
    require("script", "bsdutils");
    let kubectl = e2e::harness::tools().kubectl.display().to_string();
    let command = format!(
        "{kubectl} --kubeconfig {} -n {} exec -it term -- sh -c 'test -t 0 && test -t 1 && echo on-a-terminal; tty; awk \"{{print \\\"ctty=\\\" (\\$7 != 0)}}\" /proc/self/stat'",
        node().cluster.kubeconfig.display(),
        s.ns
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HOME", node().data_dir.join("tty-home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("on-a-terminal"), "a terminal inside: {text}");
    // The container's own terminal (its devpts), and the process's controlling terminal, so
    // Ctrl-C and window-size signals reach it.
    assert!(
        text.contains("/dev/pts/"),
        "the container's terminal: {text}"
    );
    assert!(text.contains("ctty=1"), "a controlling terminal: {text}");
}

/// `script` running `command` on a terminal of its own, fed `input`; its exit status and what
/// the terminal showed.
fn under_a_terminal(command: &str, input: &str) -> (std::process::ExitStatus, String) {
    require("script", "bsdutils");
    let mut child = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("HOME", node().data_dir.join("tty-home"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[test]
fn run_with_stdin_feeds_the_container_and_attach_sends_input() {
    let (s, _g) = session("agent-stdin");
    // `run -i`: the pod gets stdin and stdinOnce; kubectl's input reaches the container and
    // its end closes the container's stdin, so the loop ends.
    let out = s.kubectl_stdin_ok(
        &[
            "run",
            "reader",
            "-i",
            "--rm",
            "--restart=Never",
            "--image",
            IMAGE,
            "--",
            "sh",
            "-c",
            "while read line; do echo got:$line; done; echo eof",
        ],
        "one\ntwo\n",
    );
    assert!(out.contains("got:one\ngot:two\neof\n"), "{out}");
    wait_pod_gone(&s, "reader");

    // Without stdinOnce the container's stdin outlives an attach: two sessions each send a
    // line and see the reply.
    s.apply_stdin(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: echoer
spec:
  restartPolicy: Never
  containers:
  - name: echoer
    image: {IMAGE}
    stdin: true
    command: ["sh", "-c", "while read line; do echo reply:$line; done; echo closed"]
"#
    ));
    wait_phase(&s, "echoer", "Running");
    for word in ["first", "second"] {
        let mut attached = s.spawn_kubectl_stdin(&["attach", "-i", "echoer"], &format!("{word}\n"));
        attached.expect_line("the reply", Duration::from_secs(20), |l| {
            l == format!("reply:{word}")
        });
        drop(attached);
    }
    assert_eq!(s.jsonpath("pod/echoer", "{.status.phase}"), "Running");
}

#[test]
fn run_it_gives_the_container_a_terminal_that_follows_resizes() {
    let (s, _g) = session("agent-run-it");
    let kubectl = e2e::harness::tools().kubectl.display().to_string();
    // The outer terminal's size, which kubectl sends on the resize channel.
    let command = format!(
        "stty rows 33 cols 99; {kubectl} --kubeconfig {} -n {} run -it --rm --restart=Never shell --image {IMAGE} -- sh",
        node().cluster.kubeconfig.display(),
        s.ns
    );
    let (status, text) = under_a_terminal(
        &command,
        "sleep 1; stty size; tty; echo answer=$((6*7)); exit\n",
    );
    assert!(status.success(), "{text}");
    // Worked out by the container's shell (the local echo shows only the expression), on
    // the container's own terminal, with the outer size.
    assert!(text.contains("answer=42"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("33 99"), "the resize: {text}");
    wait_pod_gone(&s, "shell");

    // attach -it reaches a running terminal container the same way.
    s.apply_stdin(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: console
spec:
  restartPolicy: Never
  containers:
  - name: console
    image: {IMAGE}
    stdin: true
    tty: true
    command: ["sh"]
"#
    ));
    wait_phase(&s, "console", "Running");
    let command = format!(
        "{kubectl} --kubeconfig {} -n {} attach -it console",
        node().cluster.kubeconfig.display(),
        s.ns
    );
    let (status, text) = under_a_terminal(&command, "echo sum=$((40+2)); exit\n");
    assert!(status.success(), "{text}");
    assert!(text.contains("sum=42"), "{text}");
    wait_phase(&s, "console", "Succeeded");
}

/// A kubeconfig that authenticates with `token` alone (no client certificate).
fn token_kubeconfig(s: &Session<'_>, name: &str, token: &str) -> PathBuf {
    let cluster = &node().cluster;
    let ca = cluster.dir.join("server/server/tls/server-ca.crt");
    s.write_file(
        name,
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            cluster.port,
            ca.display(),
            token.trim()
        ),
    )
}

#[test]
fn pods_get_service_account_credentials_that_authenticate_to_the_api() {
    let (s, _g) = session("agent-sa");
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    run_pod(&s, "client", "sleep 3600");
    let read =
        |file: &str| s.kubectl_ok(&["exec", "client", "--", "cat", &format!("{dir}/{file}")]);
    let token = read("token");
    assert_eq!(read("namespace"), s.ns);
    let ca = std::fs::read_to_string(node().cluster.dir.join("server/server/tls/server-ca.crt"))
        .unwrap();
    assert_eq!(read("ca.crt"), ca, "kube-root-ca.crt projected");
    // The published CA comes back when deleted or changed.
    let published = || {
        let out = s.kubectl(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text == ca {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    };
    s.kubectl_ok(&["delete", "configmap", "kube-root-ca.crt"]);
    s.eventually(
        "kube-root-ca.crt republished",
        Duration::from_secs(30),
        published,
    );
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-p",
        r#"{"data":{"ca.crt":"changed"}}"#,
    ]);
    s.eventually(
        "kube-root-ca.crt restored",
        Duration::from_secs(30),
        published,
    );
    let spec = s.get_json(&["pod", "client"])["spec"].clone();
    assert_eq!(spec["serviceAccountName"], "default");
    assert!(
        spec["volumes"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("kube-api-access-"),
        "{spec}"
    );

    // The mounted token is the pod's service account's, for as long as the pod exists.
    let as_pod = s.via(&token_kubeconfig(&s, "pod-token.kubeconfig", &token));
    let whoami = [
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ];
    assert_eq!(
        as_pod.kubectl_ok(&whoami),
        format!("system:serviceaccount:{}:default", s.ns)
    );
    assert!(
        as_pod
            .kubectl_ok(&["get", "pods", "-o", "name"])
            .contains("pod/client")
    );

    // `kubectl create token` (TokenRequest) gives an unbound token of the same account.
    let created = s.kubectl_ok(&["create", "token", "default", "--duration=15m"]);
    let as_account = s.via(&token_kubeconfig(&s, "sa-token.kubeconfig", &created));
    assert_eq!(
        as_account.kubectl_ok(&whoami),
        format!("system:serviceaccount:{}:default", s.ns)
    );
    let missing = s.kubectl_fail(&["create", "token", "ghost"]);
    assert!(
        missing.contains("serviceaccounts \"ghost\" not found"),
        "{missing}"
    );
    let short = s.kubectl_fail(&["create", "token", "default", "--duration=5m"]);
    assert!(
        short.contains("may not specify a duration less than 10 minutes"),
        "{short}"
    );

    // Deleting the pod revokes the token bound to it.
    s.kubectl_ok(&["delete", "pod", "client", "--grace-period=1"]);
    wait_pod_gone(&s, "client");
    let refused = as_pod.kubectl_fail(&whoami);
    assert!(refused.contains("Unauthorized"), "{refused}");

    // automountServiceAccountToken: false leaves the pod without credentials.
    s.apply_stdin(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: private
spec:
  automountServiceAccountToken: false
  containers:
  - name: private
    image: {IMAGE}
    command: ["sleep", "3600"]
"#
    ));
    wait_phase(&s, "private", "Running");
    let out = s.kubectl(&["exec", "private", "--", "ls", dir]);
    assert!(!out.status.success(), "{out:?}");
    assert!(s.get_json(&["pod", "private"])["spec"]["volumes"].is_null());
}

#[test]
fn an_image_is_pulled_from_a_local_registry() {
    let (s, _g) = session("agent-pull");
    let image = format!("{}/library/busybox:pulled", node().registry);
    s.kubectl_ok(&["run", "pulled", "--image", &image, "--", "sleep", "3600"]);
    wait_phase(&s, "pulled", "Running");
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=pulled",
    ]);
    assert!(
        events.contains(&format!("Pulling image \"{image}\"")),
        "{events}"
    );
    assert!(events.contains("Successfully pulled image"), "{events}");
    // A tag the registry lacks: ErrImagePull, then ImagePullBackOff.
    let missing = format!("{}/library/busybox:missing", node().registry);
    s.kubectl_ok(&["run", "missing", "--image", &missing]);
    s.eventually("image pull failure", WAIT, || {
        let reason = s.jsonpath(
            "pod/missing",
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
            Ok(())
        } else {
            Err(reason)
        }
    });
}

#[test]
fn an_agent_killed_with_sigkill_comes_back_without_restarting_containers() {
    let _exclusive = AGENT_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let n = node();
    let s = n.cluster.session("agent-restart");
    run_pod(&s, "steady", "while true; do echo alive; sleep 1; done");
    let id_before = s.jsonpath("pod/steady", "{.status.containerStatuses[0].containerID}");
    let agent = n.agent.lock().unwrap().take().expect("the agent runs");
    agent.kill();
    std::thread::sleep(Duration::from_secs(2));
    let again = n.cluster.agent(
        NODE,
        &n.data_dir,
        n.kubelet_port,
        BRIDGE,
        &["--cluster-cidr", CLUSTER_CIDR],
    );
    *n.agent.lock().unwrap() = Some(again);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        s.jsonpath("pod/steady", "{.status.containerStatuses[0].containerID}"),
        id_before
    );
    assert_eq!(
        s.jsonpath("pod/steady", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    assert_eq!(s.jsonpath("pod/steady", "{.status.phase}"), "Running");
    assert_eq!(
        s.kubectl_ok(&["exec", "steady", "--", "echo", "still here"]),
        "still here\n"
    );
    let logs = s.kubectl_ok(&["logs", "steady", "--tail=1"]);
    assert_eq!(logs.trim(), "alive");
}

#[test]
fn errors_speak_kubernetes() {
    let (s, _g) = session("agent-errors");
    s.create_stdin(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  containers:
  - {name: a, image: "busybox:1.36", command: ["sleep", "3600"]}
  - {name: b, image: "busybox:1.36", command: ["sleep", "3600"]}
"#,
    );
    wait_phase(&s, "two", "Running");
    // kubectl picks the first container itself; the API names the choices.
    let path = format!("/api/v1/namespaces/{}/pods/two/log", s.ns);
    let err = s.kubectl_fail(&["get", "--raw", &path]);
    assert!(
        err.contains("a container name must be specified for pod two, choose one of: [a b]"),
        "{err}"
    );
    let err = s.kubectl_fail(&["exec", "two", "-c", "zz", "--", "true"]);
    assert!(
        err.contains("container zz is not valid for pod two"),
        "{err}"
    );
    s.kubectl_ok(&[
        "run",
        "nevers",
        "--image",
        "busybox:absent",
        "--image-pull-policy=Never",
    ]);
    s.eventually("ErrImageNeverPull", WAIT, || {
        let reason = s.jsonpath(
            "pod/nevers",
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        if reason == "ErrImageNeverPull" {
            Ok(())
        } else {
            Err(reason)
        }
    });
}

#[test]
fn the_server_runs_its_own_agent_and_imports_images_while_it_runs() {
    let _g = AGENT_LOCK.read().unwrap_or_else(|e| e.into_inner());
    assert!(
        rustix_is_root(),
        "the node agent tests need root: run them as root"
    );
    let kubelet_port = free_loopback_port().to_string();
    let cluster = Cluster::start(
        ClusterConfig::control_plane()
            .with_agent()
            .server_arg("--node-name")
            .server_arg("inside")
            .server_arg("--kubelet-port")
            .server_arg(&kubelet_port)
            .server_arg("--bridge")
            .server_arg("timonelin0")
            .server_arg("--cluster-cidr")
            .server_arg("10.245.0.0/16"),
    );
    let agent_dir = cluster.dir.join("server").join("agent");
    let s = cluster.session("inside");
    s.eventually("the server's own node is Ready", WAIT, || {
        let ready = s.jsonpath(
            "node/inside",
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        if ready == "True" { Ok(()) } else { Err(ready) }
    });
    // Import while the agent runs.
    let archive = cluster.dir.join("busybox.tar");
    let built = Command::new(repo_root().join("scripts/build-busybox-image.sh"))
        .arg(&archive)
        .arg("docker.io/library/busybox:inside")
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let imported = Command::new(env!("CARGO_BIN_EXE_timonel"))
        .args(["image", "import"])
        .arg(&archive)
        .arg("--data-dir")
        .arg(&agent_dir)
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    s.kubectl_ok(&[
        "run",
        "own",
        "--image",
        "busybox:inside",
        "--",
        "sh",
        "-c",
        "echo from the server agent; sleep 3600",
    ]);
    wait_phase(&s, "own", "Running");
    assert!(
        s.jsonpath("pod/own", "{.status.podIP}")
            .starts_with("10.245.")
    );
    s.eventually("logs", WAIT, || {
        let logs = s.kubectl_ok(&["logs", "own"]);
        if logs.contains("from the server agent") {
            Ok(())
        } else {
            Err(logs)
        }
    });
    cluster.kill_server();
    let reset = Command::new(env!("CARGO_BIN_EXE_timonel"))
        .args([
            "reset",
            "--bridge",
            "timonelin0",
            "--cluster-cidr",
            "10.245.0.0/16",
            "--data-dir",
        ])
        .arg(&agent_dir)
        .output()
        .unwrap();
    assert!(reset.status.success(), "{reset:?}");
    let links = Command::new("ip").args(["-br", "link"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("timonelin0"),
        "reset removed the bridge"
    );
}

#[test]
fn a_claim_gets_a_local_path_volume_that_outlives_its_pods() {
    let (s, _g) = session("agent-pvc");
    // The built-in class is the default one: a claim naming no class gets it.
    let classes = s.kubectl_ok(&["get", "storageclass"]);
    assert!(
        classes.contains("local-path (default)") && classes.contains("timonel.io/local-path"),
        "{classes}"
    );
    let writer = |name: &str, script: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: {IMAGE}
    command: ["sh", "-c", "{script}"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - {{name: data, persistentVolumeClaim: {{claimName: data}}}}
"#
        )
    };
    s.create_stdin(
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
"#,
    );
    // WaitForFirstConsumer: nothing is provisioned before a pod uses the claim.
    assert_eq!(s.jsonpath("pvc/data", "{.status.phase}"), "Pending");
    assert_eq!(
        s.jsonpath("pvc/data", "{.spec.storageClassName}"),
        "local-path"
    );
    s.create_stdin(&writer("first", "echo kept > /data/file"));
    wait_phase(&s, "first", "Succeeded");
    assert_eq!(s.jsonpath("pvc/data", "{.status.phase}"), "Bound");
    let volume = s.jsonpath("pvc/data", "{.spec.volumeName}");
    assert!(volume.starts_with("pvc-"), "{volume}");
    assert_eq!(
        s.jsonpath(&format!("pv/{volume}"), "{.status.phase}"),
        "Bound"
    );
    assert_eq!(
        s.jsonpath(
            &format!("pv/{volume}"),
            "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}"
        ),
        NODE
    );
    let host_dir = PathBuf::from(s.jsonpath(&format!("pv/{volume}"), "{.spec.hostPath.path}"));
    assert!(
        host_dir.starts_with(node().data_dir.join("storage")),
        "{}",
        host_dir.display()
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("file")).unwrap(),
        "kept\n"
    );
    // A later pod of the claim sees the data.
    s.create_stdin(&writer("second", "cat /data/file"));
    wait_phase(&s, "second", "Succeeded");
    assert_eq!(s.kubectl_ok(&["logs", "second"]), "kept\n");
    // Deleting the claim (reclaim policy Delete) removes the volume and its directory.
    s.kubectl_ok(&["delete", "pod", "first", "second"]);
    s.kubectl_ok(&["delete", "pvc", "data", "--timeout=60s"]);
    s.eventually("the volume and its directory gone", WAIT, || {
        let pv = s.kubectl(&["get", "pv", &volume]);
        if !pv.status.success() && !host_dir.exists() {
            Ok(())
        } else {
            Err(format!(
                "pv: {}; directory exists: {}",
                String::from_utf8_lossy(&pv.stdout),
                host_dir.exists()
            ))
        }
    });
}

#[test]
fn the_node_proxy_serves_kubelet_stats() {
    let (s, _g) = session("agent-stats");
    run_pod(
        &s,
        "busy",
        "while true; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 0.2; done",
    );
    let path = format!("/api/v1/nodes/{NODE}/proxy/stats/summary");
    s.eventually("the pod's usage in the node summary", WAIT, || {
        let text = s.kubectl_ok(&["get", "--raw", &path]);
        let summary: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if summary["node"]["nodeName"] != NODE
            || summary["node"]["memory"]["availableBytes"]
                .as_u64()
                .unwrap_or(0)
                == 0
        {
            return Err(format!("node: {}", summary["node"]));
        }
        let pod = summary["pods"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["podRef"]["name"] == "busy" && p["podRef"]["namespace"] == s.ns.as_str())
            .cloned()
            .ok_or_else(|| format!("no pod busy: {text}"))?;
        let container = &pod["containers"][0];
        let cpu = container["cpu"]["usageCoreNanoSeconds"]
            .as_u64()
            .unwrap_or(0);
        let memory = container["memory"]["workingSetBytes"].as_u64().unwrap_or(0);
        if container["name"] == "busy"
            && cpu > 0
            && memory > 0
            && pod["memory"]["usageBytes"].as_u64().unwrap_or(0) >= memory
        {
            Ok(())
        } else {
            Err(format!("pod: {pod}"))
        }
    });
    // An unknown kubelet path is the kubelet's 404, passed through.
    let missing = s.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/nothing"),
    ]);
    assert!(!missing.status.success());
}

#[test]
fn containers_of_a_pod_can_share_one_process_namespace() {
    let (s, _g) = session("agent-share-pid");
    s.create_stdin(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: shared}}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: a, image: {IMAGE}, command: ["sleep", "3600"]}}
  - {{name: b, image: {IMAGE}, command: ["sleep", "3601"]}}
"#
    ));
    wait_phase(&s, "shared", "Running");
    // Each container sees the other's processes; PID 1 is the pod's own init, not theirs.
    let ps = s.kubectl_ok(&["exec", "shared", "-c", "a", "--", "ps", "-o", "pid,args"]);
    assert!(ps.contains("sleep 3601"), "{ps}");
    assert!(ps.contains("sleep 3600"), "{ps}");
    let first = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_default();
    assert!(!first.contains("sleep"), "PID 1: {first}\n{ps}");
    // A pod without the field keeps a namespace per container.
    run_pod(&s, "alone", "sleep 3602");
    let own = s.kubectl_ok(&["exec", "alone", "--", "ps", "-o", "pid,args"]);
    assert!(!own.contains("sleep 3601"), "{own}");
    // The namespace's init goes with the pod.
    let uid = s.jsonpath("pod/shared", "{.metadata.uid}");
    let record = node().data_dir.join("pods").join(&uid).join("pause.json");
    let pause: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let pid = pause["pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    s.kubectl_ok(&["delete", "pod", "shared", "--timeout=60s"]);
    s.eventually("the pod's init gone", WAIT, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie its new parent has not reaped yet.
        if stat.is_empty() || stat.contains(") Z ") {
            Ok(())
        } else {
            Err(stat)
        }
    });
}

#[test]
fn a_changed_config_map_reaches_the_running_container() {
    let (s, _g) = session("agent-cm-refresh");
    s.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=level=info",
    ]);
    s.create_stdin(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: reader}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    command: ["sleep", "3600"]
    volumeMounts: [{{name: config, mountPath: /config}}]
  volumes:
  - {{name: config, configMap: {{name: settings}}}}
"#
    ));
    wait_phase(&s, "reader", "Running");
    let read = || s.kubectl_ok(&["exec", "reader", "--", "cat", "/config/level"]);
    assert_eq!(read(), "info");
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"level":"debug"}}"#,
    ]);
    // kubelet's refresh: within about a minute, without a restart.
    s.eventually(
        "the new value in the volume",
        Duration::from_secs(120),
        || match read().as_str() {
            "debug" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    assert_eq!(
        s.jsonpath("pod/reader", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
}

#[test]
fn an_https_probe_does_not_verify_the_certificate() {
    let (s, _g) = session("agent-https-probe");
    // The API server's /livez answers over TLS with a certificate of the cluster's own CA:
    // kubelet probes do not verify it.
    let port = node().cluster.port;
    s.create_stdin(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: secure}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    command: ["sleep", "3600"]
    readinessProbe:
      httpGet: {{host: 127.0.0.1, port: {port}, path: /livez, scheme: HTTPS}}
      periodSeconds: 1
"#
    ));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/secure",
        "--timeout=60s",
    ]);
}
