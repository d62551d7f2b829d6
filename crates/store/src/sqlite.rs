//! The embedded SQLite backend.
//!
//! Layout (kine-like): one row per revision in `kv`; a delete writes a tombstone row that
//! carries the deleted value. The latest state of a key is its newest row.
//!
//! Writes go to one writer thread that commits everything pending in one transaction
//! (group commit: one fsync for many writes) and then publishes the events. Reads run on a
//! small pool of separate connections through `spawn_blocking`; WAL mode lets them read a
//! consistent snapshot while the writer commits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use tokio::sync::{Semaphore, broadcast, oneshot};

use crate::watch_log::{self, Batch, History, HistoryPage};
use crate::{
    Event, KeyValue, RangeResult, Result, Revision, Store, StoreError, WatchStream, prefix_end,
    range_start,
};

/// At most this many requests share one transaction; bounds commit latency.
const MAX_BATCH: usize = 1024;

/// One transaction, so creating a new database costs one fsync, not one per statement.
const SCHEMA: &str = "
BEGIN;
CREATE TABLE IF NOT EXISTS kv (
    revision INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_key_revision ON kv (key, revision);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
COMMIT;
";

/// Tuning knobs; [`SqliteStore::open`] uses the defaults.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Read-only connections for `get`, `range` and watch replay.
    pub read_connections: usize,
    /// Live commit batches buffered per watcher; a watcher that falls further behind
    /// re-reads the missed events from the database.
    pub watch_buffer: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            read_connections: 3,
            watch_buffer: 256,
        }
    }
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    writer: Option<mpsc::Sender<WriteRequest>>,
    writer_thread: Option<JoinHandle<()>>,
    readers: Arc<ReadPool>,
    shared: Arc<Shared>,
    events: broadcast::Sender<Batch>,
}

/// State the writer publishes to everyone else.
struct Shared {
    current: AtomicI64,
    compacted: AtomicI64,
}

enum WriteRequest {
    Create {
        key: String,
        value: Vec<u8>,
        reply: oneshot::Sender<Result<Revision>>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
        reply: oneshot::Sender<Result<Revision>>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
        reply: oneshot::Sender<Result<(Revision, KeyValue)>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// SQLite messages may quote multi-line SQL; error messages here stay on one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns an error from opening or initialising the database into a one-line message.
fn open_error(path: &Path, err: rusqlite::Error) -> StoreError {
    let corrupt = matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    );
    if corrupt {
        StoreError::Backend(format!(
            "database {} is corrupt or not a SQLite file: {}",
            path.display(),
            one_line(&err.to_string())
        ))
    } else {
        StoreError::Backend(format!(
            "cannot open database {}: {}",
            path.display(),
            one_line(&err.to_string())
        ))
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        Self::open_with(path, SqliteOptions::default())
    }

    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore> {
        if path.is_dir() {
            return Err(StoreError::Backend(format!(
                "cannot open database {}: it is a directory",
                path.display()
            )));
        }
        let writer_conn = open_connection(path).map_err(|e| open_error(path, e))?;
        // auto_vacuum only takes effect on a database without tables, so set it first;
        // it lets compaction hand freed pages back to the OS.
        writer_conn
            .execute_batch(
                "PRAGMA auto_vacuum = INCREMENTAL;
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;",
            )
            .map_err(|e| open_error(path, e))?;
        // A SQLite file from something else would otherwise fail on every later query.
        let foreign = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => open_error(path, e),
            _ => StoreError::Backend(format!(
                "database {} is not a timonel store (unexpected schema): {}",
                path.display(),
                one_line(&e.to_string())
            )),
        };
        writer_conn.execute_batch(SCHEMA).map_err(foreign)?;
        writer_conn
            .prepare("SELECT revision, key, value, create_revision, prev_revision, deleted FROM kv")
            .map_err(foreign)?;
        let (current, compacted) = read_revisions(&writer_conn).map_err(|e| open_error(path, e))?;

        let mut readers = Vec::new();
        for _ in 0..options.read_connections.max(1) {
            let conn = open_connection(path).map_err(|e| open_error(path, e))?;
            conn.execute_batch("PRAGMA query_only = ON;")
                .map_err(|e| open_error(path, e))?;
            readers.push(conn);
        }
        let readers = Arc::new(ReadPool {
            permits: Semaphore::new(readers.len()),
            connections: Mutex::new(readers),
        });
        let shared = Arc::new(Shared {
            current: AtomicI64::new(current),
            compacted: AtomicI64::new(compacted),
        });
        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        let (writer, requests) = mpsc::channel();
        let mut writer_state = Writer {
            conn: writer_conn,
            current,
            compacted,
            shared: shared.clone(),
            events: events.clone(),
        };
        let writer_thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_state.run(requests))
            .map_err(|e| backend(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            readers,
            shared,
            events,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, request: WriteRequest) -> Result<()> {
        self.writer
            .as_ref()
            .and_then(|writer| writer.send(request).ok())
            .ok_or_else(|| backend("the SQLite writer thread has stopped"))
    }
}

async fn await_reply<T>(reply: oneshot::Receiver<Result<T>>) -> Result<T> {
    reply
        .await
        .map_err(|_| backend("the SQLite writer thread has stopped"))?
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel stops the writer after its current batch; joining makes sure
        // the database is closed when drop returns (so it can be reopened at once).
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_revisions(conn: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    let current = conn.query_row("SELECT COALESCE(MAX(revision), 0) FROM kv", [], |r| {
        r.get(0)
    })?;
    let compacted = conn
        .query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0);
    Ok((current, compacted))
}

/// The newest row of a key.
struct Latest {
    revision: Revision,
    create_revision: Revision,
    value: Vec<u8>,
    deleted: bool,
}

fn latest_row(conn: &Connection, key: &str) -> rusqlite::Result<Option<Latest>> {
    conn.prepare_cached(
        "SELECT revision, create_revision, value, deleted FROM kv
         WHERE key = ?1 ORDER BY revision DESC LIMIT 1",
    )?
    .query_row([key.as_bytes()], |r| {
        Ok(Latest {
            revision: r.get(0)?,
            create_revision: r.get(1)?,
            value: r.get(2)?,
            deleted: r.get(3)?,
        })
    })
    .optional()
}

struct Writer {
    conn: Connection,
    /// Revision of the last committed write.
    current: Revision,
    compacted: Revision,
    shared: Arc<Shared>,
    events: broadcast::Sender<Batch>,
}

/// A reply to send once the batch is committed (or failed).
enum Outcome {
    Revision(oneshot::Sender<Result<Revision>>, Result<Revision>),
    Deleted(
        oneshot::Sender<Result<(Revision, KeyValue)>>,
        Result<(Revision, KeyValue)>,
    ),
    Compacted(oneshot::Sender<Result<()>>, Result<()>),
}

impl Outcome {
    fn send(self, batch_error: Option<&StoreError>) {
        // A failed commit fails every request of the batch, including those whose own
        // check failed: nothing of the batch happened. Dropped receivers are fine.
        let fail = |e: &StoreError| StoreError::Backend(e.to_string());
        match self {
            Outcome::Revision(tx, r) => {
                let _ = tx.send(batch_error.map_or(r, |e| Err(fail(e))));
            }
            Outcome::Deleted(tx, r) => {
                let _ = tx.send(batch_error.map_or(r, |e| Err(fail(e))));
            }
            Outcome::Compacted(tx, r) => {
                let _ = tx.send(batch_error.map_or(r, |e| Err(fail(e))));
            }
        }
    }
}

impl Writer {
    fn run(&mut self, requests: mpsc::Receiver<WriteRequest>) {
        while let Ok(first) = requests.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<WriteRequest>) {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut compacted_to = None;
        let result = self.apply_batch(batch, &mut outcomes, &mut events, &mut compacted_to);
        match result {
            Ok(()) => {
                let last = events.last().map(Event::revision);
                if let Some(last) = last {
                    self.current = last;
                    self.shared.current.store(last, Ordering::SeqCst);
                }
                if let Some(revision) = compacted_to {
                    self.compacted = revision;
                    self.shared.compacted.store(revision, Ordering::SeqCst);
                }
                // Publish before answering so a writer that then watches from its own
                // revision finds it either in the database or in the broadcast.
                if !events.is_empty() {
                    let _ = self.events.send(Arc::new(events));
                }
                // Compaction is acknowledged once the space is back with the OS.
                if compacted_to.is_some() {
                    self.release_free_pages();
                }
                for outcome in outcomes {
                    outcome.send(None);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "SQLite write batch failed");
                let err = backend(format!("write failed: {err}"));
                for outcome in outcomes {
                    outcome.send(Some(&err));
                }
            }
        }
    }

    /// Runs the batch in one transaction. Requests are answered by the caller after commit.
    fn apply_batch(
        &mut self,
        batch: Vec<WriteRequest>,
        outcomes: &mut Vec<Outcome>,
        events: &mut Vec<Event>,
        compacted_to: &mut Option<Revision>,
    ) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate);
        let tx = match tx {
            Ok(tx) => tx,
            Err(err) => {
                // Keep the requests answerable by the caller.
                for request in batch {
                    outcomes.push(unapplied(request));
                }
                return Err(err);
            }
        };
        let mut next = self.current + 1;
        let mut compacted = self.compacted;
        let mut failure = None;
        for request in batch {
            if failure.is_some() {
                outcomes.push(unapplied(request));
                continue;
            }
            let (outcome, error) = apply_one(&tx, request, &mut next, &mut compacted, events);
            outcomes.push(outcome);
            failure = error;
        }
        if let Some(err) = failure {
            // Dropping `tx` rolls back.
            return Err(err);
        }
        tx.commit()?;
        if compacted != self.compacted {
            *compacted_to = Some(compacted);
        }
        Ok(())
    }

    /// Returns pages freed by compaction to the OS and trims the WAL.
    fn release_free_pages(&self) {
        let vacuum = || -> rusqlite::Result<()> {
            // The pragma frees pages one step at a time: step it to completion.
            let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        };
        let result = vacuum().and_then(|()| {
            // TRUNCATE may find readers in the way; the next checkpoint finishes the job.
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        });
        if let Err(err) = result {
            tracing::warn!(error = %err, "SQLite vacuum after compaction failed");
        }
    }
}

/// The answer for a request that never ran because its batch failed.
fn unapplied(request: WriteRequest) -> Outcome {
    fn aborted<T>() -> Result<T> {
        Err(backend("write batch aborted"))
    }
    match request {
        WriteRequest::Create { reply, .. } | WriteRequest::Update { reply, .. } => {
            Outcome::Revision(reply, aborted())
        }
        WriteRequest::Delete { reply, .. } => Outcome::Deleted(reply, aborted()),
        WriteRequest::Compact { reply, .. } => Outcome::Compacted(reply, aborted()),
    }
}

fn insert_row(
    conn: &Connection,
    revision: Revision,
    key: &str,
    value: &[u8],
    create_revision: Revision,
    prev_revision: Revision,
    deleted: bool,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO kv (revision, key, value, create_revision, prev_revision, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        revision,
        key.as_bytes(),
        value,
        create_revision,
        prev_revision,
        deleted
    ])
}

/// Checks one request's condition against the transaction's state (which includes earlier
/// writes of the same batch) and writes its row. The error, when present, is a database
/// failure that aborts the whole batch.
fn apply_one(
    conn: &Connection,
    request: WriteRequest,
    next: &mut Revision,
    compacted: &mut Revision,
    events: &mut Vec<Event>,
) -> (Outcome, Option<rusqlite::Error>) {
    match request {
        WriteRequest::Create { key, value, reply } => {
            let mut run = || -> rusqlite::Result<Result<Revision>> {
                let latest = latest_row(conn, &key)?;
                if latest.as_ref().is_some_and(|l| !l.deleted) {
                    return Ok(Err(StoreError::AlreadyExists(key.clone())));
                }
                let revision = *next;
                let prev_revision = latest.map_or(0, |l| l.revision);
                insert_row(conn, revision, &key, &value, revision, prev_revision, false)?;
                *next += 1;
                events.push(Event::Put {
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: revision,
                        mod_revision: revision,
                    },
                    prev: None,
                });
                Ok(Ok(revision))
            };
            match run() {
                Ok(result) => (Outcome::Revision(reply, result), None),
                Err(err) => (Outcome::Revision(reply, Err(backend(&err))), Some(err)),
            }
        }
        WriteRequest::Update {
            key,
            value,
            expected,
            reply,
        } => {
            let mut run = || -> rusqlite::Result<Result<Revision>> {
                let Some(latest) = latest_row(conn, &key)?.filter(|l| !l.deleted) else {
                    return Ok(Err(StoreError::NotFound(key.clone())));
                };
                if latest.revision != expected {
                    return Ok(Err(StoreError::Conflict {
                        key: key.clone(),
                        current: latest.revision,
                    }));
                }
                let revision = *next;
                insert_row(
                    conn,
                    revision,
                    &key,
                    &value,
                    latest.create_revision,
                    latest.revision,
                    false,
                )?;
                *next += 1;
                events.push(Event::Put {
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: latest.create_revision,
                        mod_revision: revision,
                    },
                    prev: Some(KeyValue {
                        key: key.clone(),
                        value: latest.value,
                        create_revision: latest.create_revision,
                        mod_revision: latest.revision,
                    }),
                });
                Ok(Ok(revision))
            };
            match run() {
                Ok(result) => (Outcome::Revision(reply, result), None),
                Err(err) => (Outcome::Revision(reply, Err(backend(&err))), Some(err)),
            }
        }
        WriteRequest::Delete {
            key,
            expected,
            reply,
        } => {
            let mut run = || -> rusqlite::Result<Result<(Revision, KeyValue)>> {
                let Some(latest) = latest_row(conn, &key)?.filter(|l| !l.deleted) else {
                    return Ok(Err(StoreError::NotFound(key.clone())));
                };
                if expected.is_some_and(|expected| expected != latest.revision) {
                    return Ok(Err(StoreError::Conflict {
                        key: key.clone(),
                        current: latest.revision,
                    }));
                }
                let revision = *next;
                // The tombstone keeps the deleted value so the delete event is self-contained.
                insert_row(
                    conn,
                    revision,
                    &key,
                    &latest.value,
                    latest.create_revision,
                    latest.revision,
                    true,
                )?;
                *next += 1;
                let prev = KeyValue {
                    key: key.clone(),
                    value: latest.value,
                    create_revision: latest.create_revision,
                    mod_revision: latest.revision,
                };
                events.push(Event::Delete {
                    prev: prev.clone(),
                    revision,
                });
                Ok(Ok((revision, prev)))
            };
            match run() {
                Ok(result) => (Outcome::Deleted(reply, result), None),
                Err(err) => (Outcome::Deleted(reply, Err(backend(&err))), Some(err)),
            }
        }
        WriteRequest::Compact { revision, reply } => {
            let current = *next - 1;
            let mut run = || -> rusqlite::Result<Result<()>> {
                if revision > current {
                    return Ok(Err(StoreError::FutureRevision(revision)));
                }
                if revision <= *compacted {
                    return Ok(Ok(()));
                }
                // Drop rows older than `revision` except the newest one of each key that is
                // not a tombstone: a read at `revision` needs it, and so does the `prev` of
                // the key's next event.
                conn.prepare_cached(
                    "DELETE FROM kv WHERE revision < ?1 AND (deleted = 1 OR revision <
                       (SELECT MAX(newer.revision) FROM kv AS newer
                        WHERE newer.key = kv.key AND newer.revision < ?1))",
                )?
                .execute([revision])?;
                conn.prepare_cached(
                    "INSERT INTO meta (name, value) VALUES ('compacted', ?1)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )?
                .execute([revision])?;
                *compacted = revision;
                Ok(Ok(()))
            };
            match run() {
                Ok(result) => (Outcome::Compacted(reply, result), None),
                Err(err) => (Outcome::Compacted(reply, Err(backend(&err))), Some(err)),
            }
        }
    }
}

/// Read-only connections, used one at a time from blocking threads.
struct ReadPool {
    permits: Semaphore,
    connections: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// Runs `f` on a pooled connection inside one read transaction (one snapshot).
    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| backend("the read pool is closed"))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool
                .connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop()
                .ok_or_else(|| backend("no free read connection"))?;
            let result = (|| {
                let tx = conn.transaction().map_err(backend)?;
                let value = f(&tx)?;
                tx.finish().map_err(backend)?;
                Ok(value)
            })();
            pool.connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(|e| backend(format!("read task failed: {e}")))?
    }
}

fn key_string(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| backend(format!("stored key is not UTF-8: {e}")))
}

/// Reads the current and compacted revisions within the caller's snapshot and checks
/// that `revision` is readable.
fn check_readable(conn: &Connection, revision: Revision) -> Result<Revision> {
    let (current, compacted) = read_revisions(conn).map_err(backend)?;
    let at = if revision == 0 { current } else { revision };
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compacted,
        });
    }
    if at > current {
        return Err(StoreError::FutureRevision(at));
    }
    Ok(at)
}

fn range_blocking(
    conn: &Connection,
    prefix: &str,
    start_after: Option<&str>,
    revision: Revision,
    limit: usize,
) -> Result<RangeResult> {
    let at = check_readable(conn, revision)?;
    let start = range_start(prefix, start_after);
    let end = prefix_end(prefix.as_bytes());
    // The newest row per key at `at` (SQLite takes the bare columns from the MAX row),
    // then drop keys whose newest row is a tombstone.
    let sql = format!(
        "SELECT key, value, create_revision, revision FROM (
             SELECT key, value, create_revision, deleted, MAX(revision) AS revision FROM kv
             WHERE key >= ?1 {} AND revision <= ?2 GROUP BY key
         ) WHERE deleted = 0 ORDER BY key LIMIT ?3",
        if end.is_some() { "AND key < ?4" } else { "" }
    );
    // One extra row tells whether the limit cut the result short.
    let fetch: i64 = if limit == 0 {
        -1
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let map = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    };
    let rows = match &end {
        Some(end) => stmt.query_map(params![start, at, fetch, end], map),
        None => stmt.query_map(params![start, at, fetch], map),
    }
    .map_err(backend)?;
    let mut kvs = Vec::new();
    let mut more = false;
    for row in rows {
        let (key, value, create_revision, mod_revision) = row.map_err(backend)?;
        if limit > 0 && kvs.len() == limit {
            more = true;
            break;
        }
        kvs.push(KeyValue {
            key: key_string(key)?,
            value,
            create_revision,
            mod_revision,
        });
    }
    Ok(RangeResult {
        kvs,
        revision: at,
        more,
    })
}

fn events_blocking(
    conn: &Connection,
    prefix: &str,
    from: Revision,
    max: usize,
) -> Result<HistoryPage> {
    let (current, compacted) = read_revisions(conn).map_err(backend)?;
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let end = prefix_end(prefix.as_bytes());
    let sql = format!(
        "SELECT row.revision, row.key, row.value, row.create_revision, row.prev_revision,
                row.deleted, prev.value, prev.create_revision
         FROM kv AS row
         LEFT JOIN kv AS prev ON prev.revision = row.prev_revision AND prev.deleted = 0
         WHERE row.revision >= ?1 AND row.key >= ?2 {}
         ORDER BY row.revision LIMIT ?3",
        if end.is_some() {
            "AND row.key < ?4"
        } else {
            ""
        }
    );
    let max_rows = i64::try_from(max).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let map = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, bool>(5)?,
            r.get::<_, Option<Vec<u8>>>(6)?,
            r.get::<_, Option<i64>>(7)?,
        ))
    };
    let prefix_bytes = prefix.as_bytes();
    let rows = match &end {
        Some(end) => stmt.query_map(params![from, prefix_bytes, max_rows, end], map),
        None => stmt.query_map(params![from, prefix_bytes, max_rows], map),
    }
    .map_err(backend)?;
    let mut events = Vec::new();
    for row in rows {
        let (
            revision,
            key,
            value,
            create_revision,
            prev_revision,
            deleted,
            prev_value,
            prev_create,
        ) = row.map_err(backend)?;
        let key = key_string(key)?;
        events.push(if deleted {
            Event::Delete {
                prev: KeyValue {
                    key,
                    value,
                    create_revision,
                    mod_revision: prev_revision,
                },
                revision,
            }
        } else {
            let prev = match (prev_value, prev_create) {
                (Some(value), Some(create_revision)) => Some(KeyValue {
                    key: key.clone(),
                    value,
                    create_revision,
                    mod_revision: prev_revision,
                }),
                _ => None,
            };
            Event::Put {
                kv: KeyValue {
                    key,
                    value,
                    create_revision,
                    mod_revision: revision,
                },
                prev,
            }
        });
    }
    let through = if events.len() == max {
        events.last().map_or(current, Event::revision)
    } else {
        current
    };
    Ok(HistoryPage { events, through })
}

/// Watch replay from the database.
struct DbHistory {
    readers: Arc<ReadPool>,
}

#[async_trait]
impl History for DbHistory {
    async fn read_events(&self, prefix: &str, from: Revision, max: usize) -> Result<HistoryPage> {
        let prefix = prefix.to_string();
        self.readers
            .read(move |conn| events_blocking(conn, &prefix, from, max))
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.current.load(Ordering::SeqCst))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.readers
            .read(move |conn| {
                let latest = latest_row(conn, &key).map_err(backend)?;
                Ok(latest.filter(|l| !l.deleted).map(|l| KeyValue {
                    key,
                    value: l.value,
                    create_revision: l.create_revision,
                    mod_revision: l.revision,
                }))
            })
            .await
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
        limit: usize,
    ) -> Result<RangeResult> {
        let prefix = prefix.to_string();
        let start_after = start_after.map(str::to_string);
        self.readers
            .read(move |conn| {
                range_blocking(conn, &prefix, start_after.as_deref(), revision, limit)
            })
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let (reply, answer) = oneshot::channel();
        self.send(WriteRequest::Create {
            key: key.to_string(),
            value,
            reply,
        })?;
        await_reply(answer).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let (reply, answer) = oneshot::channel();
        self.send(WriteRequest::Update {
            key: key.to_string(),
            value,
            expected,
            reply,
        })?;
        await_reply(answer).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let (reply, answer) = oneshot::channel();
        self.send(WriteRequest::Delete {
            key: key.to_string(),
            expected,
            reply,
        })?;
        await_reply(answer).await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        // Subscribe before reading the current revision: every later commit is broadcast
        // after this point, and replay covers everything before it.
        let live = self.events.subscribe();
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if from != 0 && from < compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted,
            });
        }
        let from = if from == 0 {
            self.shared.current.load(Ordering::SeqCst) + 1
        } else {
            from
        };
        let history = Arc::new(DbHistory {
            readers: self.readers.clone(),
        });
        Ok(watch_log::watch_stream(
            history,
            live,
            prefix.to_string(),
            from,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(WriteRequest::Compact { revision, reply })?;
        await_reply(answer).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::SeqCst))
    }
}
