//! Drives the real `kubectl` v1.35 and `helm` v4 binaries against a `timonel server` child
//! process. Tools come from `$TIMONEL_KUBE_TOOLS` (default `$HOME/.cache/timonel/kube-tools`,
//! filled by `scripts/fetch-kube-tools.sh`); a missing tool is a loud failure, never a skip.
//!
//! One server per store and test binary is shared by all tests (`shared_cluster`); every test
//! gets its own namespace and its own `HOME`, so tests do not depend on each other or on order.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long one kubectl or helm command may run before the test fails: generous, because a
/// hung command must fail the test rather than hang the suite.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long the server (or etcd) may take to answer its readiness probe.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two polls of a condition.
const POLL_PAUSE: Duration = Duration::from_millis(100);

/// Which store backs the server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// The embedded default: SQLite in the data dir.
    Sqlite,
    /// A real etcd process started for the cluster (`--datastore-endpoint`).
    Etcd,
}

/// Paths of the real client binaries.
pub struct Tools {
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

/// The kubectl and helm binaries, located once.
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let dir = match std::env::var_os("TIMONEL_KUBE_TOOLS") {
            Some(dir) => PathBuf::from(dir),
            None => home_dir().join(".cache/timonel/kube-tools"),
        };
        let tools = Tools {
            kubectl: dir.join("kubectl"),
            helm: dir.join("helm"),
        };
        if !tools.kubectl.is_file() || !tools.helm.is_file() {
            panic!(
                "kubectl/helm not found in {}: run scripts/fetch-kube-tools.sh",
                dir.display()
            );
        }
        tools
    })
}

fn home_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
}

/// The cluster for `store`, started on first use and shared by every test of this binary.
/// A failed start is remembered, so the remaining tests fail at once with the same message
/// instead of each waiting for the readiness deadline again.
pub fn shared_cluster(store: Store) -> &'static Cluster {
    static SQLITE: OnceLock<Result<Cluster, String>> = OnceLock::new();
    static ETCD: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let cell = match store {
        Store::Sqlite => &SQLITE,
        Store::Etcd => &ETCD,
    };
    match cell.get_or_init(|| Cluster::try_start(&ClusterConfig::api_only(store))) {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Supervised child processes
// ---------------------------------------------------------------------------------------------

/// Runs `"$@"` in the background and kills it when our end of its stdin pipe closes — on Drop
/// or when the test process exits, since a shared cluster lives in a static that is never
/// dropped. After the kill it removes `$TIMONEL_E2E_CLEANUP`, so shared clusters leave nothing
/// behind either. The shell exits with the child's status, so a crash is visible to try_wait.
const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null >>"$TIMONEL_E2E_LOG" 2>&1 &
child=$!
(
    read -r _ <&3
    kill -TERM "$child" 2>/dev/null
    tries=0
    while [ "$tries" -lt 100 ] && kill -0 "$child" 2>/dev/null; do
        sleep 0.1
        tries=$((tries + 1))
    done
    kill -KILL "$child" 2>/dev/null
    if [ -n "$TIMONEL_E2E_AFTER" ]; then sh -c "$TIMONEL_E2E_AFTER" >>"$TIMONEL_E2E_LOG" 2>&1; fi
    if [ -n "$TIMONEL_E2E_CLEANUP" ]; then rm -rf "$TIMONEL_E2E_CLEANUP"; fi
) &
exec 3<&-
wait "$child"
"#;

struct Supervised {
    name: String,
    shell: Child,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl Supervised {
    fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        cleanup: Option<&Path>,
    ) -> Result<Supervised, String> {
        Self::spawn_with_after(name, program, args, log, cleanup, "")
    }

    /// `spawn`, and once the process is gone the shell command `after` runs (e.g. a
    /// `timonel reset` that removes what a node agent left on the host).
    fn spawn_with_after(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        cleanup: Option<&Path>,
        after: &str,
    ) -> Result<Supervised, String> {
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(format!("timonel-e2e-{name}"))
            .arg(program)
            .args(args)
            .env("TIMONEL_E2E_LOG", log)
            .env(
                "TIMONEL_E2E_CLEANUP",
                cleanup.map(Path::as_os_str).unwrap_or_default(),
            )
            .env("TIMONEL_E2E_AFTER", after)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot spawn {name} ({}): {err}", program.display()))?;
        let lifeline = shell.stdin.take();
        Ok(Supervised {
            name: name.to_string(),
            shell,
            lifeline,
            log: log.to_path_buf(),
        })
    }

    /// `Some(status)` once the supervised process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.shell.try_wait().ok().flatten()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|err| format!("<cannot read {}: {err}>", self.log.display()))
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(POLL_PAUSE);
        }
        eprintln!("{} did not stop within 15 s", self.name);
        let _ = self.shell.kill();
    }
}

pub fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

/// A running `timonel server` (and its etcd, for `Store::Etcd`).
pub struct Cluster {
    pub store: Store,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub port: u16,
    server: Mutex<Supervised>,
    etcd_endpoint: Option<String>,
    // Declared after `server`, so the server stops before its store.
    _etcd: Option<Supervised>,
    sessions: AtomicUsize,
    namespaces: Mutex<HashSet<String>>,
}

/// How to start a cluster of a test's own.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub store: Store,
    /// Run the scheduler and the controllers inside the server.
    pub control_plane: bool,
    /// More `timonel server` flags (e.g. shortened node-lifecycle timings).
    pub server_args: Vec<String>,
    /// Run the node agent inside the server (root; the test gives it its own bridge).
    pub agent: bool,
}

impl ClusterConfig {
    /// The API server alone: no controller changes the tests' objects.
    pub fn api_only(store: Store) -> Self {
        Self {
            store,
            control_plane: false,
            server_args: Vec::new(),
            agent: false,
        }
    }

    /// The API server with its scheduler and controllers, on SQLite.
    pub fn control_plane() -> Self {
        Self {
            store: Store::Sqlite,
            control_plane: true,
            server_args: Vec::new(),
            agent: false,
        }
    }

    /// Keeps the server's own node agent (no `--disable-agent`).
    pub fn with_agent(mut self) -> Self {
        self.agent = true;
        self
    }

    pub fn server_arg(mut self, arg: &str) -> Self {
        self.server_args.push(arg.to_string());
        self
    }
}

/// A process of a test's own (simulated nodes, a second server); stopped (SIGTERM, then
/// SIGKILL) when dropped or by `stop`.
pub struct Process {
    inner: Supervised,
}

impl Process {
    pub fn log(&self) -> String {
        self.inner.log_text()
    }

    /// Stops the process now and waits until it is gone.
    pub fn stop(self) {
        drop(self)
    }

    /// Kills the process with SIGKILL at once (no clean shutdown) and waits until it is gone.
    pub fn kill(mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.inner.exited().is_none() && Instant::now() < deadline {
            thread::sleep(POLL_PAUSE);
        }
    }

    /// The pid of the supervised program (the watchdog shell's child).
    fn pid(&self) -> Option<u32> {
        let shell = self.inner.shell.id();
        let out = Command::new("pgrep")
            .arg("-P")
            .arg(shell.to_string())
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| !comm.trim().starts_with("sh"))
            })
    }
}

impl Cluster {
    /// Starts a cluster of the test's own; it stops when dropped.
    pub fn start(config: ClusterConfig) -> Cluster {
        Cluster::try_start(&config).unwrap_or_else(|message| panic!("{message}"))
    }

    /// Starts `timonel sim-nodes --count COUNT --prefix PREFIX EXTRA…` against this cluster and
    /// waits until its nodes are registered.
    pub fn sim_nodes(&self, prefix: &str, count: usize, extra: &[&str]) -> Process {
        self.sim_nodes_via(&self.kubeconfig, prefix, count, extra)
    }

    /// `sim_nodes` registered through another server's kubeconfig (e.g. the one
    /// `second_server` returns, once this cluster's own server is gone).
    pub fn sim_nodes_via(
        &self,
        kubeconfig: &Path,
        prefix: &str,
        count: usize,
        extra: &[&str],
    ) -> Process {
        let mut args: Vec<String> = vec![
            "sim-nodes".into(),
            "--count".into(),
            count.to_string(),
            "--prefix".into(),
            prefix.into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let log = self.dir.join(format!("sim-{prefix}.log"));
        let inner = Supervised::spawn(
            &format!("sim-{prefix}"),
            Path::new(env!("CARGO_BIN_EXE_timonel")),
            &args,
            &log,
            None,
        )
        .unwrap_or_else(|message| panic!("{message}"));
        let process = Process { inner };
        let home = self.dir.join("homes").join(format!("sim-{prefix}"));
        std::fs::create_dir_all(&home).expect("create HOME");
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let mut cmd = Command::new(&tools().kubectl);
            cmd.arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["get", "nodes", "-o", "name"]);
            isolate_home(&mut cmd, &home, kubeconfig);
            let names = cmd
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let registered = (0..count)
                .filter(|i| names.lines().any(|l| l == format!("node/{prefix}-{i}")))
                .count();
            if registered == count {
                return process;
            }
            if Instant::now() > deadline {
                self.fail_with_log(format!(
                    "sim-nodes {prefix}: {registered}/{count} nodes registered after \
                     {READY_DEADLINE:?}\n--- sim log ---\n{}",
                    tail(&process.log(), 40)
                ));
            }
            thread::sleep(POLL_PAUSE);
        }
    }

    /// Starts `timonel agent` for node `name` against this cluster, with its data in
    /// `data_dir`, its kubelet API on `kubelet_port` and pods on bridge `bridge`, and waits
    /// until the Node is Ready. `extra` are more agent flags.
    pub fn agent(
        &self,
        name: &str,
        data_dir: &Path,
        kubelet_port: u16,
        bridge: &str,
        extra: &[&str],
    ) -> Process {
        let token =
            std::fs::read_to_string(self.dir.join("server").join("server").join("node-token"))
                .expect("the server wrote its node token");
        let mut args: Vec<String> = vec![
            "agent".into(),
            "--server".into(),
            format!("https://127.0.0.1:{}", self.port),
            "--token".into(),
            token.trim().to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--node-name".into(),
            name.into(),
            "--kubelet-port".into(),
            kubelet_port.to_string(),
            "--bridge".into(),
            bridge.into(),
            // A nearly full disk on the test machine must not taint the node.
            "--disk-pressure-below-percent=0".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let inner = Supervised::spawn(
            &format!("agent-{name}"),
            Path::new(env!("CARGO_BIN_EXE_timonel")),
            &args,
            &self.dir.join(format!("agent-{name}.log")),
            None,
        )
        .unwrap_or_else(|message| panic!("{message}"));
        let process = Process { inner };
        let home = self.dir.join("homes").join(format!("agent-{name}"));
        std::fs::create_dir_all(&home).expect("create HOME");
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let mut cmd = Command::new(&tools().kubectl);
            cmd.arg("--kubeconfig").arg(&self.kubeconfig).args([
                "get",
                "node",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            isolate_home(&mut cmd, &home, &self.kubeconfig);
            let ready = cmd
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if ready.trim() == "True" {
                return process;
            }
            if Instant::now() > deadline {
                self.fail_with_log(format!(
                    "agent {name}: node not Ready after {READY_DEADLINE:?}\n--- agent log ---\n{}",
                    tail(&process.log(), 40)
                ));
            }
            thread::sleep(POLL_PAUSE);
        }
    }

    /// Runs `timonel reset --data-dir DATA_DIR --bridge BRIDGE --cluster-cidr CIDR --remove-data` once the test
    /// process is gone (however it ends), so no container, mount or bridge outlives the tests.
    pub fn reset_agent_at_exit(
        &self,
        data_dir: &Path,
        bridge: &str,
        cluster_cidr: &str,
    ) -> Process {
        // The agent gets the same SIGTERM at the same moment: let it stop first.
        let after = format!(
            "sleep 2; '{}' reset --data-dir '{}' --bridge '{}' --cluster-cidr '{}' --remove-data",
            env!("CARGO_BIN_EXE_timonel"),
            data_dir.display(),
            bridge,
            cluster_cidr
        );
        let inner = Supervised::spawn_with_after(
            "agent-reset",
            Path::new("/bin/sleep"),
            &["1000000".to_string()],
            &self.dir.join("agent-reset.log"),
            None,
            &after,
        )
        .unwrap_or_else(|message| panic!("{message}"));
        Process { inner }
    }

    /// Starts another `timonel server` sharing this cluster's etcd (the cluster must use
    /// `Store::Etcd`), with its own data dir and port; `extra` are more server flags.
    pub fn second_server(&self, name: &str, extra: &[&str]) -> (Process, PathBuf) {
        let endpoint = self
            .etcd_endpoint
            .clone()
            .expect("second_server needs a cluster on Store::Etcd");
        let port = free_loopback_port();
        let data = self.dir.join(name);
        let kubeconfig = self.dir.join(format!("{name}-kubeconfig.yaml"));
        let mut args: Vec<String> = vec![
            "server".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--https-listen-port".into(),
            port.to_string(),
            "--write-kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--disable-agent".into(),
            "--datastore-endpoint".into(),
            endpoint,
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut inner = Supervised::spawn(
            name,
            Path::new(env!("CARGO_BIN_EXE_timonel")),
            &args,
            &self.dir.join(format!("{name}.log")),
            None,
        )
        .unwrap_or_else(|message| panic!("{message}"));
        wait_for_server(&mut inner, &self.dir, &kubeconfig, port)
            .unwrap_or_else(|message| panic!("{message}"));
        (Process { inner }, kubeconfig)
    }

    /// Stops this cluster's server with SIGKILL (no clean shutdown).
    pub fn kill_server(&self) {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        let shell = server.shell.id();
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-P")
            .arg(shell.to_string())
            .arg("timonel")
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while server.exited().is_none() && Instant::now() < deadline {
            thread::sleep(POLL_PAUSE);
        }
    }

    /// Starts a cluster; it stops when dropped (a shared one when the test process exits).
    fn try_start(config: &ClusterConfig) -> Result<Cluster, String> {
        let store = config.store;
        tools();
        let dir = tempfile::Builder::new()
            .prefix("timonel-e2e-")
            .tempdir()
            .map_err(|err| format!("cannot create a temp dir: {err}"))?
            // The watchdogs remove it once the processes that use it are gone.
            .keep();
        let etcd = match store {
            Store::Sqlite => None,
            Store::Etcd => Some(start_etcd(&dir)?),
        };
        let port = free_loopback_port();
        let kubeconfig = dir.join("kubeconfig.yaml");
        let mut args: Vec<String> = vec![
            "server".into(),
            "--data-dir".into(),
            dir.join("server").display().to_string(),
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--https-listen-port".into(),
            port.to_string(),
            "--write-kubeconfig".into(),
            kubeconfig.display().to_string(),
        ];
        if config.agent {
            args.push("--disk-pressure-below-percent=0".into());
        } else {
            args.push("--disable-agent".into());
        }
        if !config.control_plane {
            // Tests of the API server alone: no controller may change their objects.
            args.push("--disable-scheduler".into());
            args.push("--disable-controller-manager".into());
        }
        args.extend(config.server_args.iter().cloned());
        if let Some((_, endpoint)) = &etcd {
            args.push("--datastore-endpoint".into());
            args.push(endpoint.clone());
        }
        let mut server = Supervised::spawn(
            "server",
            Path::new(env!("CARGO_BIN_EXE_timonel")),
            &args,
            &dir.join("server.log"),
            Some(&dir),
        )?;
        wait_for_server(&mut server, &dir, &kubeconfig, port)?;
        Ok(Cluster {
            store,
            dir,
            kubeconfig,
            port,
            server: Mutex::new(server),
            etcd_endpoint: etcd.as_ref().map(|(_, endpoint)| endpoint.clone()),
            _etcd: etcd.map(|(process, _)| process),
            sessions: AtomicUsize::new(0),
            namespaces: Mutex::new(HashSet::new()),
        })
    }

    /// The server's log so far (stdout and stderr).
    pub fn server_log(&self) -> String {
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log_text()
    }

    /// A fresh client context for one test: its own namespace (created here, through a JSON
    /// `create -f`) and its own HOME, so discovery caches and helm state never leak.
    pub fn session(&self, test_name: &str) -> Session<'_> {
        let mut ns: String = test_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        ns.truncate(50);
        let ns = ns.trim_matches('-').to_string();
        {
            let mut taken = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
            assert!(
                taken.insert(ns.clone()),
                "two sessions asked for namespace {ns}"
            );
        }
        let id = self.sessions.fetch_add(1, Ordering::SeqCst);
        let home = self.dir.join("homes").join(format!("{id:03}-{ns}"));
        std::fs::create_dir_all(&home).expect("create session HOME");
        let session = Session {
            cluster: self,
            ns: ns.clone(),
            home,
            kubeconfig: self.kubeconfig.clone(),
        };
        // --validate=false: setup must not depend on OpenAPI, which tests of their own cover.
        let created = session.kubectl_stdin_ok(
            &["create", "--validate=false", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        );
        assert_eq!(created.trim(), format!("namespace/{ns} created"));
        session
    }

    fn fail_with_log(&self, message: String) -> ! {
        panic!(
            "{message}\n--- server log ({:?} store, port {}, {}) ---\n{}",
            self.store,
            self.port,
            self.dir.display(),
            tail(&self.server_log(), 60)
        )
    }
}

fn start_etcd(dir: &Path) -> Result<(Supervised, String), String> {
    let etcd = std::env::var_os("TIMONEL_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| "etcd".into());
    if Command::new(&etcd).arg("--version").output().is_err() {
        return Err(format!(
            "etcd not found ({}): install it (apt-get install -y etcd-server) or set TIMONEL_ETCD",
            etcd.display()
        ));
    }
    let client_port = free_loopback_port();
    let peer_port = free_loopback_port();
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let args: Vec<String> = vec![
        "--name".into(),
        "e2e".into(),
        "--data-dir".into(),
        dir.join("etcd").display().to_string(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client.clone(),
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("e2e={peer}"),
    ];
    let mut process = Supervised::spawn("etcd", &etcd, &args, &dir.join("etcd.log"), None)?;
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = process.exited() {
            return Err(format!(
                "etcd exited early ({status})\n--- etcd log ---\n{}",
                tail(&process.log_text(), 40)
            ));
        }
        if etcd_is_healthy(client_port) {
            return Ok((process, client));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "etcd on {client} not healthy after {READY_DEADLINE:?}\n--- etcd log ---\n{}",
                tail(&process.log_text(), 40)
            ));
        }
        thread::sleep(POLL_PAUSE);
    }
}

fn etcd_is_healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.contains("\"health\":\"true\"")
}

fn wait_for_server(
    server: &mut Supervised,
    dir: &Path,
    kubeconfig: &Path,
    port: u16,
) -> Result<(), String> {
    let probe_home = dir.join("homes").join("readiness");
    std::fs::create_dir_all(&probe_home).map_err(|err| format!("create probe HOME: {err}"))?;
    let deadline = Instant::now() + READY_DEADLINE;
    let mut last_probe = String::from("kubeconfig not written yet");
    loop {
        if let Some(status) = server.exited() {
            return Err(format!(
                "timonel server exited before it was ready ({status})\n--- server log ---\n{}",
                tail(&server.log_text(), 60)
            ));
        }
        if kubeconfig.is_file() {
            let mut probe = Command::new(&tools().kubectl);
            probe.arg("--kubeconfig").arg(kubeconfig).args([
                "get",
                "--raw",
                "/readyz",
                "--request-timeout=2s",
            ]);
            isolate_home(&mut probe, &probe_home, kubeconfig);
            match probe.output() {
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => {
                    last_probe = format!(
                        "kubectl get --raw /readyz: {}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    )
                }
                Err(err) => last_probe = format!("cannot run kubectl: {err}"),
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timonel server on 127.0.0.1:{port} not ready after {READY_DEADLINE:?}; \
                 last probe: {last_probe}\n--- server log ---\n{}",
                tail(&server.log_text(), 60)
            ));
        }
        thread::sleep(POLL_PAUSE);
    }
}

/// Points every per-user location of kubectl and helm into `home`.
fn isolate_home(cmd: &mut Command, home: &Path, kubeconfig: &Path) {
    cmd.current_dir(home)
        .env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", home.join(".kube/cache"))
        .env("HELM_CACHE_HOME", home.join(".cache/helm"))
        .env("HELM_CONFIG_HOME", home.join(".config/helm"))
        .env("HELM_DATA_HOME", home.join(".local/share/helm"))
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("KUBECTL_EXTERNAL_DIFF")
        .env_remove("KUBE_EDITOR")
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT");
}

/// The last `lines` lines of `text`.
/// A pipe for a child's stdin when the test has input for it, else /dev/null.
fn piped_if(has_input: bool) -> Stdio {
    if has_input {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Session: one test's client context
// ---------------------------------------------------------------------------------------------

/// One test's view of a cluster: a namespace that `kubectl` and `helm` default to, and a HOME.
pub struct Session<'c> {
    pub cluster: &'c Cluster,
    pub ns: String,
    pub home: PathBuf,
    /// The server this session talks to (the cluster's unless `via` chose another).
    pub kubeconfig: PathBuf,
}

impl<'c> Session<'c> {
    /// The same namespace and HOME through another server's kubeconfig (e.g. a
    /// `second_server` sharing this cluster's etcd).
    pub fn via(&self, kubeconfig: &Path) -> Session<'c> {
        Session {
            cluster: self.cluster,
            ns: self.ns.clone(),
            home: self.home.clone(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--namespace")
            .arg(&self.ns)
            .args(args);
        isolate_home(&mut cmd, &self.home, &self.kubeconfig);
        cmd
    }

    /// Runs kubectl (with `--kubeconfig` and `--namespace <test namespace>`) to completion.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.run("kubectl", self.command(&tools().kubectl, args), args, None)
    }

    /// Runs kubectl with `stdin` on its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.run(
            "kubectl",
            self.command(&tools().kubectl, args),
            args,
            Some(stdin),
        )
    }

    /// kubectl's stdout; panics with both streams and the server log tail if it failed.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.expect_success("kubectl", args, self.kubectl(args))
    }

    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        self.expect_success("kubectl", args, self.kubectl_stdin(args, stdin))
    }

    /// kubectl's stderr; panics if it succeeded.
    pub fn kubectl_fail(&self, args: &[&str]) -> String {
        self.expect_failure("kubectl", args, self.kubectl(args))
    }

    pub fn kubectl_stdin_fail(&self, args: &[&str], stdin: &str) -> String {
        self.expect_failure("kubectl", args, self.kubectl_stdin(args, stdin))
    }

    /// `kubectl apply -f -` with `yaml`; returns stdout.
    pub fn apply_stdin(&self, yaml: &str) -> String {
        self.kubectl_stdin_ok(&["apply", "-f", "-"], yaml)
    }

    /// `kubectl create -f -` with `yaml`; returns stdout.
    pub fn create_stdin(&self, yaml: &str) -> String {
        self.kubectl_stdin_ok(&["create", "-f", "-"], yaml)
    }

    /// `kubectl get <args> -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl_ok(&full);
        serde_json::from_str(&out)
            .unwrap_or_else(|err| panic!("kubectl {full:?} printed invalid JSON ({err}):\n{out}"))
    }

    /// `kubectl get <resource> -o jsonpath=<expr>`.
    pub fn jsonpath(&self, resource: &str, expr: &str) -> String {
        self.kubectl_ok(&["get", resource, "-o", &format!("jsonpath={expr}")])
    }

    /// Runs helm (with `--kubeconfig` and `--namespace <test namespace>`) to completion.
    pub fn helm(&self, args: &[&str]) -> Output {
        self.run("helm", self.command(&tools().helm, args), args, None)
    }

    pub fn helm_ok(&self, args: &[&str]) -> String {
        self.expect_success("helm", args, self.helm(args))
    }

    /// Starts a long-running kubectl (`get -w`, `wait`) whose stdout is read line by line.
    pub fn spawn_kubectl(&self, args: &[&str]) -> Background {
        self.spawn_kubectl_with(args, None)
    }

    /// As [`Session::spawn_kubectl`], with `stdin` written to its standard input, then closed.
    pub fn spawn_kubectl_stdin(&self, args: &[&str], stdin: &str) -> Background {
        self.spawn_kubectl_with(args, Some(stdin))
    }

    fn spawn_kubectl_with(&self, args: &[&str], stdin: Option<&str>) -> Background {
        let mut cmd = self.command(&tools().kubectl, args);
        cmd.stdin(piped_if(stdin.is_some()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("cannot spawn kubectl {args:?}: {err}"));
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .unwrap_or_else(|err| panic!("writing to kubectl {args:?}: {err}"));
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, lines) = mpsc::channel();
        let stdout_reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_reader = thread::spawn(move || read_all(stderr));
        Background {
            description: format!("kubectl {}", args.join(" ")),
            child,
            lines,
            seen: Vec::new(),
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Writes `contents` to `name` inside this session's HOME and returns the path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.home.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Creates one more namespace for tests that need several; its name is `<test ns>-<suffix>`.
    pub fn extra_namespace(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.ns);
        let created = self.create_stdin(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
        ));
        assert_eq!(created.trim(), format!("namespace/{name} created"));
        name
    }

    /// Polls `check` until it returns Ok, for at most `timeout`; panics with the last error.
    pub fn eventually<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match check() {
                Ok(value) => return value,
                Err(last) if Instant::now() > deadline => self
                    .cluster
                    .fail_with_log(format!("{what}: still not true after {timeout:?}: {last}")),
                Err(_) => thread::sleep(POLL_PAUSE),
            }
        }
    }

    fn run(&self, tool: &str, mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Output {
        cmd.stdin(piped_if(stdin.is_some()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("cannot spawn {tool} {args:?}: {err}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            let input = input.to_string();
            // A writer thread, so a tool that does not read its stdin cannot deadlock us.
            thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            });
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout_reader = thread::spawn(move || read_all(stdout));
        let stderr_reader = thread::spawn(move || read_all(stderr));
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = stdout_reader.join().unwrap_or_default();
                let stderr = stderr_reader.join().unwrap_or_default();
                self.cluster.fail_with_log(format!(
                    "{tool} {args:?} still running after {COMMAND_DEADLINE:?}\n\
                     stdout:\n{stdout}\nstderr:\n{stderr}"
                ));
            }
            thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: stdout_reader.join().unwrap_or_default().into_bytes(),
            stderr: stderr_reader.join().unwrap_or_default().into_bytes(),
        }
    }

    fn expect_success(&self, tool: &str, args: &[&str], out: Output) -> String {
        if !out.status.success() {
            self.cluster.fail_with_log(format!(
                "{tool} {} failed ({})\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8(out.stdout).expect("stdout is UTF-8")
    }

    fn expect_failure(&self, tool: &str, args: &[&str], out: Output) -> String {
        if out.status.success() {
            panic!(
                "{tool} {} succeeded but should have failed\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8(out.stderr).expect("stderr is UTF-8")
    }
}

fn read_all(mut source: impl Read) -> String {
    let mut bytes = Vec::new();
    let _ = source.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A kubectl that keeps running (`get -w`, `wait`); killed on drop.
pub struct Background {
    description: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<String>>,
}

impl Background {
    /// Waits for the next stdout line matching `wanted`, for at most `timeout`; returns it.
    pub fn expect_line(
        &mut self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let stderr = self
                        .stderr_reader
                        .take()
                        .and_then(|reader| reader.join().ok())
                        .unwrap_or_default();
                    panic!(
                        "{}: no line showing {what} within {timeout:?}\nstdout so far:\n{}\nstderr:\n{stderr}",
                        self.description,
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// The next stdout line, if one arrives within `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Waits for the process to exit by itself (at most `timeout`): (status, all stdout, stderr).
    pub fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self
                    .stderr_reader
                    .take()
                    .and_then(|reader| reader.join().ok())
                    .unwrap_or_default();
                self.drain_stdout();
                panic!(
                    "{} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{stderr}",
                    self.description,
                    self.seen.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        self.drain_stdout();
        let stderr = self
            .stderr_reader
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        (status, self.seen.join("\n"), stderr)
    }

    fn drain_stdout(&mut self) {
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Output parsing
// ---------------------------------------------------------------------------------------------

/// Splits kubectl's table output into whitespace-separated cells, one Vec per line.
/// Only for tables whose cells hold no spaces.
pub fn table(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The row of `table` whose cell `column` equals `value`; panics with the whole output if none.
pub fn row_where<'t>(
    rows: &'t [Vec<String>],
    column: usize,
    value: &str,
    output: &str,
) -> &'t [String] {
    rows.iter()
        .find(|row| row.get(column).map(String::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no row with column {column} = {value:?} in:\n{output}"))
}

/// The value after `key` on the first line that starts with `key` (`describe` output).
pub fn describe_field<'o>(output: &'o str, key: &str) -> &'o str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no line starting with {key:?} in:\n{output}"))
}

/// A JSON scalar as text (numbers and strings alike), for outputs that changed type over time.
pub fn scalar_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// This package's directory, read at run time: cargo may reuse a test binary that another
/// checkout sharing the target dir built, and the path compiled into it may be gone.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Fixture `name` from tests/fixtures with every `${KEY}` replaced by its value.
pub fn fixture(name: &str, vars: &[(&str, &str)]) -> String {
    let path = manifest_dir().join("tests/fixtures").join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read fixture {}: {err}", path.display()));
    for (key, value) in vars {
        text = text.replace(&format!("${{{key}}}"), value);
    }
    assert!(
        !text.contains("${"),
        "fixture {name} has an unset variable:\n{text}"
    );
    text
}

/// A Deployment manifest: labels `app=<name>`, one container `web` with `image`, port 80.
pub fn deployment(name: &str, replicas: u32, image: &str) -> String {
    fixture(
        "deployment.yaml",
        &[
            ("NAME", name),
            ("REPLICAS", &replicas.to_string()),
            ("IMAGE", image),
        ],
    )
}

/// Whether `text` looks like kubectl's AGE column ("0s", "5m10s", "3d").
pub fn is_age(text: &str) -> bool {
    !text.is_empty()
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "smhdy".contains(c))
}
