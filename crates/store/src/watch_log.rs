//! Watch machinery shared by the backends that keep their own history (memory, SQLite).
//!
//! A watcher subscribes to the live broadcast *before* it reads history, so every revision
//! committed after the history read is also in the broadcast; revisions seen twice are
//! dropped by revision number. Every revision is broadcast (for all keys), so a hole in the
//! sequence — or a lagged receiver — is detected and filled by re-reading history.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;

use crate::{Event, Result, Revision, StoreError, WatchStream};

/// The events of one commit, in revision order, for all keys.
pub(crate) type Batch = Arc<Vec<Event>>;

/// How many history events a catching-up watcher reads at once.
const HISTORY_PAGE: usize = 512;

/// Events read from history.
pub(crate) struct HistoryPage {
    /// Events under the prefix with revision in `[from, through]`, in revision order.
    pub events: Vec<Event>,
    /// The highest revision this read covers.
    pub through: Revision,
}

#[async_trait]
pub(crate) trait History: Send + Sync + 'static {
    /// Reads up to `max` events under `prefix` with revision >= `from`. When fewer than
    /// `max` are returned, `through` is the store's revision at the time of the read.
    /// Fails with [`StoreError::Compacted`] when `from` is older than the compaction point.
    async fn read_events(&self, prefix: &str, from: Revision, max: usize) -> Result<HistoryPage>;
}

/// Builds a watch stream that replays history from `from` and then follows `live`.
/// `live` must have been subscribed before the caller determined `from`.
pub(crate) fn watch_stream<H: History>(
    history: Arc<H>,
    live: broadcast::Receiver<Batch>,
    prefix: String,
    from: Revision,
) -> WatchStream {
    let state = WatchState {
        history,
        live,
        prefix,
        next: from,
        pending: VecDeque::new(),
        catching_up: true,
        finished: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next_item().await?;
        Some((item, state))
    })
    .boxed()
}

struct WatchState<H> {
    history: Arc<H>,
    live: broadcast::Receiver<Batch>,
    prefix: String,
    /// The next revision to deliver (or skip, when its key is outside the prefix).
    next: Revision,
    pending: VecDeque<Event>,
    /// True while events must come from history rather than the broadcast.
    catching_up: bool,
    finished: bool,
}

impl<H: History> WatchState<H> {
    async fn next_item(&mut self) -> Option<Result<Event>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.catching_up {
                match self
                    .history
                    .read_events(&self.prefix, self.next, HISTORY_PAGE)
                    .await
                {
                    Ok(page) => {
                        if page.events.len() < HISTORY_PAGE {
                            self.catching_up = false;
                        }
                        self.next = self.next.max(page.through + 1);
                        self.pending.extend(page.events);
                    }
                    Err(err) => {
                        self.finished = true;
                        return Some(Err(err));
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(batch) => self.take_live(&batch),
                // Missed batches are still in history: re-read from there.
                Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                Err(broadcast::error::RecvError::Closed) => {
                    self.finished = true;
                    return Some(Err(StoreError::Backend("the store was closed".into())));
                }
            }
        }
    }

    fn take_live(&mut self, batch: &[Event]) {
        for event in batch {
            let revision = event.revision();
            if revision < self.next {
                continue; // already delivered from history
            }
            if revision > self.next {
                // A hole: fetch the missing revisions (and the rest of this batch) from history.
                self.catching_up = true;
                return;
            }
            self.next = revision + 1;
            if event.key().starts_with(self.prefix.as_str()) {
                self.pending.push_back(event.clone());
            }
        }
    }
}
