//! The conformance suite every backend must pass; `tests/conformance.rs` runs each check
//! against memory, SQLite and etcd. Each check expects a fresh, empty store and panics
//! (like `assert!`) when the backend misbehaves.
//!
//! Revisions are compared relative to the store's starting revision: etcd starts at 1,
//! the embedded backends at 0.

use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;

use crate::{Event, KeyValue, Revision, Store, StoreError, WatchStream};

/// Guards against a hanging watch; not a performance bound.
const WATCH_TIMEOUT: Duration = Duration::from_secs(20);

/// The next event of `watch`, failing the check if the stream errs, ends or stalls.
pub async fn next_event(watch: &mut WatchStream) -> Event {
    match tokio::time::timeout(WATCH_TIMEOUT, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("watch failed: {err}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {WATCH_TIMEOUT:?}"),
    }
}

/// The next `count` events of `watch`.
pub async fn next_events(watch: &mut WatchStream, count: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        events.push(next_event(watch).await);
    }
    events
}

fn put_key_value(event: &Event) -> (&str, &[u8], Option<&KeyValue>) {
    match event {
        Event::Put { kv, prev } => (&kv.key, &kv.value, prev.as_ref()),
        Event::Delete { .. } => panic!("expected a put, got {event:?}"),
    }
}

/// Every write bumps the revision by exactly one; failed writes bump nothing.
pub async fn revisions_increment(store: &dyn Store) {
    let start = store.current_revision().await.unwrap();
    let r1 = store.create("/rev/a", b"1".to_vec()).await.unwrap();
    assert_eq!(r1, start + 1);
    let r2 = store.create("/rev/b", b"2".to_vec()).await.unwrap();
    assert_eq!(r2, r1 + 1);
    let r3 = store.update("/rev/a", b"3".to_vec(), r1).await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert!(store.create("/rev/a", b"x".to_vec()).await.is_err());
    assert!(store.update("/rev/a", b"x".to_vec(), r1).await.is_err());
    let (r4, _) = store.delete("/rev/b", None).await.unwrap();
    assert_eq!(r4, r3 + 1);
    assert_eq!(store.current_revision().await.unwrap(), r4);

    let kv = store.get("/rev/a").await.unwrap().expect("/rev/a exists");
    assert_eq!(kv.value, b"3");
    assert_eq!(kv.create_revision, r1);
    assert_eq!(kv.mod_revision, r3);
    assert_eq!(store.get("/rev/b").await.unwrap(), None);
}

/// `create` fails with AlreadyExists when the key exists and leaves it untouched.
pub async fn create_if_absent(store: &dyn Store) {
    let rev = store.create("/c/k", b"one".to_vec()).await.unwrap();
    let err = store.create("/c/k", b"two".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists(k) if k == "/c/k"),
        "{err:?}"
    );
    let kv = store.get("/c/k").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (b"one".as_slice(), rev)
    );
}

/// `update` checks the mod_revision; a conflict reports the current one.
pub async fn update_conflicts(store: &dyn Store) {
    let created = store.create("/u/k", b"v1".to_vec()).await.unwrap();
    let updated = store.update("/u/k", b"v2".to_vec(), created).await.unwrap();
    match store.update("/u/k", b"v3".to_vec(), created).await {
        Err(StoreError::Conflict { key, current }) => {
            assert_eq!(key, "/u/k");
            assert_eq!(current, updated);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = store
        .update("/u/missing", b"v".to_vec(), created)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    // expected = 0 must not create a missing key.
    let err = store
        .update("/u/missing", b"v".to_vec(), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.get("/u/missing").await.unwrap(), None);

    let kv = store.get("/u/k").await.unwrap().unwrap();
    assert_eq!(kv.value, b"v2");
    assert_eq!(kv.create_revision, created, "update keeps create_revision");
    assert_eq!(kv.mod_revision, updated);
}

/// `delete` checks the mod_revision when given and returns the last value.
pub async fn delete_conflicts(store: &dyn Store) {
    let created = store.create("/d/k", b"v1".to_vec()).await.unwrap();
    let updated = store.update("/d/k", b"v2".to_vec(), created).await.unwrap();
    match store.delete("/d/k", Some(created)).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current, updated),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store.get("/d/k").await.unwrap().is_some());
    let (deleted, prev) = store.delete("/d/k", Some(updated)).await.unwrap();
    assert_eq!(deleted, updated + 1);
    assert_eq!(
        prev,
        KeyValue {
            key: "/d/k".into(),
            value: b"v2".to_vec(),
            create_revision: created,
            mod_revision: updated,
        }
    );
    assert_eq!(store.get("/d/k").await.unwrap(), None);
    let err = store.delete("/d/k", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    // Unconditional delete.
    store.create("/d/other", b"x".to_vec()).await.unwrap();
    store.delete("/d/other", None).await.unwrap();
    assert_eq!(store.get("/d/other").await.unwrap(), None);
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

/// Prefix, limit and start_after (pagination) select the right keys in key order.
pub async fn range_prefix_limit_start_after(store: &dyn Store) {
    for key in ["/r/b", "/r/a", "/r/c", "/r/d", "/rx", "/q/a", "/r0"] {
        store.create(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let current = store.current_revision().await.unwrap();

    let all = store.range("/r/", None, 0, 0).await.unwrap();
    assert_eq!(keys(&all.kvs), ["/r/a", "/r/b", "/r/c", "/r/d"]);
    assert!(!all.more);
    assert_eq!(all.revision, current);
    assert_eq!(all.kvs[0].value, b"/r/a");

    let page1 = store.range("/r/", None, 0, 2).await.unwrap();
    assert_eq!(keys(&page1.kvs), ["/r/a", "/r/b"]);
    assert!(page1.more);
    let page2 = store.range("/r/", Some("/r/b"), 0, 2).await.unwrap();
    assert_eq!(keys(&page2.kvs), ["/r/c", "/r/d"]);
    // A page ending exactly at the last key may or may not say "more"; the next is empty.
    let page3 = store.range("/r/", Some("/r/d"), 0, 2).await.unwrap();
    assert!(page3.kvs.is_empty());
    assert!(!page3.more);

    let limit_exact = store.range("/r/", None, 0, 4).await.unwrap();
    assert_eq!(limit_exact.kvs.len(), 4);
    assert!(!limit_exact.more);

    // Deleted keys disappear from ranges.
    store.delete("/r/b", None).await.unwrap();
    let after_delete = store.range("/r/", None, 0, 0).await.unwrap();
    assert_eq!(keys(&after_delete.kvs), ["/r/a", "/r/c", "/r/d"]);

    let everything = store.range("", None, 0, 0).await.unwrap();
    assert_eq!(
        keys(&everything.kvs),
        ["/q/a", "/r/a", "/r/c", "/r/d", "/r0", "/rx"]
    );
    let empty = store.range("/none/", None, 0, 0).await.unwrap();
    assert!(empty.kvs.is_empty());
}

/// A range at an old revision sees the state of that revision; a future one fails.
pub async fn range_at_old_revision(store: &dyn Store) {
    let r1 = store.create("/old/a", b"a1".to_vec()).await.unwrap();
    let r2 = store.create("/old/b", b"b1".to_vec()).await.unwrap();
    let r3 = store.update("/old/a", b"a2".to_vec(), r1).await.unwrap();
    let (r4, _) = store.delete("/old/b", None).await.unwrap();
    store.create("/old/c", b"c1".to_vec()).await.unwrap();

    let at_r1 = store.range("/old/", None, r1, 0).await.unwrap();
    assert_eq!(at_r1.revision, r1);
    assert_eq!(keys(&at_r1.kvs), ["/old/a"]);
    assert_eq!(at_r1.kvs[0].value, b"a1");

    let at_r2 = store.range("/old/", None, r2, 0).await.unwrap();
    assert_eq!(keys(&at_r2.kvs), ["/old/a", "/old/b"]);

    let at_r3 = store.range("/old/", None, r3, 0).await.unwrap();
    assert_eq!(at_r3.kvs[0].value, b"a2");
    assert_eq!(at_r3.kvs[0].mod_revision, r3);
    assert_eq!(at_r3.kvs[0].create_revision, r1);

    let at_r4 = store.range("/old/", None, r4, 0).await.unwrap();
    assert_eq!(keys(&at_r4.kvs), ["/old/a"]);

    let paged = store.range("/old/", Some("/old/a"), r2, 1).await.unwrap();
    assert_eq!(keys(&paged.kvs), ["/old/b"]);

    let current = store.current_revision().await.unwrap();
    let err = store
        .range("/old/", None, current + 10, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision(_)), "{err:?}");
}

/// A watch from a past revision replays puts and deletes (with prev values) in order,
/// only under its prefix, and then continues live.
pub async fn watch_from_past_revision(store: &dyn Store) {
    let r1 = store.create("/w/a", b"a1".to_vec()).await.unwrap();
    store.create("/other/x", b"x".to_vec()).await.unwrap();
    let r3 = store.update("/w/a", b"a2".to_vec(), r1).await.unwrap();
    let r4 = store.create("/w/b", b"b1".to_vec()).await.unwrap();
    let (r5, _) = store.delete("/w/a", None).await.unwrap();

    let mut watch = store.watch("/w/", r1).await.unwrap();
    let replayed = next_events(&mut watch, 4).await;
    assert_eq!(
        replayed,
        vec![
            Event::Put {
                kv: KeyValue {
                    key: "/w/a".into(),
                    value: b"a1".to_vec(),
                    create_revision: r1,
                    mod_revision: r1
                },
                prev: None,
            },
            Event::Put {
                kv: KeyValue {
                    key: "/w/a".into(),
                    value: b"a2".to_vec(),
                    create_revision: r1,
                    mod_revision: r3
                },
                prev: Some(KeyValue {
                    key: "/w/a".into(),
                    value: b"a1".to_vec(),
                    create_revision: r1,
                    mod_revision: r1
                }),
            },
            Event::Put {
                kv: KeyValue {
                    key: "/w/b".into(),
                    value: b"b1".to_vec(),
                    create_revision: r4,
                    mod_revision: r4
                },
                prev: None,
            },
            Event::Delete {
                prev: KeyValue {
                    key: "/w/a".into(),
                    value: b"a2".to_vec(),
                    create_revision: r1,
                    mod_revision: r3
                },
                revision: r5,
            },
        ]
    );

    // Live after replay: the next write under the prefix arrives, others do not.
    store.create("/other/y", b"y".to_vec()).await.unwrap();
    let r7 = store.create("/w/c", b"c1".to_vec()).await.unwrap();
    let live = next_event(&mut watch).await;
    assert_eq!(live.revision(), r7);
    assert_eq!(live.key(), "/w/c");

    // Starting in the middle of history skips what came before.
    let mut from_r4 = store.watch("/w/", r4).await.unwrap();
    let events = next_events(&mut from_r4, 3).await;
    let revisions: Vec<Revision> = events.iter().map(Event::revision).collect();
    assert_eq!(revisions, [r4, r5, r7]);
}

/// A watch from 0 delivers only changes made after it started.
pub async fn watch_from_zero_is_live(store: &dyn Store) {
    store.create("/live/before", b"0".to_vec()).await.unwrap();
    let mut watch = store.watch("/live/", 0).await.unwrap();
    let r = store.create("/live/after", b"1".to_vec()).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!(event.key(), "/live/after");
    assert_eq!(event.revision(), r);
    let (_, value, prev) = put_key_value(&event);
    assert_eq!(value, b"1");
    assert_eq!(prev, None);
    let r2 = store
        .update("/live/before", b"2".to_vec(), r - 1)
        .await
        .unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!(event.revision(), r2);
    let (_, _, prev) = put_key_value(&event);
    assert_eq!(prev.map(|p| p.value.as_slice()), Some(b"0".as_slice()));
}

/// Many concurrent writers: watchers (one from the start, one live) see every revision
/// exactly once, in order, without gaps.
pub async fn watch_concurrent_writers(store: &dyn Store) {
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 25;
    let start = store.current_revision().await.unwrap();
    let mut from_start = store.watch("/cw/", start + 1).await.unwrap();
    let mut live = store.watch("/cw/", 0).await.unwrap();

    let writers = (0..WRITERS).map(|writer| async move {
        for i in 0..PER_WRITER {
            let key = format!("/cw/{writer:02}/{i:03}");
            let rev = store.create(&key, vec![b'x'; 64]).await.unwrap();
            if i % 5 == 0 {
                store.update(&key, b"updated".to_vec(), rev).await.unwrap();
            }
        }
    });
    join_all(writers).await;

    let total = WRITERS * PER_WRITER + WRITERS * PER_WRITER.div_ceil(5);
    let end = store.current_revision().await.unwrap();
    assert_eq!(end - start, total as Revision);
    // A watcher that starts after the writes replays them all from history.
    let mut replay = store.watch("/cw/", start + 1).await.unwrap();
    for watch in [&mut from_start, &mut live, &mut replay] {
        let events = next_events(watch, total).await;
        for (offset, event) in events.iter().enumerate() {
            assert_eq!(event.revision(), start + 1 + offset as Revision);
        }
    }
}

/// Compaction drops old history: reads and watches below it fail with Compacted; the
/// latest values (and the state at the compaction point) survive.
pub async fn compaction(store: &dyn Store) {
    let a1 = store.create("/cmp/a", b"a1".to_vec()).await.unwrap();
    let a2 = store.update("/cmp/a", b"a2".to_vec(), a1).await.unwrap();
    let b1 = store.create("/cmp/b", b"b1".to_vec()).await.unwrap();
    store.delete("/cmp/b", None).await.unwrap();
    let c1 = store.create("/cmp/c", b"c1".to_vec()).await.unwrap();
    let a3 = store.update("/cmp/a", b"a3".to_vec(), a2).await.unwrap();

    store.compact(c1).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), c1);

    match store.range("/cmp/", None, b1, 0).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!(requested, b1);
            assert_eq!(compacted, c1);
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    match store.watch("/cmp/", a2).await {
        Err(StoreError::Compacted { .. }) => {}
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(mut watch) => match watch.next().await {
            Some(Err(StoreError::Compacted { .. })) => {}
            other => panic!("expected Compacted, got {other:?}"),
        },
    }

    // The state at the compaction point is still readable.
    let at_c1 = store.range("/cmp/", None, c1, 0).await.unwrap();
    assert_eq!(keys(&at_c1.kvs), ["/cmp/a", "/cmp/c"]);
    assert_eq!(at_c1.kvs[0].value, b"a2");
    let latest = store.range("/cmp/", None, 0, 0).await.unwrap();
    assert_eq!(keys(&latest.kvs), ["/cmp/a", "/cmp/c"]);
    assert_eq!(latest.kvs[0].value, b"a3");
    assert_eq!(latest.kvs[0].create_revision, a1);
    assert_eq!(store.get("/cmp/a").await.unwrap().unwrap().mod_revision, a3);

    // Watching from the compaction point works and carries prev values.
    let mut watch = store.watch("/cmp/", c1).await.unwrap();
    let events = next_events(&mut watch, 2).await;
    assert_eq!(events[0].revision(), c1);
    assert_eq!(events[1].revision(), a3);
    let (_, _, prev) = put_key_value(&events[1]);
    assert_eq!(prev.map(|p| p.value.as_slice()), Some(b"a2".as_slice()));

    // Compacting again to an older point is a no-op; writes continue normally.
    store.compact(a1).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), c1);
    let next = store.update("/cmp/a", b"a4".to_vec(), a3).await.unwrap();
    assert_eq!(next, a3 + 1);
    let current = store.current_revision().await.unwrap();
    let err = store.compact(current + 5).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision(_)), "{err:?}");
}

/// Deleting and re-creating a key starts a new life: new create_revision, no prev.
pub async fn delete_then_recreate(store: &dyn Store) {
    let first = store.create("/re/k", b"1".to_vec()).await.unwrap();
    let (deleted, _) = store.delete("/re/k", None).await.unwrap();
    let second = store.create("/re/k", b"2".to_vec()).await.unwrap();
    assert!(second > deleted && deleted > first);
    let kv = store.get("/re/k").await.unwrap().unwrap();
    assert_eq!(kv.create_revision, second);
    assert_eq!(kv.mod_revision, second);

    let mut watch = store.watch("/re/", first).await.unwrap();
    let events = next_events(&mut watch, 3).await;
    assert!(matches!(&events[1], Event::Delete { revision, .. } if *revision == deleted));
    match &events[2] {
        Event::Put { kv, prev } => {
            assert_eq!(kv.create_revision, second);
            assert_eq!(prev, &None, "a re-create has no previous value");
        }
        other => panic!("expected a put, got {other:?}"),
    }
}

/// Concurrent creates of one key: exactly one wins, the others see AlreadyExists.
pub async fn concurrent_creates_one_key(store: &dyn Store) {
    const CONTENDERS: usize = 32;
    let attempts = (0..CONTENDERS).map(|i| store.create("/race/k", format!("{i}").into_bytes()));
    let results = join_all(attempts).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, result)| result.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "results: {results:?}");
    for result in &results {
        if let Err(err) = result {
            assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
        }
    }
    let kv = store.get("/race/k").await.unwrap().unwrap();
    assert_eq!(kv.value, winners[0].to_string().into_bytes());

    // Conditional updates racing on one revision: exactly one wins too.
    let base = kv.mod_revision;
    let attempts = (0..CONTENDERS).map(|i| store.update("/race/k", vec![i as u8], base));
    let results = join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().all(|r| match r {
        Ok(_) => true,
        Err(StoreError::Conflict { current, .. }) => *current > base,
        Err(_) => false,
    }));
}

/// A named check, for running the whole suite.
pub type Check = for<'a> fn(&'a dyn Store) -> futures::future::BoxFuture<'a, ()>;

/// Every backend-independent check, by name.
pub fn all_checks() -> Vec<(&'static str, Check)> {
    use futures::FutureExt;
    vec![
        ("revisions_increment", |s| revisions_increment(s).boxed()),
        ("create_if_absent", |s| create_if_absent(s).boxed()),
        ("update_conflicts", |s| update_conflicts(s).boxed()),
        ("delete_conflicts", |s| delete_conflicts(s).boxed()),
        ("range_prefix_limit_start_after", |s| {
            range_prefix_limit_start_after(s).boxed()
        }),
        ("range_at_old_revision", |s| {
            range_at_old_revision(s).boxed()
        }),
        ("watch_from_past_revision", |s| {
            watch_from_past_revision(s).boxed()
        }),
        ("watch_from_zero_is_live", |s| {
            watch_from_zero_is_live(s).boxed()
        }),
        ("watch_concurrent_writers", |s| {
            watch_concurrent_writers(s).boxed()
        }),
        ("compaction", |s| compaction(s).boxed()),
        ("delete_then_recreate", |s| delete_then_recreate(s).boxed()),
        ("concurrent_creates_one_key", |s| {
            concurrent_creates_one_key(s).boxed()
        }),
    ]
}
