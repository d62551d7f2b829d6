//! Test support shared with other crates: a real, throwaway etcd server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Port clashes between picking a free port and etcd binding it are retried this often.
const START_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum EtcdServerError {
    #[error("etcd not found: install it with `apt-get install -y etcd-server`")]
    NotFound,
    #[error("cannot start etcd ({binary}): {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("etcd did not become healthy; its log ends with:\n{log_tail}")]
    Unhealthy { log_tail: String },
    #[error("test etcd setup: {0}")]
    Io(#[from] std::io::Error),
}

/// A single-member etcd on loopback ports with a temporary data directory; killed and
/// removed on drop.
pub struct EtcdServer {
    child: Child,
    data_dir: tempfile::TempDir,
    client_addr: SocketAddr,
}

/// The etcd binary: `$TIMONEL_ETCD`, else `etcd` on PATH, else Debian's `/usr/bin/etcd`.
fn find_etcd() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TIMONEL_ETCD") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/bin/etcd");
        debian.is_file().then_some(debian)
    })
}

fn free_loopback_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// True when etcd's `/health` endpoint answers healthy.
fn is_healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl EtcdServer {
    /// Starts etcd and waits until it answers. Blocks for up to a few seconds.
    pub fn start() -> Result<EtcdServer, EtcdServerError> {
        Self::start_binary(&find_etcd().ok_or(EtcdServerError::NotFound)?)
    }

    /// Starts the etcd at `binary`.
    pub fn start_binary(binary: &Path) -> Result<EtcdServer, EtcdServerError> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(binary) {
                Ok(server) => return Ok(server),
                Err(err @ EtcdServerError::Unhealthy { .. }) => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or(EtcdServerError::NotFound))
    }

    fn start_once(binary: &Path) -> Result<EtcdServer, EtcdServerError> {
        let data_dir = tempfile::Builder::new().prefix("timonel-etcd-").tempdir()?;
        let client_addr = free_loopback_port()?;
        let peer_addr = free_loopback_port()?;
        let client_url = format!("http://{client_addr}");
        let peer_url = format!("http://{peer_addr}");
        let log_path = data_dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(binary)
            .arg("--name=timonel-test")
            .arg(format!(
                "--data-dir={}",
                data_dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=timonel-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => EtcdServerError::NotFound,
                _ => EtcdServerError::Spawn {
                    binary: binary.to_path_buf(),
                    source,
                },
            })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if is_healthy(client_addr) {
                return Ok(EtcdServer {
                    child,
                    data_dir,
                    client_addr,
                });
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(EtcdServerError::Unhealthy {
                    log_tail: log_tail(&log_path),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client_addr)
    }

    /// The server's data directory (removed on drop).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `data_dir` removes itself after this.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_says_how_to_install_it() {
        let err = EtcdServer::start_binary(Path::new("/nonexistent/bin/etcd"))
            .err()
            .expect("a missing binary cannot start");
        assert_eq!(
            err.to_string(),
            "etcd not found: install it with `apt-get install -y etcd-server`"
        );
    }

    #[test]
    fn started_server_is_healthy_and_cleaned_up() {
        let server = EtcdServer::start().unwrap_or_else(|err| panic!("{err}"));
        let endpoint = server.endpoint();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        assert!(is_healthy(server.client_addr));
        let data_dir = server.data_dir().to_path_buf();
        assert!(data_dir.join("data").is_dir());
        let addr = server.client_addr;
        drop(server);
        assert!(!data_dir.exists(), "data dir removed on drop");
        assert!(!is_healthy(addr), "etcd killed on drop");
    }
}
