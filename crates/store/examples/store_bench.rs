//! Create throughput with 64 concurrent tasks, per backend:
//! `cargo run --release -p timonel-store --example store_bench [creates]`

use std::sync::Arc;
use std::time::Instant;

use timonel_store::testing::EtcdServer;
use timonel_store::{EtcdStore, MemoryStore, SqliteStore, Store};

const TASKS: usize = 64;
const VALUE_SIZE: usize = 256;

async fn bench(name: &str, store: Arc<dyn Store>, creates: usize) -> anyhow_free::Result<()> {
    let per_task = creates / TASKS;
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    store
                        .create(&format!("/bench/{task:02}/{i:07}"), vec![b'x'; VALUE_SIZE])
                        .await?;
                }
                Ok::<_, timonel_store::StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let total = per_task * TASKS;
    println!(
        "{name:>7}: {total} creates by {TASKS} tasks in {:.2}s = {:.0} creates/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// The example's own error plumbing (the crate has no anyhow dependency).
mod anyhow_free {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

#[tokio::main]
async fn main() -> anyhow_free::Result<()> {
    let creates: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 20_000,
    };
    bench("memory", Arc::new(MemoryStore::new()), creates).await?;

    let dir = tempfile::tempdir()?;
    let opening = Instant::now();
    let sqlite = SqliteStore::open(&dir.path().join("bench.db"))?;
    println!(
        " sqlite: opening a new database took {:.1} ms",
        opening.elapsed().as_secs_f64() * 1000.0
    );
    bench("sqlite", Arc::new(sqlite), creates).await?;
    let reopening = Instant::now();
    let reopened = SqliteStore::open(&dir.path().join("bench.db"))?;
    println!(
        " sqlite: reopening it took {:.1} ms (revision {})",
        reopening.elapsed().as_secs_f64() * 1000.0,
        reopened.current_revision().await?
    );
    drop(reopened);

    let server = tokio::task::spawn_blocking(EtcdServer::start).await??;
    let etcd = EtcdStore::connect(&[server.endpoint()]).await?;
    bench("etcd", Arc::new(etcd), creates.min(10_000)).await?;
    Ok(())
}
