//! `timonel container-exec DIR ID --tty -- CMD…`: an exec on a terminal of the container's
//! own, as runc and containerd give one. libcontainer opens the pseudo-terminal inside the
//! container, makes it the process's controlling terminal (so Ctrl-C, job control and
//! SIGWINCH work) and hands its master over the console socket; this process relays it to
//! its own stdio, which is the agent's terminal for the client. The agent's terminal is put
//! in raw mode (the container's terminal does the line discipline) and its size changes are
//! copied to the container's terminal.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

static WINDOW_CHANGED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_window_change(_: nix::libc::c_int) {
    WINDOW_CHANGED.store(true, Ordering::Relaxed);
}

/// The container's process spec with `command` as its args, on a terminal: the exec runs
/// with the container's user, environment, working directory and capabilities.
fn exec_process(dir: &Path, command: &[String]) -> Result<serde_json::Value, String> {
    let config = fs::read(dir.join("bundle").join("config.json"))
        .map_err(|e| format!("reading the container's config: {e}"))?;
    let config: serde_json::Value =
        serde_json::from_slice(&config).map_err(|e| format!("the container's config: {e}"))?;
    let mut process = config["process"].clone();
    if !process.is_object() {
        return Err("the container's config has no process".into());
    }
    process["args"] = serde_json::json!(command);
    process["terminal"] = serde_json::json!(true);
    // The container's own terminal size, set from ours once it exists.
    if let Some(p) = process.as_object_mut() {
        p.remove("consoleSize");
    }
    Ok(process)
}

/// Receives the terminal master libcontainer sends over the console socket.
pub(super) fn receive_master(listener: &UnixListener) -> io::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    let mut name = [0u8; 64];
    let mut iov = [io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    for cmsg in message.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(io::Error::other("the console socket carried no terminal"))
}

fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut size: nix::libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write one winsize through a valid pointer.
    unsafe {
        if nix::libc::ioctl(from.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut size) == 0
            && size.ws_row > 0
        {
            nix::libc::ioctl(to.as_raw_fd(), nix::libc::TIOCSWINSZ, &size);
        }
    }
}

/// Makes our stdin (the agent's terminal) our controlling terminal, for SIGWINCH on a resize,
/// and raw.
fn take_outer_terminal() {
    let _ = nix::unistd::setsid();
    // SAFETY: TIOCSCTTY on our own stdin; failure only means no resize signals.
    unsafe {
        nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0);
    }
    let stdin = io::stdin();
    if let Ok(mut mode) = nix::sys::termios::tcgetattr(stdin.as_fd()) {
        nix::sys::termios::cfmakeraw(&mut mode);
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &mode);
    }
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_window_change),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let _ = nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGWINCH, &action);
    }
}

fn write_all_fd(fd: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Copies stdin → master and master → stdout until the process ended and its output is
/// drained; returns its exit code.
fn relay(master: &OwnedFd, pid: nix::unistd::Pid) -> i32 {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut stdin_open = true;
    let mut buf = vec![0u8; 32 * 1024];
    let mut exit: Option<i32> = None;
    loop {
        if WINDOW_CHANGED.swap(false, Ordering::Relaxed) {
            copy_window_size(stdin.as_fd(), master.as_fd());
        }
        if exit.is_none() {
            exit = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => Some(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
                Ok(_) | Err(nix::errno::Errno::EINTR) => None,
                Err(_) => Some(255),
            };
        }
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        // Once the process is gone only what it left in the terminal is read, briefly.
        let timeout = if exit.is_some() { 50u16 } else { 200 };
        match poll(&mut fds, PollTimeout::from(timeout)) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
            Ok(0) if exit.is_some() => break,
            Ok(_) => {}
        }
        let master_ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ready = fds
            .get(1)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        if master_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let mut out = stdout.lock();
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                // EIO: every holder of the container's terminal closed it.
                _ => {
                    if exit.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        if stdin_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    if !write_all_fd(master.as_fd(), &buf[..n]) {
                        stdin_open = false;
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                _ => stdin_open = false,
            }
        }
    }
    match exit {
        Some(code) => code,
        None => loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, code)) => break code,
                Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break 255,
            }
        },
    }
}

/// Runs `command` in container `id` on a terminal of the container's; returns its exit code.
pub fn exec_tty_main(dir: &Path, id: &str, command: Vec<String>) -> i32 {
    let fail = |message: String| {
        eprintln!("exec failed: {message}");
        126
    };
    let process = match exec_process(dir, &command) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    // Per exec: several may run at once in one container.
    let tag = std::process::id();
    let process_path = dir.join(format!("exec-{tag}.json"));
    let socket_name = format!("exec-{tag}.sock");
    let socket_path = dir.join(&socket_name);
    if let Err(e) = fs::write(&process_path, process.to_string()) {
        return fail(format!("writing {}: {e}", process_path.display()));
    }
    let listener = match super::attach::bind_in(dir, &socket_name) {
        Ok(l) => l,
        Err(e) => {
            let _ = fs::remove_file(&process_path);
            return fail(format!("console socket: {e}"));
        }
    };
    let built = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(super::shim::state_root(dir))
        .map(|b| {
            b.with_console_socket(Some(&socket_path))
                .as_tenant()
                .with_detach(true)
                .with_process(Some(&process_path))
        })
        .and_then(|b| b.build());
    let master = built.map_err(|e| e.to_string()).and_then(|pid| {
        receive_master(&listener)
            .map(|m| (pid, m))
            .map_err(|e| e.to_string())
    });
    let _ = fs::remove_file(&process_path);
    let _ = fs::remove_file(&socket_path);
    let (pid, master) = match master {
        Ok(pair) => pair,
        Err(e) => return fail(e),
    };
    take_outer_terminal();
    copy_window_size(io::stdin().as_fd(), master.as_fd());
    relay(&master, pid)
}
