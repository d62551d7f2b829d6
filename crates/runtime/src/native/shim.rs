//! The per-container shim (`timonel container-shim DIR ID`) and exec helper
//! (`timonel container-exec DIR ID [--tty] -- CMD…`), both run as separate processes of our
//! own binary so that libcontainer's forks never happen inside the multi-threaded agent.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use nix::fcntl::OFlag;
use std::os::unix::net::UnixListener;

use super::attach::{AttachServer, StdinSink};
use super::{ContainerSpec, Exited, Started, now_rfc3339, proc_stat, write_json_atomic};
use timonel_streaming::cri_log::{LogStream as Stream, LogWriter, LogWriterOptions};

/// libcontainer's state root inside a container directory.
pub(super) fn state_root(dir: &Path) -> PathBuf {
    dir.join("lc")
}

/// Entry point of `timonel container-shim DIR ID`. Prints `started <pid>` or `error <msg>`
/// on stdout, then returns (exit status 0 or 1) while the detached shim goes on.
pub fn shim_main(dir: &Path, id: &str) -> i32 {
    let (ready_read, ready_write) = match nix::unistd::pipe() {
        Ok(pair) => pair,
        Err(e) => {
            println!("error creating a pipe: {e}");
            return 1;
        }
    };
    // SAFETY: the process is single-threaded here (fork happens before anything spawns a
    // thread), so the child may run arbitrary code.
    match unsafe { fork() } {
        Err(e) => {
            println!("error fork: {e}");
            1
        }
        Ok(ForkResult::Parent { .. }) => {
            drop(ready_write);
            let mut reply = String::new();
            let _ = fs::File::from(ready_read).read_to_string(&mut reply);
            if reply.is_empty() {
                reply = "error the container shim died before starting the container".into();
            }
            print!("{reply}");
            let _ = io::stdout().flush();
            i32::from(!reply.starts_with("started"))
        }
        Ok(ForkResult::Child) => {
            drop(ready_read);
            let _ = nix::unistd::setsid();
            // Orphaned container processes are reparented to us, so we reap them and see
            // the init process's exit status ourselves.
            let _ = nix::sys::prctl::set_child_subreaper(true);
            // The agent may go away at any time; its pipes must not kill us.
            // SAFETY: setting a signal disposition to SIG_IGN has no handler to be unsafe.
            unsafe {
                let _ = nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGPIPE,
                    nix::sys::signal::SigHandler::SigIgn,
                );
            }
            let code = run_shim(dir, id, ready_write);
            std::process::exit(code);
        }
    }
}

fn redirect_stdio_to_null() {
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, which we own.
            unsafe {
                nix::libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

fn record_failure(dir: &Path, message: &str, ready: OwnedFd) -> i32 {
    let exited = Exited {
        exit_code: 128,
        signal: None,
        oom_killed: false,
        finished_at: now_rfc3339(),
        error: Some(message.to_string()),
    };
    let _ = write_json_atomic(&dir.join("exit.json"), &exited);
    let mut ready = fs::File::from(ready);
    let _ = writeln!(ready, "error {}", message.replace('\n', " "));
    1
}

fn run_shim(dir: &Path, id: &str, ready: OwnedFd) -> i32 {
    let spec: ContainerSpec = match fs::read(dir.join("spec.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(e) => return record_failure(dir, &format!("reading the container spec: {e}"), ready),
    };
    let writer = match LogWriter::open(&spec.log_path, LogWriterOptions::default()) {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => {
            return record_failure(
                dir,
                &format!("opening the log {}: {e}", spec.log_path.display()),
                ready,
            );
        }
    };
    let io = match ContainerStdio::prepare(dir, &spec) {
        Ok(io) => io,
        Err(e) => return record_failure(dir, &e, ready),
    };
    let built = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(state_root(dir))
        .map(|b| {
            let b = match &io.console_socket {
                Some((path, _)) => b.with_console_socket(Some(path)),
                None => b,
            };
            b.with_stdin(io.container_stdin)
                .with_stdout(io.container_stdout)
                .with_stderr(io.container_stderr)
                .as_init(dir.join("bundle"))
                .with_systemd(false)
                .with_detach(true)
        })
        .and_then(|b| b.build());
    let mut container = match built {
        Ok(c) => c,
        Err(e) => return record_failure(dir, &format!("creating the container: {e}"), ready),
    };
    // With a terminal, the output is its master, which libcontainer sent while creating.
    let (outputs, terminal) = match io.console_socket {
        Some((path, listener)) => {
            let master = super::exec_tty::receive_master(&listener);
            let _ = fs::remove_file(&path);
            match master.and_then(|m| m.try_clone().map(|c| (m, c))) {
                Ok((master, resize)) => (vec![(master, Stream::Stdout)], Some(resize)),
                Err(e) => {
                    let _ = container.delete(true);
                    return record_failure(dir, &format!("the container's terminal: {e}"), ready);
                }
            }
        }
        None => (io.outputs, None),
    };
    let stdin_writer = match &terminal {
        Some(master) if spec.stdin => master.try_clone().ok().map(fs::File::from),
        Some(_) => None,
        None => io.stdin_writer,
    };
    let attach =
        match AttachServer::start(dir, StdinSink::new(stdin_writer, spec.stdin_once), terminal) {
            Ok(server) => server,
            Err(e) => {
                let _ = container.delete(true);
                return record_failure(dir, &format!("the attach socket: {e}"), ready);
            }
        };
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return record_failure(dir, &format!("starting the container: {e}"), ready);
    }
    let Some(pid) = container.pid() else {
        return record_failure(dir, "the container has no process", ready);
    };
    let started = Started {
        pid: pid.as_raw(),
        start_ticks: proc_stat(pid.as_raw()).map(|(_, t)| t).unwrap_or(0),
        started_at: now_rfc3339(),
        shim_pid: std::process::id() as i32,
        shim_start_ticks: proc_stat(std::process::id() as i32)
            .map(|(_, t)| t)
            .unwrap_or(0),
    };
    if let Err(e) = write_json_atomic(&dir.join("started.json"), &started) {
        return record_failure(dir, &format!("recording the start: {e}"), ready);
    }
    {
        let mut ready = fs::File::from(ready);
        let _ = writeln!(ready, "started {}", pid.as_raw());
    }
    redirect_stdio_to_null();

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let copiers = outputs.len();
    for (fd, stream) in outputs {
        let writer = Arc::clone(&writer);
        let attach = Arc::clone(&attach);
        let done = done_tx.clone();
        std::thread::spawn(move || {
            copy_output(fd, stream, &writer, &attach);
            let _ = done.send(());
        });
    }
    drop(done_tx);

    let status = wait_for(pid);
    // Processes the container forked may keep its stdout open; give the log a moment to
    // drain, then go on without them.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for _ in 0..copiers {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let (exit_code, signal) = match status {
        WaitStatus::Exited(_, code) => (code, None),
        WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let oom_killed = signal == Some(nix::libc::SIGKILL) && oom_kills(&spec.cgroup_path) > 0;
    let exited = Exited {
        exit_code,
        signal,
        oom_killed,
        finished_at: now_rfc3339(),
        error: None,
    };
    // Attached clients get the last output before the exit is recorded, so the session
    // has ended by the time the container counts as exited.
    attach.finish(Duration::from_secs(2));
    let _ = write_json_atomic(&dir.join("exit.json"), &exited);
    if let Ok(mut lc) = Container::load(state_root(dir).join(id)) {
        let _ = lc.delete(true);
    }
    0
}

/// Waits for `init` to end, reaping every other process reparented to us on the way.
fn wait_for(init: Pid) -> WaitStatus {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _)))
                if p == init =>
            {
                return status;
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return WaitStatus::Exited(init, 255),
        }
    }
}

/// The container's standard streams as the shim sets them up: stdin a pipe the shim writes
/// (`stdin: true`) or /dev/null; stdout and stderr pipes the shim reads, or, with
/// `tty: true`, one terminal whose master libcontainer passes over a console socket.
struct ContainerStdio {
    container_stdin: OwnedFd,
    container_stdout: OwnedFd,
    container_stderr: OwnedFd,
    stdin_writer: Option<fs::File>,
    outputs: Vec<(OwnedFd, Stream)>,
    console_socket: Option<(PathBuf, UnixListener)>,
}

impl ContainerStdio {
    fn prepare(dir: &Path, spec: &ContainerSpec) -> Result<ContainerStdio, String> {
        let null = || {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| format!("/dev/null: {e}"))
        };
        // The shim's ends are close-on-exec, so the container never holds its own stdin open.
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
        if spec.tty {
            let path = dir.join("console.sock");
            let listener = super::attach::bind_in(dir, "console.sock")
                .map_err(|e| format!("the console socket: {e}"))?;
            return Ok(ContainerStdio {
                container_stdin: null()?,
                container_stdout: null()?,
                container_stderr: null()?,
                // Input goes to the terminal master, once libcontainer sent it.
                stdin_writer: None,
                outputs: Vec::new(),
                console_socket: Some((path, listener)),
            });
        }
        let (stdout_read, stdout_write) = pipe()?;
        let (stderr_read, stderr_write) = pipe()?;
        let (container_stdin, stdin_writer) = if spec.stdin {
            let (read, write) = pipe()?;
            (read, Some(fs::File::from(write)))
        } else {
            (null()?, None)
        };
        Ok(ContainerStdio {
            container_stdin,
            container_stdout: stdout_write,
            container_stderr: stderr_write,
            stdin_writer,
            outputs: vec![(stdout_read, Stream::Stdout), (stderr_read, Stream::Stderr)],
            console_socket: None,
        })
    }
}

/// Copies one output stream of the container into its log and to attached clients. A
/// terminal master reads EIO once the container's side is closed: that is its end.
fn copy_output(fd: OwnedFd, stream: Stream, writer: &Mutex<LogWriter>, attach: &AttachServer) {
    let mut file = fs::File::from(fd);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Ok(mut w) = writer.lock() {
                    let _ = w.write(stream, &buf[..n]);
                }
                let kind = match stream {
                    Stream::Stdout => super::attach::STDOUT,
                    Stream::Stderr => super::attach::STDERR,
                };
                attach.broadcast(kind, &buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if let Ok(mut w) = writer.lock() {
        let _ = w.finish(stream);
    }
}

/// cgroup mount points tried for a container's cgroup: v1 per controller, then v2 (unified
/// or hybrid).
const CGROUP_ROOTS: &[&str] = &[
    "/sys/fs/cgroup/memory",
    "/sys/fs/cgroup/cpu,cpuacct",
    "/sys/fs/cgroup/cpu",
    "/sys/fs/cgroup/cpuacct",
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup/blkio",
    "/sys/fs/cgroup/devices",
    "/sys/fs/cgroup/freezer",
    "/sys/fs/cgroup/net_cls,net_prio",
    "/sys/fs/cgroup/perf_event",
    "/sys/fs/cgroup/hugetlb",
    "/sys/fs/cgroup/cpuset",
    "/sys/fs/cgroup/rdma",
    "/sys/fs/cgroup/misc",
    "/sys/fs/cgroup/systemd",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

/// How many times the kernel's OOM killer killed a process of the cgroup.
fn oom_kills(cgroup_path: &str) -> u64 {
    let relative = cgroup_path.trim_start_matches('/');
    let candidates = [
        Path::new("/sys/fs/cgroup/memory")
            .join(relative)
            .join("memory.oom_control"),
        Path::new("/sys/fs/cgroup")
            .join(relative)
            .join("memory.events"),
        Path::new("/sys/fs/cgroup/unified")
            .join(relative)
            .join("memory.events"),
    ];
    for path in candidates {
        if let Ok(text) = fs::read_to_string(&path)
            && let Some(count) = text
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
        {
            return count;
        }
    }
    0
}

/// Removes a container's (empty) cgroup directories in every hierarchy, and its pod's parent
/// when that became empty. libcontainer deletes the leaf when the shim ends; this sweeps what
/// a killed shim left.
pub fn remove_cgroup_dirs(container_dir: &Path) {
    let Ok(bytes) = fs::read(container_dir.join("spec.json")) else {
        return;
    };
    let Ok(spec) = serde_json::from_slice::<ContainerSpec>(&bytes) else {
        return;
    };
    remove_cgroup_path(&spec.cgroup_path);
}

/// rmdir of a cgroup path in every hierarchy (only empty cgroups can be removed, so a
/// running container's cgroup is never touched).
pub fn remove_cgroup_path(cgroup_path: &str) {
    let relative = cgroup_path.trim_start_matches('/');
    if relative.is_empty() {
        return;
    }
    for root in CGROUP_ROOTS {
        let _ = fs::remove_dir(Path::new(root).join(relative));
    }
}

/// Entry point of `timonel container-exec DIR ID [--tty] -- CMD…`: runs CMD inside the
/// container with this process's stdio and exits with its status.
pub fn exec_main(dir: &Path, id: &str, command: Vec<String>) -> i32 {
    if command.is_empty() {
        eprintln!("container-exec: no command");
        return 126;
    }
    // An exec runs as the container's user, in its working directory.
    let spec: Option<ContainerSpec> = fs::read(dir.join("spec.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let built = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(state_root(dir))
        .map(|b| {
            let mut tenant = b
                .as_tenant()
                .with_detach(false)
                .with_container_args(command.clone());
            if let Some(spec) = &spec {
                tenant = tenant
                    .with_user(Some(spec.uid))
                    .with_group(Some(spec.gid))
                    .with_additional_gids(spec.additional_gids.clone());
                if !spec.working_dir.is_empty() {
                    tenant = tenant.with_cwd(Some(PathBuf::from(&spec.working_dir)));
                }
            }
            tenant
        })
        .and_then(|b| b.build());
    let pid = match built {
        Ok(pid) => pid,
        Err(e) => {
            // Upstream reports an unknown command as exit code 126/127 from the runtime;
            // keep the message on stderr, which the user sees.
            eprintln!("exec failed: {e}");
            return 126;
        }
    };
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}
