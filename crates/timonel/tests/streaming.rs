//! Logs, exec, cp and port-forward with the real kubectl v1.35 through `timonel server` to a
//! kubelet (`timonel_streaming::serve` with the fake backend: local processes in a temp dir
//! acting as the container's root) running in this test process. The node joins through
//! `/v1-timonel/node-credentials` like the agent does; its serving certificate comes from
//! there, and the API server reaches it with its kubelet client certificate.
//!
//! Run: `cargo test -p timonel --test streaming` (fetch the tools first with
//! `scripts/fetch-kube-tools.sh`).

#[allow(dead_code)]
mod e2e {
    pub mod harness;
}

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use e2e::harness::{Cluster, ClusterConfig, Session, Store};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use timonel_streaming::cri_log::{LogStream, LogWriter};
use timonel_streaming::fake::FakeBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE: &str = "stream-node";

struct Env {
    cluster: Cluster,
    runtime: tokio::runtime::Runtime,
    backend: Arc<FakeBackend>,
    root: PathBuf,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(setup)
}

/// `POST /v1-timonel/node-credentials` as the agent does it.
async fn join(port: u16, ca_pem: &str, token: &str, body: &Value) -> (u16, Value) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let body = body.to_string();
    let request = format!(
        "POST /v1-timonel/node-credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text[9..12].parse().unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn setup() -> Env {
    let cluster = Cluster::start(ClusterConfig::api_only(Store::Sqlite));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pki_dir = cluster.dir.join("server/server");
    let token = std::fs::read_to_string(pki_dir.join("node-token")).unwrap();
    let ca = std::fs::read_to_string(pki_dir.join("tls/server-ca.crt")).unwrap();
    let (code, creds) = runtime.block_on(join(
        cluster.port,
        &ca,
        token.trim(),
        &json!({"nodeName": NODE, "addresses": ["127.0.0.1", NODE]}),
    ));
    assert_eq!(code, 200, "{creds}");
    let (bad, status) = runtime.block_on(join(
        cluster.port,
        &ca,
        "K10wrong::server:wrong",
        &json!({"nodeName": NODE}),
    ));
    assert_eq!(bad, 401, "{status}");

    let root = tempfile::Builder::new()
        .prefix("timonel-fake-node-")
        .tempdir()
        .unwrap()
        .keep();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let backend = Arc::new(FakeBackend::new(root.join("rootfs")));
    std::fs::create_dir_all(root.join("rootfs/tmp")).unwrap();
    let tls = timonel_streaming::kubelet_tls_config(
        creds["servingCertificate"].as_str().unwrap(),
        creds["servingKey"].as_str().unwrap(),
        creds["clientCA"].as_str().unwrap(),
    )
    .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let kubelet_port = listener.local_addr().unwrap().port();
    runtime.spawn(timonel_streaming::serve(listener, tls, backend.clone()));

    let env = Env {
        cluster,
        runtime,
        backend,
        root,
    };
    let admin = env.cluster.session("streaming-setup");
    admin.kubectl_stdin_ok(
        &["create", "--validate=false", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}).to_string(),
    );
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}}});
    admin.kubectl_ok(&[
        "patch",
        "node",
        NODE,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
    env
}

/// A running pod on the fake node with `containers`, each with a log file.
fn pod(s: &Session<'_>, name: &str, containers: &[&str]) -> Vec<PathBuf> {
    let env = env();
    let specs: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox"}))
        .collect();
    s.kubectl_stdin_ok(
        &["create", "--validate=false", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE, "containers": specs}})
        .to_string(),
    );
    s.kubectl_ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);
    containers
        .iter()
        .map(|c| {
            let log = env
                .root
                .join("logs")
                .join(&s.ns)
                .join(name)
                .join(format!("{c}.log"));
            env.backend.add_container(&s.ns, name, c, log.clone());
            log
        })
        .collect()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn logs_tail_timestamps_and_follow() {
    let env = env();
    let s = env.cluster.session("streaming-logs");
    let logs = pod(&s, "web", &["main"]);
    let mut w = LogWriter::open(&logs[0], Default::default()).unwrap();
    w.write(LogStream::Stdout, b"one\ntwo\n").unwrap();
    w.write(LogStream::Stderr, b"three\n").unwrap();
    assert_eq!(s.kubectl_ok(&["logs", "web"]), "one\ntwo\nthree\n");
    assert_eq!(s.kubectl_ok(&["logs", "web", "--tail=1"]), "three\n");
    let stamped = s.kubectl_ok(&["logs", "web", "--timestamps", "--tail=2"]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 2, "{stamped}");
    let (ts, text) = lines[1].split_once(' ').unwrap();
    assert_eq!(text, "three");
    assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");

    let mut follow = s.spawn_kubectl(&["logs", "-f", "web"]);
    follow.expect_line("the existing lines", Duration::from_secs(20), |l| {
        l == "three"
    });
    w.write(LogStream::Stdout, b"four\n").unwrap();
    follow.expect_line(
        "a line written while following",
        Duration::from_secs(20),
        |l| l == "four",
    );
    env.backend.stop_container(&s.ns, "web", "main");
    let (status, _, err) = follow.finish(Duration::from_secs(20));
    assert!(status.success(), "{err}");
}

#[test]
fn logs_of_a_multi_container_pod_need_a_container() {
    let env = env();
    let s = env.cluster.session("streaming-multi");
    pod(&s, "two", &["a", "b"]);
    let out = s.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{}/pods/two/log", s.ns),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("a container name must be specified for pod two, choose one of: [a b]"),
        "{}",
        stderr(&out)
    );
    let err = s.kubectl_fail(&["logs", "two", "-c", "zz"]);
    assert!(
        err.contains("container zz is not valid for pod two"),
        "{err}"
    );
}

#[test]
fn exec_exit_code_output_and_stdin() {
    let env = env();
    let s = env.cluster.session("streaming-exec");
    pod(&s, "box", &["main"]);
    let out = s.kubectl(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "echo hi; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
    assert!(stderr(&out).contains("err\n"), "{}", stderr(&out));
    assert_eq!(
        s.kubectl_ok(&["exec", "box", "--", "sh", "-c", "echo ok"]),
        "ok\n"
    );
    let echoed = s.kubectl_stdin_ok(
        &["exec", "-i", "box", "--", "sh", "-c", "tr a-z A-Z"],
        "hello stdin\n",
    );
    assert_eq!(echoed, "HELLO STDIN\n");
}

#[test]
fn cp_both_ways() {
    let env = env();
    let s = env.cluster.session("streaming-cp");
    pod(&s, "files", &["main"]);
    let local = s.home.join("upload.txt");
    std::fs::write(&local, "uploaded contents\n").unwrap();
    s.kubectl_ok(&["cp", local.to_str().unwrap(), "files:/tmp/upload.txt"]);
    let in_pod = env.backend.root().join("tmp/upload.txt");
    assert_eq!(
        std::fs::read_to_string(&in_pod).unwrap(),
        "uploaded contents\n"
    );

    std::fs::write(
        env.backend.root().join("tmp/download.txt"),
        "from the pod\n",
    )
    .unwrap();
    let back = s.home.join("download.txt");
    s.kubectl_ok(&["cp", "files:/tmp/download.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "from the pod\n");
}

#[test]
fn port_forward_carries_an_http_request() {
    let env = env();
    let s = env.cluster.session("streaming-pf");
    pod(&s, "srv", &["main"]);
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = http.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in http.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\nhello via pod\n",
            );
        }
    });
    env.backend.add_port(&s.ns, "srv", 8080, target);
    let mut pf = s.spawn_kubectl(&["port-forward", "pod/srv", ":8080"]);
    let line = pf.expect_line("the local port", Duration::from_secs(30), |l| {
        l.starts_with("Forwarding from 127.0.0.1:")
    });
    let port: u16 = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = conn.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("hello via pod\n"), "{reply}");
    drop(pf);
    let _ = &env.runtime;
}

/// kubectl with extra environment (the SPDY fallbacks are chosen by environment variables).
fn kubectl_env(s: &Session<'_>, vars: &[(&str, &str)], args: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new(&e2e::harness::tools().kubectl);
    cmd.arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .arg("--namespace")
        .arg(&s.ns)
        .args(args)
        .current_dir(&s.home)
        .env("HOME", &s.home)
        .env("KUBECACHEDIR", s.home.join(".kube/cache"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

#[test]
fn exec_and_port_forward_over_the_spdy_fallback() {
    let env = env();
    let s = env.cluster.session("streaming-spdy");
    pod(&s, "old", &["main"]);
    let out = kubectl_env(
        &s,
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")],
        &["exec", "old", "--", "sh", "-c", "echo via spdy; exit 4"],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "via spdy\n");

    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = http.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in http.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nspdy!\n",
            );
        }
    });
    env.backend.add_port(&s.ns, "old", 80, target);
    let mut pf = kubectl_env(
        &s,
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
        &["port-forward", "pod/old", ":80"],
    );
    let mut reader = std::io::BufReader::new(pf.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let port: u16 = line
        .trim()
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("unexpected port-forward output {line:?}"));
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = conn.read_to_string(&mut reply);
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(reply.ends_with("spdy!\n"), "{reply}");
}
