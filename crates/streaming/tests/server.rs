//! The kubelet server against the fake backend (real local processes and listeners), driven
//! over TLS with client certificates by a WebSocket client and a SPDY client.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use timonel_streaming::cri_log::{LogStream, LogWriter};
use timonel_streaming::fake::FakeBackend;
use timonel_streaming::spdy::{self, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Pki {
    ca_pem: String,
    serving: (String, String),
    client: (String, String),
    client_ca_pem: String,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(issuer: &Issuer<'static, KeyPair>, sans: Vec<String>, cn: &str) -> (String, String) {
    let mut params = CertificateParams::new(sans).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let (ca_pem, server_ca) = ca("server-ca");
    let (client_ca_pem, client_ca) = ca("client-ca");
    Pki {
        serving: leaf(&server_ca, vec!["127.0.0.1".into()], "node"),
        client: leaf(&client_ca, vec![], "kube-apiserver-kubelet-client"),
        ca_pem,
        client_ca_pem,
    }
}

struct Node {
    addr: std::net::SocketAddr,
    backend: Arc<FakeBackend>,
    connector: tokio_rustls::TlsConnector,
    _dir: tempfile::TempDir,
}

async fn start() -> Node {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FakeBackend::new(dir.path()));
    backend.add_container("ns", "p", "c", dir.path().join("c.log"));
    let tls =
        timonel_streaming::kubelet_tls_config(&pki.serving.0, &pki.serving.1, &pki.client_ca_pem)
            .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(timonel_streaming::serve(listener, tls, backend.clone()));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(pki.client.0.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(pki.client.1.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    Node {
        addr,
        backend,
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        _dir: dir,
    }
}

impl Node {
    async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        self.connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    }

    async fn http(&self, request: &str) -> (u16, String) {
        let mut tls = self.tls().await;
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let code = text[9..12].parse().unwrap();
        (code, text)
    }

    async fn ws(
        &self,
        path: &str,
        protocol: &str,
    ) -> tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>> {
        let mut req = format!("wss://127.0.0.1:{}{path}", self.addr.port())
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (ws, resp) = tokio_tungstenite::client_async(req, self.tls().await)
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["sec-websocket-protocol"].to_str().unwrap(),
            protocol
        );
        ws
    }
}

/// Runs a remote command: sends `stdin` (then the v5 close of stdin) and returns
/// (stdout, stderr, status).
async fn run(node: &Node, query: &str, stdin: Option<&[u8]>) -> (String, String, Value) {
    let mut ws = node
        .ws(&format!("/exec/ns/p/c?{query}"), "v5.channel.k8s.io")
        .await;
    if let Some(input) = stdin {
        let mut msg = vec![0u8];
        msg.extend_from_slice(input);
        ws.send(Message::Binary(msg.into())).await.unwrap();
        ws.send(Message::Binary(vec![255u8, 0].into()))
            .await
            .unwrap();
    }
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Value::Null);
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("exec finishes")
    {
        match msg.unwrap() {
            Message::Binary(data) => match data[0] {
                1 => out.extend_from_slice(&data[1..]),
                2 => err.extend_from_slice(&data[1..]),
                3 => status = serde_json::from_slice(&data[1..]).unwrap(),
                other => panic!("unexpected channel {other}"),
            },
            Message::Close(frame) => {
                assert_eq!(u16::from(frame.unwrap().code), 1000);
                break;
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        status,
    )
}

#[tokio::test]
async fn healthz_and_client_certificate_required() {
    let node = start().await;
    let (code, body) = node
        .http("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(code, 200);
    assert!(body.ends_with("ok"));
    // Without a client certificate the handshake fails.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAll))
    .with_no_client_auth();
    let tcp = TcpStream::connect(node.addr).await.unwrap();
    let result = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await;
    let refused = match result {
        Err(_) => true,
        Ok(mut tls) => {
            let _ = tls
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.is_err() || buf.is_empty()
        }
    };
    assert!(refused);
}

#[derive(Debug)]
struct AcceptAll;

impl rustls::client::danger::ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn exec_exit_codes_and_stream_separation() {
    let node = start().await;
    let (out, err, status) = run(
        &node,
        "command=sh&command=-c&command=echo+hi%3B+echo+oops+%3E%262&output=1&error=1",
        None,
    )
    .await;
    assert_eq!(out, "hi\n");
    assert_eq!(err, "oops\n");
    assert_eq!(
        status,
        serde_json::json!({"metadata": {}, "status": "Success"})
    );

    // kubectl's spelling of the flags, as the API server forwards them.
    let (out, _, status) = run(
        &node,
        "command=sh&command=-c&command=echo+hi%3B+exit+3&stdout=true&stderr=true",
        None,
    )
    .await;
    assert_eq!(out, "hi\n");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    assert_eq!(
        status["message"],
        "command terminated with non-zero exit code: error executing command [sh -c echo hi; exit 3], exit code 3"
    );
}

#[tokio::test]
async fn exec_stdin_ends_with_the_v5_close_message() {
    let node = start().await;
    let (out, _, status) = run(
        &node,
        "command=sh&command=-c&command=wc+-c&stdin=true&stdout=true",
        Some(b"hello world"),
    )
    .await;
    assert_eq!(out.trim(), "11");
    assert_eq!(status["status"], "Success");
}

#[tokio::test]
async fn exec_in_unknown_container_reports_a_status() {
    let node = start().await;
    let mut ws = node
        .ws("/exec/ns/p/nope?command=true&output=1", "v4.channel.k8s.io")
        .await;
    let msg = ws.next().await.unwrap().unwrap();
    let data = msg.into_data();
    assert_eq!(data[0], 3);
    let status: Value = serde_json::from_slice(&data[1..]).unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NotFound");
}

#[tokio::test]
async fn container_logs_over_https() {
    let node = start().await;
    let mut w = LogWriter::open(node._dir.path().join("c.log"), Default::default()).unwrap();
    w.write(LogStream::Stdout, b"one\ntwo\nthree\n").unwrap();
    let (code, body) = node
        .http("GET /containerLogs/ns/p/c?tailLines=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(code, 200);
    assert!(body.contains("two\n") && body.contains("three\n") && !body.contains("one"));
    let (code, body) = node
        .http("GET /containerLogs/ns/p/missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"reason\":\"NotFound\""));
}

/// A minimal SPDY client: one encoder and decoder per direction.
struct SpdyClient {
    enc: spdy::Encoder,
    dec: spdy::Decoder,
    buf: BytesMut,
}

impl SpdyClient {
    fn new() -> SpdyClient {
        SpdyClient {
            enc: spdy::Encoder::new(),
            dec: spdy::Decoder::new(),
            buf: BytesMut::new(),
        }
    }
    fn encode(&mut self, frames: &[Frame]) -> Bytes {
        let mut out = BytesMut::new();
        for f in frames {
            self.enc.encode(f, &mut out).unwrap();
        }
        out.freeze()
    }
    fn feed(&mut self, data: &[u8]) -> Vec<Frame> {
        self.buf.extend_from_slice(data);
        let mut frames = Vec::new();
        while let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
            frames.push(f);
        }
        frames
    }
}

fn open_pair(port: u16, request: u32, first_id: u32) -> Vec<Frame> {
    let headers = |kind: &str| {
        vec![
            ("streamtype".to_string(), kind.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestid".to_string(), request.to_string()),
        ]
    };
    vec![
        Frame::SynStream {
            stream_id: first_id,
            associated_id: 0,
            priority: 0,
            flags: spdy::FLAG_FIN,
            headers: headers("error"),
        },
        Frame::SynStream {
            stream_id: first_id + 2,
            associated_id: 0,
            priority: 0,
            flags: 0,
            headers: headers("data"),
        },
    ]
}

async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn port_forward_over_websocket_round_trip_and_error_stream() {
    let node = start().await;
    node.backend.add_port("ns", "p", 8080, echo_server().await);
    let mut ws = node
        .ws("/portForward/ns/p", "SPDY/3.1+portforward.k8s.io")
        .await;
    let mut client = SpdyClient::new();
    let mut frames = open_pair(8080, 0, 1);
    frames.push(Frame::Data {
        stream_id: 3,
        flags: 0,
        data: Bytes::from_static(b"ping through spdy"),
    });
    frames.extend(open_pair(9999, 1, 5));
    ws.send(Message::Binary(client.encode(&frames)))
        .await
        .unwrap();
    let (mut echoed, mut error_text, mut replies) = (Vec::new(), Vec::new(), 0);
    while echoed.len() < 17 || error_text.is_empty() {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("port-forward answers")
            .unwrap()
            .unwrap();
        for f in client.feed(&msg.into_data()) {
            match f {
                Frame::SynReply { .. } => replies += 1,
                Frame::Data {
                    stream_id: 3, data, ..
                } => echoed.extend_from_slice(&data),
                Frame::Data {
                    stream_id: 5, data, ..
                } => error_text.extend_from_slice(&data),
                _ => {}
            }
        }
    }
    assert_eq!(replies, 4);
    assert_eq!(echoed, b"ping through spdy");
    let error_text = String::from_utf8(error_text).unwrap();
    assert!(
        error_text.starts_with("error forwarding port 9999 to pod p"),
        "{error_text}"
    );
}

#[tokio::test]
async fn port_forward_over_plain_spdy_upgrade() {
    let node = start().await;
    node.backend.add_port("ns", "p", 80, echo_server().await);
    let mut tls = node.tls().await;
    tls.write_all(
        b"POST /portForward/ns/p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: portforward.k8s.io")
    );
    let mut client = SpdyClient::new();
    let mut frames = open_pair(80, 0, 1);
    frames.push(Frame::Data {
        stream_id: 3,
        flags: spdy::FLAG_FIN,
        data: Bytes::from_static(b"abc"),
    });
    frames.push(Frame::Ping(1));
    tls.write_all(&client.encode(&frames)).await.unwrap();
    let (mut echoed, mut fin, mut pong) = (Vec::new(), false, false);
    let mut buf = vec![0u8; 4096];
    while !(fin && pong) {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed early");
        for f in client.feed(&buf[..n]) {
            match f {
                Frame::Data {
                    stream_id: 3,
                    data,
                    flags,
                } => {
                    echoed.extend_from_slice(&data);
                    fin |= flags & spdy::FLAG_FIN != 0;
                }
                Frame::Ping(1) => pong = true,
                _ => {}
            }
        }
    }
    assert_eq!(echoed, b"abc");
}

#[tokio::test]
async fn exec_over_plain_spdy_fallback() {
    let node = start().await;
    let mut tls = node.tls().await;
    tls.write_all(
        b"POST /exec/ns/p/c?command=sh&command=-c&command=echo+hi%3B+exit+3&output=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v5.channel.k8s.io\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io")
    );
    let mut client = SpdyClient::new();
    let open = |id: u32, kind: &str| Frame::SynStream {
        stream_id: id,
        associated_id: 0,
        priority: 0,
        flags: spdy::FLAG_FIN,
        headers: vec![("streamtype".to_string(), kind.to_string())],
    };
    tls.write_all(&client.encode(&[open(1, "error"), open(3, "stdout")]))
        .await
        .unwrap();
    let (mut out, mut err, mut error_closed) = (Vec::new(), Vec::new(), false);
    let mut buf = vec![0u8; 4096];
    while !error_closed {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed early");
        for f in client.feed(&buf[..n]) {
            match f {
                Frame::Data {
                    stream_id: 3, data, ..
                } => out.extend_from_slice(&data),
                Frame::Data {
                    stream_id: 1,
                    data,
                    flags,
                } => {
                    err.extend_from_slice(&data);
                    error_closed |= flags & spdy::FLAG_FIN != 0;
                }
                _ => {}
            }
        }
    }
    assert_eq!(out, b"hi\n");
    let status: Value = serde_json::from_slice(&err).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
}
