//! The kubelet's HTTPS server: the routes the API server proxies to.
//!
//! - `GET /healthz`
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow&previous&tailLines&sinceSeconds&sinceTime&timestamps&limitBytes&stream`
//! - `GET|POST /exec/{ns}/{pod}/{container}?command=…&input=1&output=1&error=1&tty=1` (kubectl's
//!   `stdin=true&stdout=true&stderr=true&tty=true` too, as the API server forwards them)
//! - `GET|POST /attach/{ns}/{pod}/{container}?…`
//! - `GET|POST /portForward/{ns}/{pod}`
//!
//! Exec and attach speak the remote command protocol over WebSocket (`v5.channel.k8s.io`, or
//! `v4.channel.k8s.io` without the close message). Port-forward speaks SPDY/3.1, either
//! carried in binary WebSocket messages (`SPDY/3.1+portforward.k8s.io`) or over a plain
//! `Upgrade: SPDY/3.1` connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{SinkExt, Stream, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::cri_log::{LogOptions, read_logs};
use crate::spdy::{self, Frame};
use crate::{BackendError, ContainerRef, ExecRequest, NodeBackend, TerminalSize};

pub type Body = BoxBody<Bytes, io::Error>;

/// Remote command subprotocols we speak, preferred first.
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";
/// Port-forward inside WebSocket.
pub const PROTOCOL_PORT_FORWARD_WS: &str = "SPDY/3.1+portforward.k8s.io";
/// Port-forward over plain SPDY.
pub const PROTOCOL_PORT_FORWARD: &str = "portforward.k8s.io";

const CHANNEL_STDIN: u8 = 0;
const CHANNEL_STDOUT: u8 = 1;
const CHANNEL_STDERR: u8 = 2;
const CHANNEL_ERROR: u8 = 3;
const CHANNEL_RESIZE: u8 = 4;
const CHANNEL_CLOSE: u8 = 255;

/// Accepts TLS connections (the config should require client certificates, see
/// [`crate::kubelet_tls_config`]) and serves HTTP/1.1 with upgrades on each, until the
/// listener fails.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    backend: Arc<dyn NodeBackend>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!("kubelet accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let backend = backend.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let backend = backend.clone();
                async move { Ok::<_, Infallible>(route(req, backend).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Serves one request (also usable without TLS, e.g. behind another listener).
pub async fn route(mut req: Request<Incoming>, backend: Arc<dyn NodeBackend>) -> Response<Body> {
    let segments: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;
    let is_get_or_post = is_get || method == Method::POST;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["healthz"] if is_get => text(StatusCode::OK, "ok"),
        ["stats", "summary"] if is_get => match backend.stats_summary().await {
            Ok(summary) => {
                let body = serde_json::to_vec(&summary).expect("JSON serializes");
                let mut resp = Response::new(
                    Full::new(Bytes::from(body))
                        .map_err(|e: Infallible| match e {})
                        .boxed(),
                );
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
            Err(err) => error(&err),
        },
        ["containerLogs", ns, pod, container] if is_get => {
            let target = ContainerRef {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
            };
            container_logs(&backend, target, &query).await
        }
        [kind @ ("exec" | "attach"), ns, pod, container] if is_get_or_post => {
            let request = ExecRequest {
                target: ContainerRef {
                    namespace: ns.to_string(),
                    pod: pod.to_string(),
                    container: container.to_string(),
                },
                command: query.all("command"),
                stdin: query.flag2("input", "stdin"),
                stdout: query.flag2("output", "stdout"),
                stderr: query.flag2("error", "stderr"),
                tty: query.flag("tty"),
            };
            let attach = *kind == "attach";
            if !attach && request.command.is_empty() {
                return error(&BackendError::bad_request(
                    "you must specify at least 1 command",
                ));
            }
            if websocket_protocol(&req, &[PROTOCOL_V5, PROTOCOL_V4]).is_none()
                && is_spdy_upgrade(&req, PROTOCOL_V4)
            {
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(upgraded) = on_upgrade.await {
                        let (inbound, outbound) = raw_bytes(upgraded);
                        spdy_remote_command(inbound, outbound, backend, attach, request).await;
                    }
                });
                return spdy_switch(PROTOCOL_V4);
            }
            let Some(protocol) = websocket_protocol(&req, &[PROTOCOL_V5, PROTOCOL_V4]) else {
                return error(&BackendError::bad_request(
                    "exec and attach need a WebSocket upgrade with subprotocol v5.channel.k8s.io or v4.channel.k8s.io, or Upgrade: SPDY/3.1 with X-Stream-Protocol-Version: v4.channel.k8s.io",
                ));
            };
            let v5 = protocol == PROTOCOL_V5;
            let on_upgrade = hyper::upgrade::on(&mut req);
            let response = websocket_accept(&req, protocol);
            tokio::spawn(async move {
                if let Some(ws) = upgrade_websocket(on_upgrade).await {
                    remote_command(ws, v5, backend, attach, request).await;
                }
            });
            response
        }
        ["portForward", ns, pod] if is_get_or_post => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            if websocket_protocol(&req, &[PROTOCOL_PORT_FORWARD_WS]).is_some() {
                let on_upgrade = hyper::upgrade::on(&mut req);
                let response = websocket_accept(&req, PROTOCOL_PORT_FORWARD_WS);
                tokio::spawn(async move {
                    if let Some(ws) = upgrade_websocket(on_upgrade).await {
                        let (inbound, outbound) = websocket_bytes(ws);
                        port_forward(inbound, outbound, backend, ns, pod).await;
                    }
                });
                return response;
            }
            if is_spdy_upgrade(&req, PROTOCOL_PORT_FORWARD) {
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(upgraded) = on_upgrade.await {
                        let (inbound, outbound) = raw_bytes(upgraded);
                        port_forward(inbound, outbound, backend, ns, pod).await;
                    }
                });
                return spdy_switch(PROTOCOL_PORT_FORWARD);
            }
            error(&BackendError::bad_request(
                "port-forward needs a WebSocket upgrade (SPDY/3.1+portforward.k8s.io) or Upgrade: SPDY/3.1 with X-Stream-Protocol-Version: portforward.k8s.io",
            ))
        }
        _ => error(&BackendError::not_found("404 page not found")),
    }
}

/// A parsed query string (`+` is a space, as in forms).
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            raw.unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(pair), String::new()),
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Go's `strconv.ParseBool` truths, plus a bare key.
    pub fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key),
            Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }

    fn flag2(&self, kubelet: &str, kubectl: &str) -> bool {
        self.flag(kubelet) || self.flag(kubectl)
    }
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e: Infallible| match e {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A `metav1.Status` error response.
fn error(err: &BackendError) -> Response<Body> {
    let body = serde_json::to_vec(&err.to_status()).expect("JSON serializes");
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e: Infallible| match e {})
            .boxed(),
    );
    *resp.status_mut() =
        StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn container_logs(
    backend: &Arc<dyn NodeBackend>,
    target: ContainerRef,
    query: &Query,
) -> Response<Body> {
    let bad = |what: &str, value: &str| {
        error(&BackendError::bad_request(format!(
            "invalid {what} {value:?}"
        )))
    };
    // The error is the key whose value is not a number.
    let number = |key: &'static str| -> Result<Option<i64>, &'static str> {
        match query.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| key),
        }
    };
    let (tail, since_seconds, limit) = match (
        number("tailLines"),
        number("sinceSeconds"),
        number("limitBytes"),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(key), _, _) | (_, Err(key), _) | (_, _, Err(key)) => {
            return bad(key, query.get(key).unwrap_or_default());
        }
    };
    let mut since_time: Option<DateTime<Utc>> = None;
    if let Some(raw) = query.get("sinceTime").filter(|s| !s.is_empty()) {
        match DateTime::parse_from_rfc3339(raw) {
            Ok(t) => since_time = Some(t.with_timezone(&Utc)),
            Err(_) => return bad("sinceTime", raw),
        }
    }
    if let Some(secs) = since_seconds {
        let t = Utc::now() - chrono::Duration::seconds(secs.max(0));
        since_time = Some(since_time.map_or(t, |s| s.max(t)));
    }
    let (stdout, stderr) = match query.get("stream") {
        Some("Stdout") => (true, false),
        Some("Stderr") => (false, true),
        _ => (true, true),
    };
    let (paths, running) = match backend.logs(&target, query.flag("previous")).await {
        Ok(found) => found,
        Err(err) => return error(&err),
    };
    let follow = query.flag("follow");
    let options = LogOptions {
        follow,
        tail_lines: tail.map(|n| n.max(0) as usize),
        since_time,
        limit_bytes: limit.map(|n| n.max(0) as u64),
        timestamps: query.flag("timestamps"),
        stdout,
        stderr,
        running: Some(running),
    };
    let stream = read_logs(paths, options)
        .await
        .map(|r| r.map(BodyFrame::data));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

fn header_values<'a>(req: &'a Request<Incoming>, name: &str) -> impl Iterator<Item = &'a str> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The first of `wanted` the client offers in a WebSocket upgrade request.
fn websocket_protocol(req: &Request<Incoming>, wanted: &[&'static str]) -> Option<&'static str> {
    let is_ws = header_values(req, "upgrade").any(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_ws || req.headers().get("sec-websocket-key").is_none() {
        return None;
    }
    let offered: Vec<&str> = header_values(req, "sec-websocket-protocol").collect();
    wanted
        .iter()
        .find(|w| offered.iter().any(|o| o.eq_ignore_ascii_case(w)))
        .copied()
}

fn is_spdy_upgrade(req: &Request<Incoming>, protocol: &str) -> bool {
    header_values(req, "upgrade").any(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
        && header_values(req, "x-stream-protocol-version").any(|v| v.eq_ignore_ascii_case(protocol))
}

/// The 101 answer to an `Upgrade: SPDY/3.1` request for `protocol`.
fn spdy_switch(protocol: &'static str) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "X-Stream-Protocol-Version",
        HeaderValue::from_static(protocol),
    );
    resp
}

fn websocket_accept(req: &Request<Incoming>, protocol: &'static str) -> Response<Body> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes())
        .unwrap_or_default();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("Sec-WebSocket-Accept", v);
    }
    h.insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    resp
}

type Ws = WebSocketStream<TokioIo<Upgraded>>;

async fn upgrade_websocket(on_upgrade: OnUpgrade) -> Option<Ws> {
    let upgraded = on_upgrade.await.ok()?;
    Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await)
}

fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(data);
    Message::Binary(payload.into())
}

/// The Status kubectl turns into its exit code (see client-go's remotecommand error decoder).
pub fn exit_status(command: &[String], code: i32) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

fn failure_status(err: &BackendError) -> serde_json::Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": err.message,
        "reason": err.reason,
        "code": err.code,
    })
}

/// Runs one exec or attach over an upgraded WebSocket: stdin/resize/close in, stdout and
/// stderr out, then exactly one Status on the error channel and a normal close.
async fn remote_command(
    ws: Ws,
    v5: bool,
    backend: Arc<dyn NodeBackend>,
    attach: bool,
    request: ExecRequest,
) {
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            let closing = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.flush().await;
    });
    let command = request.command.clone();
    let started = if attach {
        backend.attach(request).await
    } else {
        backend.exec(request).await
    };
    let status = match started {
        Err(err) => failure_status(&err),
        Ok(process) => {
            let mut pumps = Vec::new();
            for (channel, output) in [
                (CHANNEL_STDOUT, process.stdout),
                (CHANNEL_STDERR, process.stderr),
            ] {
                let Some(mut output) = output else { continue };
                let tx = out_tx.clone();
                pumps.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match output.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if tx.send(channel_message(channel, &buf[..n])).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }));
            }
            let mut stdin = process.stdin;
            let resize = process.resize;
            // Reads the client's messages; also keeps ping/pong going while output flows.
            let reader = tokio::spawn(async move {
                while let Some(msg) = stream.next().await {
                    let data = match msg {
                        Ok(Message::Binary(data)) => data,
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => continue,
                    };
                    let Some((&channel, payload)) = data.split_first() else {
                        continue;
                    };
                    match channel {
                        CHANNEL_STDIN => {
                            if let Some(w) = stdin.as_mut()
                                && w.write_all(payload).await.is_err()
                            {
                                stdin = None;
                            }
                        }
                        CHANNEL_RESIZE => {
                            if let (Some(tx), Ok(size)) = (
                                resize.as_ref(),
                                serde_json::from_slice::<serde_json::Value>(payload),
                            ) {
                                let dim = |k: &str| {
                                    size[k].as_u64().unwrap_or(0).min(u16::MAX as u64) as u16
                                };
                                let _ = tx.try_send(TerminalSize {
                                    width: dim("Width"),
                                    height: dim("Height"),
                                });
                            }
                        }
                        CHANNEL_CLOSE if v5 && payload.first() == Some(&CHANNEL_STDIN) => {
                            if let Some(mut w) = stdin.take() {
                                let _ = w.shutdown().await;
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            });
            for pump in pumps {
                let _ = pump.await;
            }
            let exit = process.exit.await;
            reader.abort();
            match exit {
                Ok(code) => exit_status(&command, code),
                Err(err) => failure_status(&BackendError::internal(format!(
                    "error executing command {command:?}: {err}"
                ))),
            }
        }
    };
    let status = serde_json::to_vec(&status).expect("JSON serializes");
    let _ = out_tx.send(channel_message(CHANNEL_ERROR, &status)).await;
    let _ = out_tx
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    drop(out_tx);
    let _ = writer.await;
}

type Inbound = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A byte stream carried in binary WebSocket messages (message boundaries are meaningless).
fn websocket_bytes(ws: Ws) -> (Inbound, mpsc::Sender<Bytes>) {
    let (mut sink, stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if sink.send(Message::Binary(bytes)).await.is_err() {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
    });
    let inbound = stream
        .take_while(|m| futures::future::ready(!matches!(m, Ok(Message::Close(_)) | Err(_))))
        .filter_map(|m| {
            futures::future::ready(match m {
                Ok(Message::Binary(data)) => Some(Ok(data)),
                _ => None,
            })
        });
    (Box::pin(inbound), tx)
}

/// The two halves of an upgraded connection as a byte stream and a writer channel.
pub(crate) fn raw_bytes<T>(io: T) -> (Inbound, mpsc::Sender<Bytes>)
where
    T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    let (read, mut write) = tokio::io::split(TokioIo::new(io));
    let (tx, mut rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    let inbound = futures::stream::unfold(read, |mut read| async move {
        let mut buf = vec![0u8; 32 * 1024];
        match read.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), read))
            }
            Err(err) => Some((Err(err), read)),
        }
    });
    (Box::pin(inbound), tx)
}

/// A stream the client opened on a SPDY connection (already answered with SYN_REPLY).
struct InStream {
    id: u32,
    headers: spdy::Headers,
    /// DATA payloads; closed by the client's FIN or RST_STREAM.
    data: mpsc::UnboundedReceiver<Bytes>,
}

/// Runs the SPDY side of a connection: decodes frames, answers SYN_STREAM, PING and flow
/// control, hands each new stream to `streams`, and encodes `frames` in order (header
/// compression is stateful). Returns when the client goes away.
async fn spdy_session(
    mut inbound: Inbound,
    outbound: mpsc::Sender<Bytes>,
    frames_tx: mpsc::UnboundedSender<Frame>,
    mut frames_rx: mpsc::UnboundedReceiver<Frame>,
    streams_tx: mpsc::UnboundedSender<InStream>,
) {
    let writer = tokio::spawn(async move {
        let mut encoder = spdy::Encoder::new();
        while let Some(frame) = frames_rx.recv().await {
            let mut buf = BytesMut::new();
            if encoder.encode(&frame, &mut buf).is_err() {
                return;
            }
            if outbound.send(buf.freeze()).await.is_err() {
                return;
            }
        }
    });
    let mut decoder = spdy::Decoder::new();
    let mut buf = BytesMut::new();
    let mut streams: HashMap<u32, mpsc::UnboundedSender<Bytes>> = HashMap::new();
    'conn: while let Some(chunk) = inbound.next().await {
        let Ok(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk);
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!("bad SPDY frame: {err}");
                    let _ = frames_tx.send(Frame::GoAway {
                        last_stream_id: 0,
                        status: spdy::RST_PROTOCOL_ERROR,
                    });
                    break 'conn;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    flags,
                    headers,
                    ..
                } => {
                    let _ = frames_tx.send(Frame::SynReply {
                        stream_id,
                        flags: 0,
                        headers: Vec::new(),
                    });
                    let (tx, rx) = mpsc::unbounded_channel();
                    if flags & spdy::FLAG_FIN == 0 {
                        streams.insert(stream_id, tx);
                    }
                    let _ = streams_tx.send(InStream {
                        id: stream_id,
                        headers,
                        data: rx,
                    });
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    if !data.is_empty() {
                        let _ = frames_tx.send(Frame::WindowUpdate {
                            stream_id,
                            delta: data.len() as u32,
                        });
                        if let Some(tx) = streams.get(&stream_id) {
                            let _ = tx.send(data);
                        }
                    }
                    if flags & spdy::FLAG_FIN != 0 {
                        streams.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    streams.remove(&stream_id);
                }
                Frame::Ping(id) => {
                    let _ = frames_tx.send(Frame::Ping(id));
                }
                Frame::GoAway { .. } => break 'conn,
                _ => {}
            }
        }
    }
    drop(streams);
    drop(streams_tx);
    drop(frames_tx);
    let _ = writer.await;
}

/// One port-forward request: the error and data streams kubectl opens per connection,
/// matched by their `requestid`.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<(u32, mpsc::UnboundedReceiver<Bytes>)>,
    port: Option<String>,
}

/// Serves a SPDY port-forward session: for each stream pair, connects to the pod's port
/// through the backend and copies bytes both ways; connection errors are reported as text
/// on the error stream.
async fn port_forward(
    inbound: Inbound,
    outbound: mpsc::Sender<Bytes>,
    backend: Arc<dyn NodeBackend>,
    namespace: String,
    pod: String,
) {
    let (frames_tx, frames_rx) = mpsc::unbounded_channel::<Frame>();
    let (streams_tx, mut streams_rx) = mpsc::unbounded_channel::<InStream>();
    let session = spdy_session(inbound, outbound, frames_tx.clone(), frames_rx, streams_tx);
    let pairing = async {
        let mut pairs: HashMap<String, Pair> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(stream) = streams_rx.recv().await {
            let request_id = spdy::header(&stream.headers, "requestid")
                .unwrap_or("")
                .to_string();
            let pair = pairs.entry(request_id.clone()).or_default();
            if let Some(port) = spdy::header(&stream.headers, "port") {
                pair.port = Some(port.to_string());
            }
            match spdy::header(&stream.headers, "streamtype") {
                Some("error") => pair.error = Some(stream.id),
                Some("data") => pair.data = Some((stream.id, stream.data)),
                _ => {
                    let _ = frames_tx.send(Frame::RstStream {
                        stream_id: stream.id,
                        status: spdy::RST_REFUSED_STREAM,
                    });
                    continue;
                }
            }
            if pair.error.is_some() && pair.data.is_some() {
                let pair = pairs.remove(&request_id).unwrap_or_default();
                let (Some(error_id), Some((data_id, data_rx))) = (pair.error, pair.data) else {
                    continue;
                };
                tasks.spawn(forward_pair(
                    backend.clone(),
                    namespace.clone(),
                    pod.clone(),
                    pair.port.unwrap_or_default(),
                    error_id,
                    data_id,
                    data_rx,
                    frames_tx.clone(),
                ));
            }
        }
        // The client went away: in-flight forwards end with it.
        tasks.abort_all();
    };
    tokio::join!(session, pairing);
}

/// Serves exec or attach over plain SPDY (kubectl's fallback when the WebSocket upgrade is
/// refused, or `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`): protocol `v4.channel.k8s.io`, one
/// stream per `streamtype` (error, stdin, stdout, stderr, resize); a failure Status is
/// written on the error stream (nothing on success), then every stream is closed.
async fn spdy_remote_command(
    inbound: Inbound,
    outbound: mpsc::Sender<Bytes>,
    backend: Arc<dyn NodeBackend>,
    attach: bool,
    request: ExecRequest,
) {
    let (frames_tx, frames_rx) = mpsc::unbounded_channel::<Frame>();
    let (streams_tx, mut streams_rx) = mpsc::unbounded_channel::<InStream>();
    let session = spdy_session(inbound, outbound, frames_tx.clone(), frames_rx, streams_tx);
    let fin = |stream_id| Frame::Data {
        stream_id,
        flags: spdy::FLAG_FIN,
        data: Bytes::new(),
    };
    let run = async {
        let wanted = |kind: &str| match kind {
            "error" => true,
            "stdin" => request.stdin,
            "stdout" => request.stdout,
            "stderr" => request.stderr && !request.tty,
            "resize" => request.tty,
            _ => false,
        };
        let expected = ["error", "stdin", "stdout", "stderr", "resize"]
            .iter()
            .filter(|k| wanted(k))
            .count();
        let mut streams: HashMap<String, InStream> = HashMap::new();
        // Wait (a bounded time) for every stream the request implies.
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(30));
        tokio::pin!(deadline);
        while streams.len() < expected {
            tokio::select! {
                s = streams_rx.recv() => match s {
                    Some(s) => {
                        let kind = spdy::header(&s.headers, "streamtype").unwrap_or("").to_string();
                        if wanted(&kind) {
                            streams.insert(kind, s);
                        }
                    }
                    None => return,
                },
                _ = &mut deadline => break,
            }
        }
        let Some(error_stream) = streams.remove("error") else {
            return;
        };
        let command = request.command.clone();
        let started = if attach {
            backend.attach(request.clone()).await
        } else {
            backend.exec(request.clone()).await
        };
        let failure = match started {
            Err(err) => Some(failure_status(&err)),
            Ok(process) => {
                let mut pumps = Vec::new();
                for (kind, output) in [("stdout", process.stdout), ("stderr", process.stderr)] {
                    let (Some(mut output), Some(stream)) = (output, streams.remove(kind)) else {
                        continue;
                    };
                    let frames = frames_tx.clone();
                    pumps.push(tokio::spawn(async move {
                        let mut buf = vec![0u8; 32 * 1024];
                        while let Ok(n) = output.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let data = Bytes::copy_from_slice(&buf[..n]);
                            let frame = Frame::Data {
                                stream_id: stream.id,
                                flags: 0,
                                data,
                            };
                            if frames.send(frame).is_err() {
                                break;
                            }
                        }
                        let _ = frames.send(Frame::Data {
                            stream_id: stream.id,
                            flags: spdy::FLAG_FIN,
                            data: Bytes::new(),
                        });
                    }));
                }
                let stdin_task = match (process.stdin, streams.remove("stdin")) {
                    (Some(mut stdin), Some(mut stream)) => Some(tokio::spawn(async move {
                        while let Some(chunk) = stream.data.recv().await {
                            if stdin.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                        let _ = stdin.shutdown().await;
                    })),
                    _ => None,
                };
                let resize_task = match (process.resize, streams.remove("resize")) {
                    (Some(tx), Some(mut stream)) => Some(tokio::spawn(async move {
                        // A sequence of JSON objects, one per resize.
                        let mut pending = Vec::new();
                        while let Some(chunk) = stream.data.recv().await {
                            pending.extend_from_slice(&chunk);
                            let mut de = serde_json::Deserializer::from_slice(&pending)
                                .into_iter::<serde_json::Value>();
                            let mut used = 0;
                            while let Some(Ok(size)) = de.next() {
                                used = de.byte_offset();
                                let dim = |k: &str| {
                                    size[k].as_u64().unwrap_or(0).min(u16::MAX as u64) as u16
                                };
                                let _ = tx.try_send(TerminalSize {
                                    width: dim("Width"),
                                    height: dim("Height"),
                                });
                            }
                            pending.drain(..used);
                        }
                    })),
                    _ => None,
                };
                for pump in pumps {
                    let _ = pump.await;
                }
                let exit = process.exit.await;
                if let Some(t) = stdin_task {
                    t.abort();
                }
                if let Some(t) = resize_task {
                    t.abort();
                }
                match exit {
                    Ok(0) => None,
                    Ok(code) => Some(exit_status(&command, code)),
                    Err(err) => Some(failure_status(&BackendError::internal(format!(
                        "error executing command {command:?}: {err}"
                    )))),
                }
            }
        };
        if let Some(status) = failure {
            let _ = frames_tx.send(Frame::Data {
                stream_id: error_stream.id,
                flags: 0,
                data: Bytes::from(serde_json::to_vec(&status).expect("JSON serializes")),
            });
        }
        let _ = frames_tx.send(fin(error_stream.id));
        for (_, s) in streams {
            let _ = frames_tx.send(fin(s.id));
        }
    };
    tokio::select! {
        _ = session => {}
        _ = run => {}
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward_pair(
    backend: Arc<dyn NodeBackend>,
    namespace: String,
    pod: String,
    port: String,
    error_id: u32,
    data_id: u32,
    mut data_rx: mpsc::UnboundedReceiver<Bytes>,
    frames: mpsc::UnboundedSender<Frame>,
) {
    let fin = |stream_id| Frame::Data {
        stream_id,
        flags: spdy::FLAG_FIN,
        data: Bytes::new(),
    };
    let connected = match port.parse::<u16>() {
        Ok(p) if p > 0 => backend
            .port_forward(&namespace, &pod, p)
            .await
            .map_err(|e| format!("error forwarding port {p} to pod {pod}: {}", e.message)),
        _ => Err(format!("invalid port {port:?}")),
    };
    let tcp = match connected {
        Ok(tcp) => tcp,
        Err(message) => {
            let _ = frames.send(Frame::Data {
                stream_id: error_id,
                flags: 0,
                data: Bytes::from(message),
            });
            let _ = frames.send(fin(error_id));
            let _ = frames.send(fin(data_id));
            return;
        }
    };
    let (mut read, mut write) = tcp.into_split();
    let up = async {
        while let Some(chunk) = data_rx.recv().await {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if frames
                        .send(Frame::Data {
                            stream_id: data_id,
                            flags: 0,
                            data: Bytes::copy_from_slice(&buf[..n]),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = frames.send(fin(data_id));
    };
    tokio::join!(up, down);
    let _ = frames.send(fin(error_id));
}
