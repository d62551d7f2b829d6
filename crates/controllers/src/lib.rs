//! Timonel's controllers in the kube-rs style: each module has a pure decision function
//! (object + related cached objects + `now` → actions as data) and a thin `run` that watches
//! the API server with `kube::runtime` and executes those actions.

use std::time::Duration;

pub mod common;
pub mod deployment;
pub mod disruption;
pub mod gc;
pub mod leader;
pub mod namespace;
pub mod replicaset;
pub mod serviceaccount;

/// Settings shared by every controller.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Reconciles running at once per controller.
    pub concurrency: u16,
    /// Every object is reconciled again after this long even without a change (level-triggered
    /// safety net).
    pub resync_period: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            resync_period: Duration::from_secs(300),
        }
    }
}

/// Runs every controller concurrently; returns when one of them fails or all stop.
pub async fn run_all(client: kube::Client, options: ControllerOptions) -> anyhow::Result<()> {
    tokio::try_join!(
        replicaset::run(client.clone(), options.clone()),
        deployment::run(client.clone(), options.clone()),
        gc::run(client.clone(), options.clone()),
        namespace::run(client.clone(), options.clone()),
        serviceaccount::run(client.clone(), options.clone()),
        disruption::run(client, options),
    )?;
    Ok(())
}
