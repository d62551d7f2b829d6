//! A [`NodeBackend`] for tests: containers are local processes run in a directory that acts
//! as the container's root, logs are files written by the test, ports map to local
//! listeners. Used by this crate's tests and the end-to-end tests with the real kubectl.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::cri_log::log_files_oldest_first;
use crate::{BackendError, ContainerRef, ExecProcess, ExecRequest, NodeBackend};

/// The fake node. Register containers with [`FakeBackend::add_container`].
pub struct FakeBackend {
    root: PathBuf,
    containers: Mutex<HashMap<(String, String, String), FakeContainer>>,
    ports: Mutex<HashMap<(String, String, u16), SocketAddr>>,
}

struct FakeContainer {
    log: PathBuf,
    running: watch::Sender<bool>,
}

impl FakeBackend {
    /// Commands run in `root`; absolute path arguments are taken relative to it.
    pub fn new(root: impl Into<PathBuf>) -> FakeBackend {
        FakeBackend {
            root: root.into(),
            containers: Mutex::default(),
            ports: Mutex::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Declares a running container whose live CRI log file is `log`.
    pub fn add_container(&self, namespace: &str, pod: &str, container: &str, log: PathBuf) {
        let (running, _) = watch::channel(true);
        self.containers.lock().unwrap().insert(
            (namespace.into(), pod.into(), container.into()),
            FakeContainer { log, running },
        );
    }

    /// Marks a container stopped: followers of its log finish.
    pub fn stop_container(&self, namespace: &str, pod: &str, container: &str) {
        if let Some(c) =
            self.containers
                .lock()
                .unwrap()
                .get(&(namespace.into(), pod.into(), container.into()))
        {
            let _ = c.running.send(false);
        }
    }

    /// Port `port` of the pod forwards to `target`.
    pub fn add_port(&self, namespace: &str, pod: &str, port: u16, target: SocketAddr) {
        self.ports
            .lock()
            .unwrap()
            .insert((namespace.into(), pod.into(), port), target);
    }

    fn check(&self, target: &ContainerRef) -> Result<(), BackendError> {
        let key = (
            target.namespace.clone(),
            target.pod.clone(),
            target.container.clone(),
        );
        if self.containers.lock().unwrap().contains_key(&key) {
            Ok(())
        } else {
            Err(BackendError::not_found(format!(
                "container {} of pod {}/{} not found",
                target.container, target.namespace, target.pod
            )))
        }
    }
}

#[async_trait::async_trait]
impl NodeBackend for FakeBackend {
    async fn logs(
        &self,
        target: &ContainerRef,
        _previous: bool,
    ) -> Result<(Vec<PathBuf>, watch::Receiver<bool>), BackendError> {
        let key = (
            target.namespace.clone(),
            target.pod.clone(),
            target.container.clone(),
        );
        let containers = self.containers.lock().unwrap();
        let c = containers.get(&key).ok_or_else(|| {
            BackendError::not_found(format!("container {} not found", target.container))
        })?;
        Ok((log_files_oldest_first(&c.log), c.running.subscribe()))
    }

    async fn exec(&self, req: ExecRequest) -> Result<ExecProcess, BackendError> {
        self.check(&req.target)?;
        let Some((program, args)) = req.command.split_first() else {
            return Err(BackendError::bad_request("empty command"));
        };
        let args: Vec<&str> = args
            .iter()
            .map(|a| match a.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest,
                Some(_) => ".",
                None => a.as_str(),
            })
            .collect();
        let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let mut child = tokio::process::Command::new(program)
            .args(&args)
            .current_dir(&self.root)
            .stdin(pipe(req.stdin))
            .stdout(pipe(req.stdout))
            .stderr(pipe(req.stderr && !req.tty))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                BackendError::internal(format!(
                    "failed to exec in container: starting {program:?}: {e}"
                ))
            })?;
        let stdin = child
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>);
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
        Ok(ExecProcess {
            stdin,
            stdout,
            stderr,
            resize: None,
            exit: Box::pin(async move {
                let status = child.wait().await?;
                Ok(status.code().unwrap_or(128))
            }),
        })
    }

    async fn attach(&self, req: ExecRequest) -> Result<ExecProcess, BackendError> {
        // A fake container's "main process" is a shell echoing its stdin.
        let command = vec!["cat".to_string()];
        self.exec(ExecRequest { command, ..req }).await
    }

    async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, BackendError> {
        let target = self
            .ports
            .lock()
            .unwrap()
            .get(&(namespace.into(), pod.into(), port))
            .copied();
        let target =
            target.ok_or_else(|| BackendError::internal(format!("no listener on port {port}")))?;
        tokio::net::TcpStream::connect(target)
            .await
            .map_err(|e| BackendError::internal(format!("dial {target}: {e}")))
    }
}
