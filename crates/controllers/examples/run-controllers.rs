//! Runs every controller against a cluster: `run-controllers KUBECONFIG`. For manual end-to-end
//! checks until the server binary embeds the controllers.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube's rustls needs a process-wide crypto provider; ring is the workspace's choice.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = std::env::args()
        .nth(1)
        .context("usage: run-controllers KUBECONFIG")?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    timonel_controllers::run_all(client, timonel_controllers::ControllerOptions::default()).await
}
