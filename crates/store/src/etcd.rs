//! The etcd backend (for HA): every operation maps onto one etcd request, and revisions
//! are etcd's own.

use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use futures::StreamExt;

use crate::{
    Event, KeyValue, RangeResult, Result, Revision, Store, StoreError, WatchStream, prefix_end,
    range_start,
};

/// What etcd says when a revision is below its compaction point.
const COMPACTED_MESSAGE: &str = "required revision has been compacted";

/// etcd's range end for "every key".
const ALL_KEYS_END: &[u8] = b"\0";

/// [`Store`] on an etcd cluster.
pub struct EtcdStore {
    client: Client,
    /// The last compaction point seen (it only moves forward).
    known_compacted: AtomicI64,
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (e.g. `http://127.0.0.1:2379`).
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        let client = Client::connect(endpoints, None).await.map_err(|e| {
            StoreError::Backend(format!("cannot connect to etcd at {endpoints:?}: {e}"))
        })?;
        Ok(EtcdStore {
            client,
            known_compacted: AtomicI64::new(0),
        })
    }

    /// Whether a read at `revision` succeeds (false: it is below the compaction point).
    async fn readable_at(&self, revision: Revision) -> Result<bool> {
        let options = GetOptions::new().with_count_only().with_revision(revision);
        match self.client.kv_client().get("\0", Some(options)).await {
            Ok(_) => Ok(true),
            Err(err) if err.to_string().contains(COMPACTED_MESSAGE) => Ok(false),
            Err(err) => Err(backend(err)),
        }
    }

    /// Maps an etcd error, resolving the compaction point when etcd says "compacted".
    async fn map_error(&self, err: etcd_client::Error, requested: Revision) -> StoreError {
        let message = err.to_string();
        if message.contains(COMPACTED_MESSAGE) {
            let compacted = self
                .compacted_revision()
                .await
                .unwrap_or(requested.saturating_add(1));
            StoreError::Compacted {
                requested,
                compacted,
            }
        } else if message.contains("required revision is a future revision") {
            StoreError::FutureRevision(requested)
        } else {
            StoreError::Backend(format!("etcd: {message}"))
        }
    }
}

fn backend(err: etcd_client::Error) -> StoreError {
    StoreError::Backend(format!("etcd: {err}"))
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd response without header".into()))
}

fn to_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv
            .key_str()
            .map_err(|e| StoreError::Backend(format!("etcd key is not UTF-8: {e}")))?
            .to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// The current value of the key read by a failed transaction's `get`, if any.
fn failed_txn_current(responses: Vec<TxnOpResponse>) -> Option<Revision> {
    responses.into_iter().find_map(|response| match response {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
        _ => None,
    })
}

/// Converts one etcd watch event.
fn to_event(event: &etcd_client::Event) -> Result<Event> {
    let kv = event
        .kv()
        .ok_or_else(|| StoreError::Backend("etcd watch event without kv".into()))?;
    let prev = event.prev_kv().map(to_kv).transpose()?;
    Ok(match event.event_type() {
        EventType::Put => Event::Put {
            kv: to_kv(kv)?,
            prev,
        },
        EventType::Delete => {
            let revision = kv.mod_revision();
            // etcd omits prev_kv when it was compacted away; keep the key at least.
            let prev = match prev {
                Some(prev) => prev,
                None => KeyValue {
                    key: to_kv(kv)?.key,
                    value: Vec::new(),
                    create_revision: 0,
                    mod_revision: 0,
                },
            };
            Event::Delete { prev, revision }
        }
    })
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        // A count-only read of one key is the cheapest request that returns a header.
        let response = self
            .client
            .kv_client()
            .get("\0", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(backend)?;
        header_revision(response.header())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(backend)?;
        response.kvs().first().map(to_kv).transpose()
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
        limit: usize,
    ) -> Result<RangeResult> {
        let mut start = range_start(prefix, start_after);
        if start.is_empty() {
            // etcd rejects an empty key; "\0" is the smallest non-empty one.
            start = ALL_KEYS_END.to_vec();
        }
        let end = prefix_end(prefix.as_bytes());
        if let Some(end) = &end
            && start >= *end
        {
            // start_after is past the prefix: nothing left, but still a consistent answer.
            let at = if revision == 0 {
                self.current_revision().await?
            } else {
                revision
            };
            return Ok(RangeResult {
                kvs: Vec::new(),
                revision: at,
                more: false,
            });
        }
        let mut options = GetOptions::new()
            .with_range(end.unwrap_or_else(|| ALL_KEYS_END.to_vec()))
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let response = match self.client.kv_client().get(start, Some(options)).await {
            Ok(response) => response,
            Err(err) => return Err(self.map_error(err, revision).await),
        };
        let kvs = response
            .kvs()
            .iter()
            .map(to_kv)
            .collect::<Result<Vec<_>>>()?;
        let at = if revision == 0 {
            header_revision(response.header())?
        } else {
            revision
        };
        Ok(RangeResult {
            kvs,
            revision: at,
            more: response.more(),
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let response = self.client.kv_client().txn(txn).await.map_err(backend)?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        header_revision(response.header())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        // `version > 0` keeps an update with expected = 0 from creating the key.
        let txn = Txn::new()
            .when([
                Compare::version(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self.client.kv_client().txn(txn).await.map_err(backend)?;
        if response.succeeded() {
            return header_revision(response.header());
        }
        Err(match failed_txn_current(response.op_responses()) {
            Some(current) => StoreError::Conflict {
                key: key.to_string(),
                current,
            },
            None => StoreError::NotFound(key.to_string()),
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let mut compares = vec![Compare::version(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.client.kv_client().txn(txn).await.map_err(backend)?;
        if !response.succeeded() {
            return Err(match failed_txn_current(response.op_responses()) {
                Some(current) => StoreError::Conflict {
                    key: key.to_string(),
                    current,
                },
                None => StoreError::NotFound(key.to_string()),
            });
        }
        let revision = header_revision(response.header())?;
        let prev = response
            .op_responses()
            .into_iter()
            .find_map(|response| match response {
                TxnOpResponse::Delete(delete) => delete.prev_kvs().first().map(to_kv),
                _ => None,
            })
            .transpose()?
            .ok_or_else(|| StoreError::Backend("etcd delete returned no previous value".into()))?;
        Ok((revision, prev))
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        let end = prefix_end(prefix.as_bytes()).unwrap_or_else(|| ALL_KEYS_END.to_vec());
        let key = if prefix.is_empty() {
            ALL_KEYS_END.to_vec()
        } else {
            prefix.as_bytes().to_vec()
        };
        let mut options = WatchOptions::new().with_range(end).with_prev_key();
        if from > 0 {
            // etcd reports a compacted start only asynchronously on the stream; check first
            // so the caller gets the error from `watch` itself.
            let probe = GetOptions::new().with_count_only().with_revision(from);
            if let Err(err) = self.client.kv_client().get(key.clone(), Some(probe)).await {
                match self.map_error(err, from).await {
                    // Watching from a future revision is allowed: it waits.
                    StoreError::FutureRevision(_) => {}
                    other => return Err(other),
                }
            }
            options = options.with_start_revision(from);
        }
        let stream = self
            .client
            .watch_client()
            .watch(key, Some(options))
            .await
            .map_err(backend)?;
        let (sender, responses) = stream.split();
        let mut state = WatchState {
            _sender: sender,
            responses,
            pending: std::collections::VecDeque::new(),
            finished: false,
            requested: from,
        };
        // Until etcd confirms the watcher, writes are not guaranteed to reach it; "from now"
        // must mean after `watch` returned.
        state.wait_until_created().await?;
        Ok(futures::stream::unfold(state, |mut state| async move {
            let item = state.next_item().await?;
            Some((item, state))
        })
        .boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.client.kv_client().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(err) => match self.map_error(err, revision).await {
                // Compacting to an already compacted revision is a no-op, as in the others.
                StoreError::Compacted { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        // etcd has no request that returns the compaction point, but a read at a revision
        // below it fails: binary-search for the oldest readable revision. The point only
        // moves forward, so the last answer bounds the search.
        let known = self.known_compacted.load(Ordering::SeqCst).max(1);
        if self.readable_at(known).await? {
            return Ok(if known == 1 { 0 } else { known });
        }
        let (mut unreadable, mut readable) = (known, self.current_revision().await?);
        while readable - unreadable > 1 {
            let middle = unreadable + (readable - unreadable) / 2;
            if self.readable_at(middle).await? {
                readable = middle;
            } else {
                unreadable = middle;
            }
        }
        self.known_compacted.fetch_max(readable, Ordering::SeqCst);
        Ok(readable)
    }
}

struct WatchState {
    /// Dropping the sender would end the watch on etcd's side.
    _sender: etcd_client::WatchRequestSender,
    responses: etcd_client::WatchResponseStream,
    pending: std::collections::VecDeque<Event>,
    finished: bool,
    requested: Revision,
}

impl WatchState {
    async fn wait_until_created(&mut self) -> Result<()> {
        loop {
            let response = self
                .responses
                .message()
                .await
                .map_err(backend)?
                .ok_or_else(|| StoreError::Backend("etcd closed the watch".into()))?;
            self.check_response(&response)?;
            if response.created() {
                return Ok(());
            }
        }
    }

    /// Fails on a canceled or compacted watch; queues the response's events.
    fn check_response(&mut self, response: &etcd_client::WatchResponse) -> Result<()> {
        if response.compact_revision() > 0 {
            return Err(StoreError::Compacted {
                requested: self.requested,
                compacted: response.compact_revision(),
            });
        }
        if response.canceled() {
            return Err(StoreError::Backend(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason()
            )));
        }
        for event in response.events() {
            self.pending.push_back(to_event(event)?);
        }
        Ok(())
    }

    async fn next_item(&mut self) -> Option<Result<Event>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            let response = match self.responses.message().await {
                Ok(Some(response)) => response,
                Ok(None) => {
                    self.finished = true;
                    return Some(Err(StoreError::Backend("etcd closed the watch".into())));
                }
                Err(err) => {
                    self.finished = true;
                    return Some(Err(backend(err)));
                }
            };
            if let Err(err) = self.check_response(&response) {
                self.finished = true;
                return Some(Err(err));
            }
        }
    }
}
