//! Liveness, readiness and startup probes (exec, httpGet, tcpSocket) with upstream's timing
//! fields: initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold,
//! failureThreshold.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use timonel_runtime::native::ContainerRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// One probe run's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// Where a probe reaches the container.
#[derive(Clone)]
pub struct Target {
    pub container_id: String,
    pub pod_ip: String,
    pub runtime: Arc<dyn ContainerRuntime>,
}

fn port_number(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// Runs a probe once.
pub async fn run_once(probe: &Probe, container: &Container, target: &Target) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        let cmd = match target
            .runtime
            .exec_command(&target.container_id, &command, false)
        {
            Ok(cmd) => cmd,
            Err(e) => return Outcome::Failure(e.to_string()),
        };
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        return match tokio::time::timeout(timeout, cmd.output()).await {
            Err(_) => Outcome::Failure(format!("command {command:?} timed out")),
            Ok(Err(e)) => Outcome::Failure(e.to_string()),
            Ok(Ok(out)) if out.status.success() => Outcome::Success,
            Ok(Ok(out)) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                Outcome::Failure(text)
            }
        };
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = port_number(&http.port, container) else {
            return Outcome::Failure(format!("invalid port {:?}", http.port));
        };
        let host = http.host.clone().unwrap_or_else(|| target.pod_ip.clone());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let https = http
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
        let scheme = if https { "https" } else { "http" };
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return match tokio::time::timeout(timeout, http_get(https, &host, port, &path, &headers))
            .await
        {
            Err(_) => Outcome::Failure(format!(
                "Get \"{scheme}://{host}:{port}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
            Ok(outcome) => outcome,
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port_number(&tcp.port, container) else {
            return Outcome::Failure(format!("invalid port {:?}", tcp.port));
        };
        let host = tcp.host.clone().unwrap_or_else(|| target.pod_ip.clone());
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Outcome::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if let Some(grpc) = &probe.grpc {
        let Ok(port) = u16::try_from(grpc.port) else {
            return Outcome::Failure(format!("invalid port {}", grpc.port));
        };
        let service = grpc.service.clone().unwrap_or_default();
        let host = target.pod_ip.clone();
        return match tokio::time::timeout(
            timeout,
            crate::grpc_probe::check(&host, port, &service, timeout),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failure(format!(
                "timeout: health rpc did not complete within {}s",
                timeout.as_secs()
            )),
        };
    }
    Outcome::Failure("the probe has no handler this node supports".into())
}

/// kubelet probes HTTPS without verifying the certificate (`InsecureSkipVerify`): a probe
/// asks whether the server answers, not who it is.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn probe_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

trait ProbeStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ProbeStream for T {}

async fn http_get(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Outcome {
    let scheme = if https { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{port}{path}");
    let tcp = match tokio::net::TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failure(format!("Get \"{url}\": dial tcp {host}:{port}: {e}")),
    };
    let mut stream: Box<dyn ProbeStream> = if https {
        let Ok(name) = rustls_pki_types::ServerName::try_from(host.to_string()) else {
            return Outcome::Failure(format!("Get \"{url}\": invalid host {host:?}"));
        };
        match tokio_rustls::TlsConnector::from(probe_tls())
            .connect(name, tcp)
            .await
        {
            Ok(tls) => Box::new(tls),
            Err(e) => return Outcome::Failure(format!("Get \"{url}\": tls: {e}")),
        }
    } else {
        Box::new(tcp)
    };
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        request.push_str(&format!(
            "User-Agent: kube-probe/{}\r\n",
            &crate::KUBELET_VERSION[1..5]
        ));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        request.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return Outcome::Failure(format!("Get \"{url}\": {e}"));
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Outcome::Failure(format!("Get \"{url}\": {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let code: Option<u16> = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    match code {
        Some(c) if (200..400).contains(&c) => Outcome::Success,
        Some(c) => Outcome::Failure(format!("HTTP probe failed with statuscode: {c}")),
        None => Outcome::Failure(format!("Get \"{url}\": malformed HTTP response")),
    }
}

/// The latest results of a pod's probes, by (container id, kind): `Some(true)` passing.
#[derive(Default)]
pub struct Results {
    pub by_container: Mutex<BTreeMap<(String, Kind), bool>>,
    /// Containers whose liveness or startup probe failed its threshold: id → message.
    pub unhealthy: Mutex<BTreeMap<String, String>>,
}

/// Runs one probe of one container until aborted, recording results and waking the pod
/// worker whenever a result changes.
pub async fn prober(
    kind: Kind,
    probe: Probe,
    container: Container,
    target: Target,
    results: Arc<Results>,
    wake: Arc<Notify>,
    on_failure: impl Fn(&str) + Send + Sync + 'static,
) {
    let initial = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(initial).await;
    let key = (target.container_id.clone(), kind);
    let (mut successes, mut failures) = (0, 0);
    loop {
        if kind != Kind::Startup {
            // Liveness and readiness wait for the startup probe, as upstream.
            let startup_pending = {
                let map = results.by_container.lock().expect("poisoned");
                map.get(&(target.container_id.clone(), Kind::Startup)) == Some(&false)
            };
            if startup_pending {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let outcome = run_once(&probe, &container, &target).await;
        let current = results
            .by_container
            .lock()
            .expect("poisoned")
            .get(&key)
            .copied();
        let mut next = current;
        match &outcome {
            Outcome::Success => {
                failures = 0;
                successes += 1;
                if successes >= success_threshold {
                    next = Some(true);
                }
            }
            Outcome::Failure(message) => {
                successes = 0;
                failures += 1;
                on_failure(message);
                if failures >= failure_threshold {
                    next = Some(false);
                    if kind != Kind::Readiness {
                        results.unhealthy.lock().expect("poisoned").insert(
                            target.container_id.clone(),
                            format!(
                                "Container {} failed {} probe, will be restarted",
                                container.name,
                                kind.name().to_ascii_lowercase()
                            ),
                        );
                        wake.notify_one();
                        return;
                    }
                }
            }
        }
        if next != current {
            results
                .by_container
                .lock()
                .expect("poisoned")
                .insert(key.clone(), next.unwrap_or(false));
            wake.notify_one();
        }
        if kind == Kind::Startup && next == Some(true) {
            return;
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .unwrap();
        assert_eq!(
            port_number(&IntOrString::String("http".into()), &c),
            Some(8080)
        );
        assert_eq!(port_number(&IntOrString::Int(80), &c), Some(80));
        assert_eq!(port_number(&IntOrString::String("nope".into()), &c), None);
    }

    #[tokio::test]
    async fn http_probe_reads_the_status_code() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in ["200 OK", "500 Internal Server Error"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        assert_eq!(
            http_get(false, "127.0.0.1", port, "/", &[]).await,
            Outcome::Success
        );
        assert_eq!(
            http_get(false, "127.0.0.1", port, "/", &[]).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
    }
}
