//! The kubelet API's backend: logs from the CRI log files, exec through the runtime's exec
//! helper (pipes, or a pseudo-terminal for `-t`), port-forward into the pod's network
//! namespace.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use timonel_runtime::native::ContainerState;
use timonel_streaming::{
    BackendError, ContainerRef, ExecProcess, ExecRequest, NodeBackend, TerminalSize,
};
use tokio::sync::watch;

use crate::pods::Agent;

pub struct AgentBackend {
    pub agent: Arc<Agent>,
    pub cpu_samples: crate::stats::CpuSamples,
}

fn bad_request(message: String) -> BackendError {
    BackendError::new(400, "BadRequest", message)
}

impl AgentBackend {
    fn running_container(
        &self,
        target: &ContainerRef,
    ) -> Result<timonel_runtime::native::ContainerInfo, BackendError> {
        match self
            .agent
            .find_container(&target.namespace, &target.pod, &target.container, false)
        {
            Some(info) if matches!(info.state, ContainerState::Running(_)) => Ok(info),
            Some(_) => Err(bad_request(format!(
                "container {} is not running",
                target.container
            ))),
            None => Err(bad_request(format!(
                "container not found (\"{}\")",
                target.container
            ))),
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[async_trait::async_trait]
impl NodeBackend for AgentBackend {
    async fn logs(
        &self,
        target: &ContainerRef,
        previous: bool,
    ) -> Result<(Vec<PathBuf>, watch::Receiver<bool>), BackendError> {
        let Some(info) =
            self.agent
                .find_container(&target.namespace, &target.pod, &target.container, previous)
        else {
            return Err(bad_request(if previous {
                format!(
                    "previous terminated container \"{}\" in pod \"{}\" not found",
                    target.container, target.pod
                )
            } else {
                format!(
                    "container \"{}\" in pod \"{}\" is waiting to start: ContainerCreating",
                    target.container, target.pod
                )
            }));
        };
        let files = timonel_streaming::cri_log::log_files_oldest_first(&info.meta.log_path);
        let running = matches!(info.state, ContainerState::Running(_));
        let (tx, rx) = watch::channel(running);
        if running {
            let runtime = Arc::clone(&self.agent.runtime);
            let id = info.id.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    }
                    let still = matches!(
                        runtime.inspect(&id).map(|i| i.state),
                        Ok(ContainerState::Running(_))
                    );
                    if !still {
                        let _ = tx.send(false);
                        return;
                    }
                }
            });
        }
        Ok((files, rx))
    }

    async fn exec(&self, req: ExecRequest) -> Result<ExecProcess, BackendError> {
        let info = self.running_container(&req.target)?;
        let cmd = self
            .agent
            .runtime
            .exec_command(&info.id, &req.command, req.tty)
            .map_err(|e| bad_request(e.to_string()))?;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        if req.tty {
            let pty = rustix_openpty().map_err(|e| {
                BackendError::new(500, "InternalError", format!("allocating a terminal: {e}"))
            })?;
            let (master, slave) = pty;
            let slave_in = slave.try_clone().map_err(internal)?;
            let slave_out = slave.try_clone().map_err(internal)?;
            cmd.stdin(std::process::Stdio::from(slave_in))
                .stdout(std::process::Stdio::from(slave_out))
                .stderr(std::process::Stdio::from(slave));
            let mut child = cmd.spawn().map_err(internal)?;
            let writer = tokio::fs::File::from_std(std::fs::File::from(
                master.try_clone().map_err(internal)?,
            ));
            let reader = tokio::fs::File::from_std(std::fs::File::from(
                master.try_clone().map_err(internal)?,
            ));
            let (resize_tx, mut resize_rx) = tokio::sync::mpsc::channel::<TerminalSize>(8);
            tokio::spawn(async move {
                while let Some(size) = resize_rx.recv().await {
                    let winsize = rustix::termios::Winsize {
                        ws_row: size.height,
                        ws_col: size.width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(master.as_fd(), winsize);
                }
            });
            let exit = Box::pin(async move { child.wait().await.map(exit_code) });
            return Ok(ExecProcess {
                stdin: req
                    .stdin
                    .then(|| Box::new(writer) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
                stdout: Some(Box::new(PtyReader(reader))),
                stderr: None,
                resize: Some(resize_tx),
                exit,
            });
        }
        cmd.stdin(if req.stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(internal)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let exit = Box::pin(async move { child.wait().await.map(exit_code) });
        Ok(ExecProcess {
            stdin: stdin.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
            stdout: if req.stdout {
                stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)
            } else {
                None
            },
            stderr: if req.stderr {
                stderr.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)
            } else {
                None
            },
            resize: None,
            exit,
        })
    }

    /// Attaches to the container through its shim's attach socket: its raw output from now
    /// on, input to its stdin (`stdin: true`) and resizes of its terminal (`tty: true`),
    /// until it exits. A runtime without that socket gets the output followed from the log,
    /// and its stdin read and dropped.
    async fn attach(&self, req: ExecRequest) -> Result<ExecProcess, BackendError> {
        let info = self.running_container(&req.target)?;
        if let Some(socket) = self.agent.runtime.attach_socket(&info.id) {
            return attach_through_shim(&socket, req).await;
        }
        let (files, running) = self.logs(&req.target, false).await?;
        let follow = |stdout: bool| {
            let options = timonel_streaming::cri_log::LogOptions {
                follow: true,
                tail_lines: Some(0),
                stdout,
                stderr: !stdout,
                running: Some(running.clone()),
                ..Default::default()
            };
            let files = files.clone();
            async move {
                let lines = timonel_streaming::cri_log::read_logs(files, options).await;
                Box::new(tokio_util::io::StreamReader::new(lines))
                    as Box<dyn tokio::io::AsyncRead + Send + Unpin>
            }
        };
        let stdout = if req.stdout || req.tty {
            Some(follow(true).await)
        } else {
            None
        };
        let stderr = if req.stderr && !req.tty {
            Some(follow(false).await)
        } else {
            None
        };
        // As containerd's attach: the session ends, successfully, when the container stops.
        let mut running = running;
        let exit = Box::pin(async move {
            while *running.borrow_and_update() {
                if running.changed().await.is_err() {
                    break;
                }
            }
            Ok(0)
        });
        Ok(ExecProcess {
            stdin: req.stdin.then(|| {
                Box::new(tokio::io::sink()) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>
            }),
            stdout,
            stderr,
            resize: None,
            exit,
        })
    }

    async fn stats_summary(&self) -> Result<serde_json::Value, BackendError> {
        let containers = self
            .agent
            .runtime
            .list_matching(&|_| true)
            .map_err(internal)?;
        Ok(crate::stats::summary(
            &self.agent.facts.name,
            &self.cpu_samples,
            &containers,
            timonel_runtime::native::stats::usage,
        ))
    }

    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, BackendError> {
        let stream = match self.agent.pod_netns(namespace, pod) {
            Some(netns) => tokio::task::spawn_blocking(move || timonel_net::connect_in_netns(&netns, port))
                .await
                .map_err(internal)?,
            // Host-network pods listen in the host's namespace.
            None => std::net::TcpStream::connect(("127.0.0.1", port)),
        }
        .map_err(|e| {
            BackendError::new(
                500,
                "InternalError",
                format!("error forwarding port {port} to pod {pod}: failed to connect to localhost:{port} inside namespace: {e}"),
            )
        })?;
        stream.set_nonblocking(true).map_err(internal)?;
        tokio::net::TcpStream::from_std(stream).map_err(internal)
    }
}

/// One attach session over the shim's socket (protocol in `timonel_runtime::native::attach`):
/// a task frames the client's input and resizes, another splits the shim's frames into
/// stdout and stderr; the session ends when the shim closes the connection.
async fn attach_through_shim(
    socket: &std::path::Path,
    req: ExecRequest,
) -> Result<ExecProcess, BackendError> {
    use timonel_runtime::native::attach as frames;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

    let stream = frames::connect(socket)
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(tokio::net::UnixStream::from_std)
        .map_err(|e| internal(format!("attaching to the container: {e}")))?;
    let (mut from_shim, mut to_shim) = stream.into_split();
    let hello = [if req.stdin { frames::HELLO_STDIN } else { 0 }];
    to_shim
        .write_all(&frames::encode(frames::HELLO, &hello))
        .await
        .map_err(internal)?;

    let (stdin_theirs, mut stdin_ours) = tokio::io::duplex(64 * 1024);
    let (resize_tx, mut resize_rx) = tokio::sync::mpsc::channel::<TerminalSize>(8);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdin_open = req.stdin;
        let mut resize_open = req.tty;
        while stdin_open || resize_open {
            let frame = tokio::select! {
                read = stdin_ours.read(&mut buf), if stdin_open => match read {
                    Ok(n) if n > 0 => frames::encode(frames::STDIN, &buf[..n]),
                    _ => {
                        stdin_open = false;
                        frames::encode(frames::STDIN_EOF, b"")
                    }
                },
                size = resize_rx.recv(), if resize_open => match size {
                    Some(size) => {
                        let mut payload = size.width.to_be_bytes().to_vec();
                        payload.extend_from_slice(&size.height.to_be_bytes());
                        frames::encode(frames::RESIZE, &payload)
                    }
                    None => {
                        resize_open = false;
                        continue;
                    }
                },
            };
            if to_shim.write_all(&frame).await.is_err() {
                break;
            }
        }
        // Dropping the write half leaves the connection open for the output.
    });

    let (mut stdout_ours, stdout_theirs) = tokio::io::duplex(64 * 1024);
    let (mut stderr_ours, stderr_theirs) = tokio::io::duplex(64 * 1024);
    let (want_stdout, want_stderr) = (req.stdout || req.tty, req.stderr && !req.tty);
    let copier = tokio::spawn(async move {
        let mut header = [0u8; 5];
        while from_shim.read_exact(&mut header).await.is_ok() {
            let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let mut payload = vec![0u8; length as usize];
            if from_shim.read_exact(&mut payload).await.is_err() {
                break;
            }
            let delivered = match header[0] {
                frames::STDOUT if want_stdout => stdout_ours.write_all(&payload).await,
                frames::STDERR if want_stderr => stderr_ours.write_all(&payload).await,
                _ => Ok(()),
            };
            // The session is gone (the server dropped its readers).
            if delivered.is_err() {
                break;
            }
        }
    });
    // As containerd's attach: the session ends, successfully, when the container stops.
    let exit = Box::pin(async move {
        let _ = copier.await;
        Ok(0)
    });
    Ok(ExecProcess {
        stdin: req
            .stdin
            .then(|| Box::new(stdin_theirs) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
        stdout: want_stdout.then(|| Box::new(stdout_theirs) as Reader),
        stderr: want_stderr.then(|| Box::new(stderr_theirs) as Reader),
        resize: req.tty.then_some(resize_tx),
        exit,
    })
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(500, "InternalError", e.to_string())
}

fn rustix_openpty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )?;
    Ok((master, slave))
}

/// A pty master reports EIO once the last writer (the exec'd process) is gone: that is EOF.
struct PtyReader(tokio::fs::File);

impl tokio::io::AsyncRead for PtyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.raw_os_error() == Some(5) => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
