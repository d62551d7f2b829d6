//! A pod's shared PID namespace (`shareProcessNamespace: true`) without a pause image:
//! `timonel pod-pause` unshares a PID namespace and forks its init, a process that only
//! reaps orphans, then prints `started <pid> <start ticks>` and exits. The init outlives the
//! agent like the shims do; the pod's containers join `/proc/<pid>/ns/pid`, and killing the
//! init ends every process of the namespace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork};
use serde::{Deserialize, Serialize};

use super::{RuntimeError, proc_stat, process_is, read_json, write_json_atomic};

/// The init of a pod's PID namespace, as recorded in the pod's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseProcess {
    pub pid: i32,
    pub start_ticks: u64,
}

impl PauseProcess {
    pub fn is_alive(&self) -> bool {
        process_is(self.pid, self.start_ticks)
    }

    /// The namespace file containers join.
    pub fn pid_namespace(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/pid", self.pid))
    }
}

/// Entry point of `timonel pod-pause`.
pub fn pause_main() -> i32 {
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        println!("error unshare(CLONE_NEWPID): {e}");
        return 1;
    }
    // SAFETY: single-threaded (run before any thread exists); the child only calls
    // async-signal-safe functions and never returns.
    match unsafe { fork() } {
        Err(e) => {
            println!("error fork: {e}");
            1
        }
        Ok(ForkResult::Parent { child }) => {
            let ticks = proc_stat(child.as_raw()).map(|(_, t)| t).unwrap_or(0);
            print!("started {} {ticks}", child.as_raw());
            let _ = std::io::stdout().flush();
            0
        }
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            // SAFETY: closing our own standard descriptors; nothing reads them any more.
            unsafe {
                nix::libc::close(0);
                nix::libc::close(1);
                nix::libc::close(2);
            }
            // PID 1 of the namespace: signals from inside it without a handler are ignored,
            // SIGKILL from the host ends it. Reap whatever is reparented to us, forever.
            loop {
                if waitpid(None, None).is_err() {
                    nix::unistd::pause();
                }
            }
        }
    }
}

const RECORD: &str = "pause.json";

/// The pod's pause process recorded in `pod_dir`, if it still runs.
pub fn running(pod_dir: &Path) -> Option<PauseProcess> {
    read_json::<PauseProcess>(&pod_dir.join(RECORD))
        .ok()
        .flatten()
        .filter(PauseProcess::is_alive)
}

/// The pod's pause process: the recorded one if it runs, else a new one (`exe` is our binary).
pub fn ensure(exe: &Path, pod_dir: &Path) -> Result<PauseProcess, RuntimeError> {
    if let Some(found) = running(pod_dir) {
        return Ok(found);
    }
    let output = Command::new(exe)
        .arg("pod-pause")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| RuntimeError::Start(format!("running {}: {e}", exe.display())))?;
    let reply = String::from_utf8_lossy(&output.stdout);
    let mut fields = reply.split_whitespace();
    let parsed = match (fields.next(), fields.next(), fields.next()) {
        (Some("started"), Some(pid), Some(ticks)) => pid.parse().ok().zip(ticks.parse().ok()),
        _ => None,
    };
    let Some((pid, start_ticks)) = parsed else {
        return Err(RuntimeError::Start(format!(
            "the pod's pause process did not start: {} {}",
            reply.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    };
    let pause = PauseProcess { pid, start_ticks };
    write_json_atomic(&pod_dir.join(RECORD), &pause)?;
    Ok(pause)
}

/// Ends the pod's pause process (and with it anything left in its PID namespace).
pub fn stop(pod_dir: &Path) {
    if let Some(pause) = running(pod_dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pause.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = std::fs::remove_file(pod_dir.join(RECORD));
}
