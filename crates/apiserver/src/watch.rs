//! Watch: a chunked stream of `{"type": …, "object": …}` lines served from the watch cache.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};
use timonel_api::registry::ResourceInfo;
use timonel_api::status::ApiError;
use tokio::sync::{broadcast, mpsc};

use crate::cache::{CachedObject, EventType, WatchEvent, WatchStart};
use crate::glue;
use crate::request::Representation;
use crate::rest::{Filter, Request, include_object, partial_metadata};
use crate::server::{Reply, State};

/// How often an idle watch with bookmarks enabled gets a BOOKMARK.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);
/// Upstream picks a random timeout in [30, 60) minutes when the client gives none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Encoder {
    info: Arc<ResourceInfo>,
    representation: Representation,
    include: timonel_api::table::IncludeObject,
    sent_columns: bool,
}

impl Encoder {
    fn object(&mut self, state: &State, obj: &Value) -> Value {
        let obj = state.convert_out(&self.info, obj);
        match self.representation {
            Representation::Table => {
                let table = glue::table(&self.info, &[obj], self.include, !self.sent_columns);
                self.sent_columns = true;
                table
            }
            Representation::Metadata => partial_metadata(&obj),
            Representation::Object => obj,
        }
    }

    fn line(&mut self, state: &State, kind: &str, obj: &CachedObject) -> Bytes {
        if self.representation == Representation::Object {
            // Splice the cached bytes: one copy per watcher, no serialization.
            let raw = state.raw_out(&self.info, obj);
            let mut bytes = Vec::with_capacity(raw.len() + 40);
            bytes.extend_from_slice(b"{\"type\":\"");
            bytes.extend_from_slice(kind.as_bytes());
            bytes.extend_from_slice(b"\",\"object\":");
            bytes.extend_from_slice(&raw);
            bytes.extend_from_slice(b"}\n");
            return Bytes::from(bytes);
        }
        let event = json!({"type": kind, "object": self.object(state, &obj.value())});
        let mut bytes = serde_json::to_vec(&event).expect("JSON serializes");
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Bytes {
        let (api_version, kind) = match self.representation {
            Representation::Object => (self.info.api_version(), self.info.kind.clone()),
            _ => (self.info.api_version(), self.info.kind.clone()),
        };
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let event = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}});
        let mut bytes = serde_json::to_vec(&event).expect("JSON serializes");
        bytes.push(b'\n');
        Bytes::from(bytes)
    }
}

fn error_line(err: &ApiError) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({"type": "ERROR", "object": err.to_status()}))
        .expect("JSON serializes");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

pub fn serve(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let info = req.info.clone();
    let query = req.query;
    let filter = Filter::from_query(&info, query)?;
    let prefix = info.list_prefix(req.path.namespace.as_deref());
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.flag("sendInitialEvents");
    let rv = query.get("resourceVersion");
    if send_initial && query.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![timonel_api::status::Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan".into(),
                field: "sendInitialEvents".into(),
            }],
        ));
    }
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let representation = crate::request::negotiate(req.accept);
    let mut encoder = Encoder {
        info: info.clone(),
        representation,
        include: include_object(query),
        sent_columns: false,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    // Initial state: synthetic ADDED events for RV unset/"0", or for sendInitialEvents.
    let (initial, live, start_revision, past): (Vec<CachedObject>, _, i64, Vec<Arc<WatchEvent>>) =
        match rv {
            _ if send_initial => {
                let (objects, live, revision) = state.cache.snapshot_and_subscribe(&prefix);
                (objects, live, revision, Vec::new())
            }
            None | Some("0") => {
                let (objects, live, revision) = state.cache.snapshot_and_subscribe(&prefix);
                (objects, live, revision, Vec::new())
            }
            Some(rv) => {
                let from: i64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv}"))
                })?;
                match state.cache.watch_from(Some(from)) {
                    Ok(WatchStart::Events(past, live, revision)) => {
                        (Vec::new(), live, revision, past)
                    }
                    Err(oldest) => {
                        // Upstream answers 200 and a single ERROR event with 410 inside.
                        let err = ApiError::expired(format!(
                            "too old resource version: {from} ({oldest})"
                        ));
                        let line = error_line(&err);
                        let (tx, rx) = mpsc::channel::<Bytes>(1);
                        let _ = tx.try_send(line);
                        return Ok(Reply::stream(StatusCode::OK, rx));
                    }
                }
            }
        };
    let state = state.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        for obj in initial.iter().filter(|o| filter.matches_cached(o)) {
            if tx.send(encoder.line(&state, "ADDED", obj)).await.is_err() {
                return;
            }
        }
        if send_initial
            && tx
                .send(encoder.bookmark(start_revision, true))
                .await
                .is_err()
        {
            return;
        }
        let mut last_revision = start_revision;
        for event in past {
            if !forward(&state, &mut encoder, &filter, &prefix, &event, &tx).await {
                return;
            }
            last_revision = event.revision;
        }
        let mut live: broadcast::Receiver<Arc<WatchEvent>> = live;
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let revision = state.cache.revision().max(last_revision);
                    if tx.send(encoder.bookmark(revision, false)).await.is_err() {
                        return;
                    }
                }
                event = live.recv() => match event {
                    Ok(event) => {
                        if event.revision <= last_revision {
                            continue;
                        }
                        last_revision = event.revision;
                        if !forward(&state, &mut encoder, &filter, &prefix, &event, &tx).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow a reader: end the watch; the client resumes or relists.
                        let err = ApiError::expired("watch consumer fell behind; resume from the last resourceVersion".to_string());
                        let _ = tx.send(error_line(&err)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    Ok(Reply::stream(StatusCode::OK, rx))
}

/// Sends one store event if it concerns this watch; returns false once the client is gone.
async fn forward(
    state: &State,
    encoder: &mut Encoder,
    filter: &Filter,
    prefix: &str,
    event: &WatchEvent,
    tx: &mpsc::Sender<Bytes>,
) -> bool {
    if !event.key.starts_with(prefix) {
        return true;
    }
    let now = filter.matches_cached(&event.object);
    let before = event
        .prev
        .as_ref()
        .is_some_and(|p| filter.matches_cached(p));
    // Objects entering or leaving a selector appear as ADDED / DELETED, as upstream.
    let kind = match (event.kind, before, now) {
        (EventType::Deleted, _, _) if before || now => "DELETED",
        (EventType::Deleted, _, _) => return true,
        (_, false, true) => "ADDED",
        (EventType::Added, _, true) => "ADDED",
        (_, true, true) => "MODIFIED",
        (_, true, false) => "DELETED",
        _ => return true,
    };
    tx.send(encoder.line(state, kind, &event.object))
        .await
        .is_ok()
}
