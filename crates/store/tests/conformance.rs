//! Runs the shared conformance checks against every backend, plus SQLite-only checks
//! (durability across reopen and kill -9, corrupt files, file shrinking, lagging watchers).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use timonel_store::conformance::{self, next_events};
use timonel_store::sqlite::SqliteOptions;
use timonel_store::testing::EtcdServer;
use timonel_store::{EtcdStore, MemoryStore, SqliteStore, Store, StoreError};

async fn with_memory(check: impl AsyncFnOnce(&dyn Store)) {
    let store = MemoryStore::new();
    check(&store).await;
}

async fn with_sqlite(check: impl AsyncFnOnce(&dyn Store)) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    check(&store).await;
}

async fn with_etcd(check: impl AsyncFnOnce(&dyn Store)) {
    // A server per test: compaction is cluster-wide and checks count revisions.
    let server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .unwrap_or_else(|err| panic!("{err}"));
    let store = EtcdStore::connect(&[server.endpoint()]).await.unwrap();
    check(&store).await;
    drop(store);
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::with_memory(timonel_store::conformance::$check).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::with_sqlite(timonel_store::conformance::$check).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::with_etcd(timonel_store::conformance::$check).await;
                }
            )*
        }
    };
}

conformance!(
    revisions_increment,
    create_if_absent,
    update_conflicts,
    delete_conflicts,
    range_prefix_limit_start_after,
    range_at_old_revision,
    watch_from_past_revision,
    watch_from_zero_is_live,
    watch_concurrent_writers,
    compaction,
    delete_then_recreate,
    concurrent_creates_one_key,
);

#[test]
fn every_check_is_run_for_every_backend() {
    // The macro above lists checks by hand; keep it in step with the suite.
    let source = include_str!("conformance.rs");
    for (name, _) in conformance::all_checks() {
        assert!(
            source.contains(&format!("    {name},\n")),
            "conformance check {name} is not run by tests/conformance.rs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (last, compacted) = {
        let store = SqliteStore::open(&path).unwrap();
        let a = store.create("/k/a", b"a".to_vec()).await.unwrap();
        store.create("/k/b", b"b".to_vec()).await.unwrap();
        let a2 = store.update("/k/a", b"a2".to_vec(), a).await.unwrap();
        store.compact(a2).await.unwrap();
        let (last, _) = store.delete("/k/b", None).await.unwrap();
        (last, a2)
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), last);
    assert_eq!(store.compacted_revision().await.unwrap(), compacted);
    let kv = store.get("/k/a").await.unwrap().unwrap();
    assert_eq!(kv.value, b"a2");
    assert_eq!(store.get("/k/b").await.unwrap(), None);
    assert_eq!(store.create("/k/c", Vec::new()).await.unwrap(), last + 1);
    // History from the compaction point on survives too.
    let mut watch = store.watch("/k/", compacted).await.unwrap();
    let revisions: Vec<_> = next_events(&mut watch, 3)
        .await
        .iter()
        .map(|e| e.revision())
        .collect();
    assert_eq!(revisions, [compacted, last, last + 1]);
}

fn assert_clear_open_error(path: &Path, expected: &str) {
    let err = SqliteStore::open(path).err().expect("open must fail");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(message.contains(expected), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
}

#[test]
fn sqlite_corrupt_file_gives_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(
        &path,
        b"this is not a database, just some text long enough".repeat(100),
    )
    .unwrap();
    assert_clear_open_error(&path, "is corrupt or not a SQLite file");
}

#[test]
fn sqlite_foreign_database_gives_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("CREATE TABLE kv (name TEXT, data BLOB);")
        .unwrap();
    drop(other);
    assert_clear_open_error(&path, "is not a timonel store");
}

#[test]
fn sqlite_unopenable_path_gives_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_clear_open_error(
        &dir.path().join("missing/dir/state.db"),
        "cannot open database",
    );
    assert_clear_open_error(dir.path(), "cannot open database");
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_compaction_shrinks_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    let value = vec![7u8; 4096];
    let mut revision = store.create("/big/k", value.clone()).await.unwrap();
    for _ in 0..500 {
        revision = store
            .update("/big/k", value.clone(), revision)
            .await
            .unwrap();
    }
    // Move WAL contents into the main file so sizes compare like for like.
    store.compact(1).await.unwrap();
    let before = file_size(&path);
    assert!(before > 500 * 4096, "history should take space: {before}");
    store.compact(revision).await.unwrap();
    let after = file_size(&path);
    assert!(
        after < before / 10,
        "compaction should return pages to the OS: {before} -> {after}"
    );
    let kv = store.get("/big/k").await.unwrap().unwrap();
    assert_eq!((kv.value, kv.mod_revision), (value, revision));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lagging_watcher_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        watch_buffer: 2,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&dir.path().join("state.db"), options).unwrap();
    let mut watch = store.watch("/lag/", 0).await.unwrap();
    let first = store.create("/lag/000", Vec::new()).await.unwrap();
    // Reading one event moves the watcher from history replay to the live broadcast.
    next_events(&mut watch, 1).await;
    // The watcher is not polled while 199 commits overflow its 2-batch buffer.
    for i in 1..200 {
        store
            .create(&format!("/lag/{i:03}"), Vec::new())
            .await
            .unwrap();
    }
    let events = next_events(&mut watch, 199).await;
    for (offset, event) in events.iter().enumerate() {
        assert_eq!(event.revision(), first + 1 + offset as i64);
        assert_eq!(event.key(), format!("/lag/{:03}", offset + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_compactor_task_compacts() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for i in 0..10 {
        store.create(&format!("/t/{i}"), Vec::new()).await.unwrap();
    }
    let compacted = timonel_store::compact_once(store.as_ref(), 3)
        .await
        .unwrap();
    assert_eq!(compacted, Some(7));
    assert_eq!(store.compacted_revision().await.unwrap(), 7);
    // Nothing new to compact.
    assert_eq!(
        timonel_store::compact_once(store.as_ref(), 3)
            .await
            .unwrap(),
        None
    );

    let task =
        timonel_store::spawn_compactor(store.clone(), std::time::Duration::from_millis(10), 0);
    let mut watch = store.watch("/t/", 0).await.unwrap();
    store.create("/t/last", Vec::new()).await.unwrap();
    next_events(&mut watch, 1).await;
    let caught_up = async {
        while store.compacted_revision().await.unwrap() < 11 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    // A hang guard, not a performance bound.
    tokio::time::timeout(std::time::Duration::from_secs(20), caught_up)
        .await
        .expect("the compactor task never compacted");
    task.abort();
}

/// Env var that turns `kill9_writer_child` into the writer process of the kill -9 test.
const KILL9_DB_ENV: &str = "TIMONEL_STORE_KILL9_DB";

/// Writes until killed, printing every acknowledged write. Only meaningful as the child
/// of `sqlite_survives_kill_9`, hence ignored in normal runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of sqlite_survives_kill_9"]
async fn kill9_writer_child() {
    let Some(path) = std::env::var_os(KILL9_DB_ENV) else {
        return;
    };
    let store = Arc::new(SqliteStore::open(Path::new(&path)).unwrap());
    let writers = (0..16).map(|writer| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/kill/{writer:02}/{i:06}");
                let revision = store.create(&key, key.as_bytes().to_vec()).await.unwrap();
                // println! locks stdout per line, so lines never interleave.
                println!("ACK {key} {revision}");
            }
        })
    });
    futures::future::join_all(writers).await;
}

#[test]
fn sqlite_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["kill9_writer_child", "--exact", "--ignored", "--nocapture"])
        .env(KILL9_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = Vec::new();
    while acked.len() < 2000 {
        let line = lines.next().expect("writer ended early").unwrap();
        if let Some(ack) = line.strip_prefix("ACK ") {
            acked.push(ack.to_string());
        }
    }
    child.kill().unwrap(); // SIGKILL
    // Acks printed before the kill landed are acknowledged writes too.
    for line in lines {
        if let Some(ack) = line.unwrap().strip_prefix("ACK ") {
            acked.push(ack.to_string());
        }
    }
    child.wait().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        let mut max_revision = 0;
        for ack in &acked {
            let (key, revision) = ack.split_once(' ').unwrap();
            let revision: i64 = revision.parse().unwrap();
            let kv = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("lost {key}"));
            assert_eq!(kv.mod_revision, revision);
            max_revision = max_revision.max(revision);
        }
        let current = store.current_revision().await.unwrap();
        assert!(current >= max_revision);
        assert_eq!(
            store.create("/after", Vec::new()).await.unwrap(),
            current + 1
        );
    });
}
