//! Running code inside a pod's namespaces.
//!
//! `setns()` changes the namespaces of the calling *thread* only, and a thread that has joined a
//! pod namespace must never go back to serving other work (an async runtime worker would carry
//! the namespace into unrelated tasks). So everything here happens on a fresh `std::thread`
//! that joins, does its work and exits.

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// The namespace types a pod gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NsKind {
    /// Network namespace: interfaces, addresses, routes, sockets.
    Net,
    /// System V IPC and POSIX message queues.
    Ipc,
    /// Hostname and domain name.
    Uts,
}

impl NsKind {
    /// All kinds, in the order the files are created.
    pub const ALL: [NsKind; 3] = [NsKind::Net, NsKind::Ipc, NsKind::Uts];

    /// The name of the namespace under `/proc/<pid>/ns/` (and of the file under a pod's dir).
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
        }
    }

    pub(crate) fn clone_flag(self) -> CloneFlags {
        match self {
            NsKind::Net => CloneFlags::CLONE_NEWNET,
            NsKind::Ipc => CloneFlags::CLONE_NEWIPC,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }
}

/// Makes the calling thread join the namespace bind-mounted at `path`.
pub(crate) fn join(path: &Path, kind: NsKind) -> io::Result<()> {
    let file = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    setns(&file, kind.clone_flag()).map_err(|errno| {
        io::Error::new(
            io::Error::from(errno).kind(),
            format!(
                "setns({}) into {}: {errno}",
                kind.proc_name(),
                path.display()
            ),
        )
    })
}

/// Runs `f` on a fresh thread that has joined the namespace of type `kind` bind-mounted at
/// `ns_file`, and returns its result. A panic in `f` is propagated to the caller.
///
/// Blocks the calling thread until `f` returns; from async code call it via `spawn_blocking`.
pub fn run_in_namespace<T: Send + 'static>(
    ns_file: &Path,
    kind: NsKind,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let path: PathBuf = ns_file.to_path_buf();
    let handle = std::thread::Builder::new()
        .name(format!("timonel-ns-{}", kind.proc_name()))
        .spawn(move || -> io::Result<T> {
            join(&path, kind)?;
            Ok(f())
        })?;
    match handle.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `f` on a fresh thread that has joined the network namespace `netns`.
///
/// Sockets created by `f` belong to that namespace for their whole life, even after they are
/// handed back to threads in the host namespace; that is what makes [`connect_in_netns`] work.
/// Blocks the calling thread until `f` returns.
pub fn run_in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    run_in_namespace(netns, NsKind::Net, f)
}

/// Opens a TCP connection to `127.0.0.1:port` *inside* the network namespace `netns` (for
/// `kubectl port-forward`): the connect happens on a short-lived thread that joined `netns`,
/// and the connected socket, which stays in that namespace, is returned.
///
/// Blocking; set the stream non-blocking and hand it to tokio (`TcpStream::from_std`) if needed.
pub fn connect_in_netns(netns: &Path, port: u16) -> io::Result<TcpStream> {
    run_in_netns(netns, move || TcpStream::connect(("127.0.0.1", port)))?
}
