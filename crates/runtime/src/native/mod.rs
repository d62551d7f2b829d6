//! The native container runtime: OCI containers run by youki's `libcontainer`, without a
//! daemon.
//!
//! Each container lives in `<root>/<id>/`:
//! - `meta.json`: who it belongs to (pod UID, namespace, name, container name, attempt,
//!   image) — written once at create, so a restarted agent can adopt it;
//! - `bundle/config.json` and `bundle/rootfs` (an overlayfs of the image layers with
//!   `upper/` and `work/` beside it);
//! - `started.json` and `exit.json`, written by the container's shim.
//!
//! libcontainer forks, so the agent never calls it in-process: each container gets a shim,
//! our own binary re-executed as `timonel container-shim`, which detaches (double fork,
//! `setsid`), becomes the container's subreaper, starts it, copies its stdout and stderr into
//! CRI-format log files and records its exit. It also holds the container's stdin (or its
//! terminal's master) and serves the attach socket (see [`attach`]). The shim outlives the agent, so an agent
//! restart finds the container still running, still logging, and its exit still recorded.
//! `exec` works the same way through `timonel container-exec`.

pub mod attach;
pub mod exec_tty;
pub mod oci;
pub mod pause;
pub mod shim;
pub mod stats;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("container {0} not found")]
    NotFound(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Start(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

/// How a container gets one kind of namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceMode {
    /// A new namespace of its own.
    #[default]
    Private,
    /// Join the namespace bound at this path (the pod's).
    Join(PathBuf),
    /// Stay in the host's.
    Host,
}

/// A bind mount into the container (volumes, `/etc/hosts`, `/etc/resolv.conf`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// What the agent asks the runtime to run: the resolved container (command, env, user,
/// mounts and limits already worked out from the pod and the image).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    /// `tty: true`: the container's stdio is a terminal the shim holds the master of.
    pub tty: bool,
    /// `stdin: true`: the container's stdin is a pipe the shim feeds from attached clients
    /// (otherwise /dev/null).
    #[serde(default)]
    pub stdin: bool,
    /// `stdinOnce`: the first attached client that ends its input closes the container's.
    #[serde(default)]
    pub stdin_once: bool,
    pub network_namespace: NamespaceMode,
    pub ipc_namespace: NamespaceMode,
    pub uts_namespace: NamespaceMode,
    pub pid_namespace: NamespaceMode,
    pub mounts: Vec<BindMount>,
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub privileged: bool,
    pub read_only_rootfs: bool,
    pub no_new_privileges: bool,
    pub seccomp_runtime_default: bool,
    pub cpu_request_millis: u64,
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub oom_score_adj: i32,
    /// cgroup path relative to the hierarchy root, e.g. `/timonel/pod<uid>/<id>`.
    pub cgroup_path: String,
    /// Image layers, top-most first (overlayfs `lowerdir` order).
    pub lower_dirs: Vec<PathBuf>,
    /// The CRI log file the shim writes (its directory is created).
    pub log_path: PathBuf,
}

/// Who a container belongs to; kept in `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub container_name: String,
    pub attempt: u32,
    /// The image as the pod spec names it, and the image ID (config digest) it resolved to.
    pub image: String,
    pub image_id: String,
    pub log_path: PathBuf,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// Written by the shim once the container's process runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub pid: i32,
    /// `/proc/<pid>/stat` start time in clock ticks, to tell a reused PID from ours.
    pub start_ticks: u64,
    pub started_at: String,
    /// The shim that waits for the process, and its start time: while it lives, a process
    /// that is gone without `exit.json` is still being recorded, not lost.
    #[serde(default)]
    pub shim_pid: i32,
    #[serde(default)]
    pub shim_start_ticks: u64,
}

/// Written by the shim when the container's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// The exit code, or 128 + signal for a killed process (what containerd reports).
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub finished_at: String,
    /// Set when the container never ran (its start failed): the reason for the status.
    pub error: Option<String>,
}

/// The observed state of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running(Started),
    Exited {
        started: Option<Started>,
        exited: Exited,
    },
}

/// A container found on disk, with its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub meta: ContainerMeta,
    pub state: ContainerState,
}

/// The container operations the agent needs, behind a trait so the agent's logic is tested
/// with a fake runtime and no root.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Prepares a container (root filesystem, OCI config); it does not run yet.
    fn create(&self, id: &str, meta: &ContainerMeta, spec: &ContainerSpec) -> Result<()>;
    /// Runs a created container; returns once its process exists.
    fn start(&self, id: &str) -> Result<Started>;
    /// Sends `signal` to the container's init process; a stopped container is not an error.
    fn signal(&self, id: &str, signal: i32) -> Result<()>;
    /// Removes a container that is no longer running, with its root filesystem.
    fn remove(&self, id: &str) -> Result<()>;
    /// Every container on the node.
    fn list(&self) -> Result<Vec<ContainerInfo>>;
    /// The containers whose metadata `wanted` accepts, e.g. one pod's. A runtime that can
    /// filter before reading each container's state should.
    fn list_matching(&self, wanted: &dyn Fn(&ContainerMeta) -> bool) -> Result<Vec<ContainerInfo>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|c| wanted(&c.meta))
            .collect())
    }
    /// One container's state.
    fn inspect(&self, id: &str) -> Result<ContainerInfo>;
    /// The command line that execs `command` in container `id` with the caller's stdio, for
    /// the agent to spawn (exec never forks the agent itself).
    fn exec_command(&self, id: &str, command: &[String], tty: bool) -> Result<Command>;
    /// The socket of a running container's shim that attach connects to (see [`attach`]);
    /// `None` when the runtime has none, and attach follows the log instead.
    fn attach_socket(&self, id: &str) -> Option<PathBuf> {
        let _ = id;
        None
    }
}

/// The native runtime over a root directory (`<agent data dir>/containers`).
pub struct NativeRuntime {
    root: PathBuf,
    /// Our own binary, re-executed as the shim.
    shim_exe: PathBuf,
    /// Container ID → its metadata, which never changes once written: filled by the first
    /// full listing, then kept by `create` and `remove`, so a pod's sync reads only its own
    /// containers' state files instead of every container's on the node.
    index: std::sync::Mutex<Option<std::collections::HashMap<String, ContainerMeta>>>,
}

impl NativeRuntime {
    /// `shim_exe` is the `timonel` binary (`std::env::current_exe()` in the agent).
    pub fn new(root: impl Into<PathBuf>, shim_exe: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err(format!("creating {}", root.display())))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o711))
            .map_err(io_err(format!("chmod {}", root.display())))?;
        Ok(NativeRuntime {
            root,
            shim_exe: shim_exe.into(),
            index: std::sync::Mutex::new(None),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes containers a crash left half-created (no `meta.json`). Only safe before any
    /// container is being created, i.e. when the agent starts.
    pub fn sweep_incomplete(&self) -> Result<()> {
        let entries =
            fs::read_dir(&self.root).map_err(io_err(format!("listing {}", self.root.display())))?;
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir.is_dir() && !dir.join("meta.json").exists() {
                let _ = unmount(&dir.join("bundle").join("rootfs"));
                let _ = fs::remove_dir_all(&dir);
            }
        }
        Ok(())
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn read_info(&self, id: &str) -> Result<ContainerInfo> {
        let dir = self.dir(id);
        let meta: ContainerMeta = read_json(&dir.join("meta.json"))?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        let started: Option<Started> = read_json(&dir.join("started.json"))?;
        let exited: Option<Exited> = read_json(&dir.join("exit.json"))?;
        let state = match (started, exited) {
            (started, Some(exited)) => ContainerState::Exited { started, exited },
            (Some(started), None) => {
                if process_is(started.pid, started.start_ticks)
                    || (started.shim_pid > 0
                        && process_is(started.shim_pid, started.shim_start_ticks))
                {
                    ContainerState::Running(started)
                } else {
                    // The process is gone but its shim never recorded the exit (the shim was
                    // killed too): report it as upstream reports a lost container.
                    ContainerState::Exited {
                        exited: Exited {
                            exit_code: 255,
                            signal: None,
                            oom_killed: false,
                            finished_at: now_rfc3339(),
                            error: Some("the container's process vanished".into()),
                        },
                        started: Some(started),
                    }
                }
            }
            (None, None) => ContainerState::Created,
        };
        Ok(ContainerInfo {
            id: id.to_string(),
            meta,
            state,
        })
    }
}

/// True when process `pid` started at `start_ticks` still exists (not a reused PID) and has
/// not exited (a zombie counts as gone).
fn process_is(pid: i32, start_ticks: u64) -> bool {
    match proc_stat(pid) {
        Some((state, ticks)) => ticks == start_ticks && state != 'Z' && state != 'X',
        None => false,
    }
}

/// `(state, starttime)` from `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of the whole line is starttime; `rest` starts at field 3.
    let ticks = fields.get(19)?.parse().ok()?;
    Some((state, ticks))
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RuntimeError::Io {
                context: format!("reading {}", path.display()),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
    }
}

/// Writes `value` to `path` atomically (temp file, fsync, rename), so a crash leaves either
/// the old or the new state, never half of one.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(value).expect("state serializes");
    let mut file = fs::File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_err(format!("renaming {}", path.display())))
}

fn mount_overlay(lower: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    use rustix::mount::{MountFlags, mount};
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    let options = std::ffi::CString::new(options).map_err(|_| RuntimeError::Io {
        context: "overlay options".into(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "NUL in a layer path"),
    })?;
    mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        Some(options.as_c_str()),
    )
    .map_err(|e| RuntimeError::Io {
        context: format!(
            "mounting the overlay root filesystem at {}",
            target.display()
        ),
        source: e.into(),
    })
}

/// True when something is mounted at `target` (from `/proc/self/mountinfo`).
pub fn is_mounted(target: &Path) -> bool {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = target.display().to_string();
    mounts
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

/// Unmounts `target` if mounted (lazily, so a process still inside cannot block removal).
pub fn unmount(target: &Path) -> Result<()> {
    use rustix::mount::{UnmountFlags, unmount};
    if !is_mounted(target) {
        return Ok(());
    }
    unmount(target, UnmountFlags::DETACH).map_err(|e| RuntimeError::Io {
        context: format!("unmounting {}", target.display()),
        source: e.into(),
    })
}

impl ContainerRuntime for NativeRuntime {
    fn create(&self, id: &str, meta: &ContainerMeta, spec: &ContainerSpec) -> Result<()> {
        let dir = self.dir(id);
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        for d in [&rootfs, &dir.join("upper"), &dir.join("work")] {
            fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        if let Some(parent) = spec.log_path.parent() {
            fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        }
        if spec.lower_dirs.is_empty() {
            return Err(RuntimeError::Start("the image has no layers".into()));
        }
        if !is_mounted(&rootfs) {
            mount_overlay(
                &spec.lower_dirs,
                &dir.join("upper"),
                &dir.join("work"),
                &rootfs,
            )?;
        }
        let config = oci::runtime_config(spec, &rootfs);
        write_json_atomic(&bundle.join("config.json"), &config)?;
        write_json_atomic(&dir.join("spec.json"), spec)?;
        // meta.json last: a directory without it is a half-created container, removed by GC.
        write_json_atomic(&dir.join("meta.json"), meta)?;
        if let Some(index) = self.index.lock().expect("poisoned").as_mut() {
            index.insert(id.to_string(), meta.clone());
        }
        Ok(())
    }

    fn start(&self, id: &str) -> Result<Started> {
        let dir = self.dir(id);
        if !dir.join("meta.json").exists() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        let output = Command::new(&self.shim_exe)
            .arg("container-shim")
            .arg(&dir)
            .arg(id)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .map_err(io_err(format!("running {}", self.shim_exe.display())))?;
        let reply = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !reply.starts_with("started") {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let message = reply
                .strip_prefix("error ")
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| format!("container shim failed: {}", stderr.trim()));
            return Err(RuntimeError::Start(message));
        }
        read_json::<Started>(&dir.join("started.json"))?
            .ok_or_else(|| RuntimeError::Start("the shim recorded no start".into()))
    }

    fn signal(&self, id: &str, signal: i32) -> Result<()> {
        let info = self.read_info(id)?;
        if let ContainerState::Running(started) = info.state {
            let pid = rustix::process::Pid::from_raw(started.pid)
                .ok_or_else(|| RuntimeError::Start(format!("bad pid {}", started.pid)))?;
            let sig = rustix::process::Signal::from_named_raw(signal)
                .ok_or_else(|| RuntimeError::Start(format!("bad signal {signal}")))?;
            match rustix::process::kill_process(pid, sig) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => {
                    return Err(RuntimeError::Io {
                        context: format!("signalling container {id}"),
                        source: e.into(),
                    });
                }
            }
        }
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(());
        }
        if let Ok(info) = self.read_info(id)
            && matches!(info.state, ContainerState::Running(_))
        {
            return Err(RuntimeError::Start(format!(
                "container {id} is still running"
            )));
        }
        unmount(&dir.join("bundle").join("rootfs"))?;
        shim::remove_cgroup_dirs(&dir);
        if let Some(index) = self.index.lock().expect("poisoned").as_mut() {
            index.remove(id);
        }
        fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))
    }

    fn list(&self) -> Result<Vec<ContainerInfo>> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.root).map_err(io_err(format!("listing {}", self.root.display())))?;
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            match self.read_info(&id) {
                Ok(info) => out.push(info),
                // Being created right now (meta.json comes last), or left half-created by a
                // crash: `sweep_incomplete` at start removes the latter.
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => tracing::warn!("container {id}: {e}"),
            }
        }
        let mut index = self.index.lock().expect("poisoned");
        let known = index.get_or_insert_with(Default::default);
        let present: std::collections::HashSet<&str> = out.iter().map(|c| c.id.as_str()).collect();
        known.retain(|id, _| present.contains(id.as_str()));
        for c in &out {
            known.entry(c.id.clone()).or_insert_with(|| c.meta.clone());
        }
        Ok(out)
    }

    fn list_matching(&self, wanted: &dyn Fn(&ContainerMeta) -> bool) -> Result<Vec<ContainerInfo>> {
        let ids: Vec<String> = match self.index.lock().expect("poisoned").as_ref() {
            Some(known) => known
                .iter()
                .filter(|(_, meta)| wanted(meta))
                .map(|(id, _)| id.clone())
                .collect(),
            None => Vec::new(),
        };
        if ids.is_empty() && self.index.lock().expect("poisoned").is_none() {
            return Ok(self
                .list()?
                .into_iter()
                .filter(|c| wanted(&c.meta))
                .collect());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.read_info(&id) {
                Ok(info) => out.push(info),
                Err(RuntimeError::NotFound(_)) => {
                    if let Some(known) = self.index.lock().expect("poisoned").as_mut() {
                        known.remove(&id);
                    }
                }
                Err(e) => tracing::warn!("container {id}: {e}"),
            }
        }
        Ok(out)
    }

    fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        self.read_info(id)
    }

    fn exec_command(&self, id: &str, command: &[String], tty: bool) -> Result<Command> {
        let info = self.read_info(id)?;
        if !matches!(info.state, ContainerState::Running(_)) {
            return Err(RuntimeError::Start(format!(
                "container {} is not running",
                info.meta.container_name
            )));
        }
        let mut cmd = Command::new(&self.shim_exe);
        cmd.arg("container-exec").arg(self.dir(id)).arg(id);
        if tty {
            cmd.arg("--tty");
        }
        cmd.arg("--").args(command);
        Ok(cmd)
    }

    fn attach_socket(&self, id: &str) -> Option<PathBuf> {
        let path = attach::socket_path(&self.dir(id));
        path.exists().then_some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_leaves_containers_being_created_and_the_start_sweep_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = NativeRuntime::new(dir.path().join("containers"), "/bin/false").unwrap();
        let creating = runtime.root().join("abc");
        fs::create_dir_all(creating.join("bundle")).unwrap();
        assert!(runtime.list().unwrap().is_empty());
        assert!(
            creating.exists(),
            "a container without meta.json yet is left alone"
        );
        let meta = ContainerMeta {
            pod_uid: "u".into(),
            container_name: "c".into(),
            ..ContainerMeta::default()
        };
        let done = runtime.root().join("def");
        fs::create_dir_all(&done).unwrap();
        write_json_atomic(&done.join("meta.json"), &meta).unwrap();
        let listed = runtime.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, ContainerState::Created);
        runtime.sweep_incomplete().unwrap();
        assert!(!creating.exists());
        assert!(done.exists());
    }

    #[test]
    fn exits_and_vanished_processes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = NativeRuntime::new(dir.path().join("containers"), "/bin/false").unwrap();
        let c = runtime.root().join("x");
        fs::create_dir_all(&c).unwrap();
        write_json_atomic(&c.join("meta.json"), &ContainerMeta::default()).unwrap();
        // A start record for a process that is not there: the container is gone (255).
        let started = Started {
            pid: i32::MAX - 1,
            start_ticks: 1,
            started_at: now_rfc3339(),
            ..Default::default()
        };
        write_json_atomic(&c.join("started.json"), &started).unwrap();
        match runtime.inspect("x").unwrap().state {
            ContainerState::Exited { exited, .. } => assert_eq!(exited.exit_code, 255),
            other => panic!("{other:?}"),
        }
        let exited = Exited {
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            finished_at: now_rfc3339(),
            error: None,
        };
        write_json_atomic(&c.join("exit.json"), &exited).unwrap();
        match runtime.inspect("x").unwrap().state {
            ContainerState::Exited { exited: e, .. } => assert!(e.oom_killed),
            other => panic!("{other:?}"),
        }
        // Our own process is running.
        let me = std::process::id() as i32;
        let ticks = proc_stat(me).unwrap().1;
        assert!(process_is(me, ticks));
        // The process gone but its shim (here: us) still recording the exit: still running.
        fs::remove_file(c.join("exit.json")).unwrap();
        let exiting = Started {
            shim_pid: me,
            shim_start_ticks: ticks,
            ..started
        };
        write_json_atomic(&c.join("started.json"), &exiting).unwrap();
        assert!(matches!(
            runtime.inspect("x").unwrap().state,
            ContainerState::Running(_)
        ));
    }

    fn meta(pod_uid: &str, container_name: &str) -> ContainerMeta {
        ContainerMeta {
            pod_uid: pod_uid.into(),
            pod_namespace: "default".into(),
            pod_name: format!("pod-{pod_uid}"),
            container_name: container_name.into(),
            attempt: 0,
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            log_path: PathBuf::from("/nonexistent/0.log"),
            created_at: now_rfc3339(),
        }
    }

    /// Writes a created (not started) container as `create` leaves it, without mounting.
    fn put(runtime: &NativeRuntime, id: &str, meta: &ContainerMeta) {
        fs::create_dir_all(runtime.dir(id)).unwrap();
        write_json_atomic(&runtime.dir(id).join("meta.json"), meta).unwrap();
    }

    #[test]
    fn list_matching_reads_only_what_the_index_selects_and_forgets_removed_containers() {
        let root = tempfile::tempdir().unwrap();
        let runtime = NativeRuntime::new(root.path(), "/bin/false").unwrap();
        put(&runtime, "a1", &meta("a", "web"));
        put(&runtime, "b1", &meta("b", "web"));
        // Before any listing there is no index: the filter falls back to a full listing.
        let a = runtime.list_matching(&|m| m.pod_uid == "a").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].state, ContainerState::Created);
        assert!(runtime.index.lock().unwrap().is_some());
        // A container gone from disk is dropped from the index on the next read.
        fs::remove_dir_all(runtime.dir("b1")).unwrap();
        assert!(
            runtime
                .list_matching(&|m| m.pod_uid == "b")
                .unwrap()
                .is_empty()
        );
        assert!(
            !runtime
                .index
                .lock()
                .unwrap()
                .as_ref()
                .unwrap()
                .contains_key("b1")
        );
        // A half-created container (no meta.json) is never listed.
        fs::create_dir_all(runtime.dir("c1")).unwrap();
        assert_eq!(runtime.list().unwrap().len(), 1);
        assert_eq!(runtime.list_matching(&|_| true).unwrap().len(), 1);
    }
}
