//! Timonel's node agent (the kubelet): joins the cluster, registers its Node and keeps its
//! Lease, and drives every pod bound to the node to its spec with the native runtime.

pub mod backend;
pub mod containers;
pub mod env;
pub mod events;
pub mod grpc_probe;
pub mod join;
pub mod node;
pub mod pods;
pub mod probes;
pub mod stats;
pub mod status;
pub mod sync;
pub mod volumes;

/// The Kubernetes version the agent speaks, reported as the kubelet version.
pub const KUBELET_VERSION: &str = "v1.35.0-timonel";

pub mod reset;
pub mod sandbox;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::watcher;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The API server, `https://host:port`.
    pub server: String,
    /// The join token (`DATA_DIR/server/node-token` of the server).
    pub token: String,
    pub node_name: String,
    pub data_dir: PathBuf,
    pub node_ip: String,
    pub kubelet_port: u16,
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub cluster_dns: String,
    pub cluster_domain: String,
    /// The bridge pods attach to.
    pub bridge: String,
    /// Where pods' namespace files are bound.
    pub netns_dir: PathBuf,
    /// The `timonel` binary, re-executed as container shims.
    pub shim_exe: PathBuf,
    /// DiskPressure below this percent of the data dir's filesystem available (0: never).
    pub disk_pressure_below_percent: u8,
}

impl AgentConfig {
    pub fn new(server: &str, token: &str, node_name: &str, data_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            server: server.to_string(),
            token: token.to_string(),
            node_name: node_name.to_string(),
            data_dir,
            node_ip: "127.0.0.1".into(),
            kubelet_port: 10250,
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: "10.43.0.0/16".into(),
            cluster_dns: "10.43.0.10".into(),
            cluster_domain: "cluster.local".into(),
            bridge: "timonel0".into(),
            netns_dir: PathBuf::from("/run/timonel/netns"),
            shim_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("timonel")),
            disk_pressure_below_percent: 10,
        }
    }
}

/// Where an agent using `bridge` binds its pods' namespace files: one directory per bridge, so
/// several agents on one host (tests, a local multi-node cluster) never touch each other's.
pub fn netns_dir_for(bridge: &str) -> PathBuf {
    if bridge == "timonel0" {
        PathBuf::from("/run/timonel/netns")
    } else {
        PathBuf::from(format!("/run/timonel/netns-{bridge}"))
    }
}

/// Fails loudly, with the fix, when the host cannot run containers.
pub fn check_prerequisites() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!(
            "the node agent must run as root (it creates namespaces, cgroups and mounts): run it with sudo"
        );
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.contains("overlay") {
        bail!("the kernel has no overlayfs: load it with `modprobe overlay`");
    }
    if !std::path::Path::new("/sys/fs/cgroup").exists() {
        bail!(
            "no cgroup filesystem at /sys/fs/cgroup: mount cgroup2 there (`mount -t cgroup2 none /sys/fs/cgroup`)"
        );
    }
    Ok(())
}

async fn node_pod_cidr(client: &kube::Client, name: &str) -> Option<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    for _ in 0..30 {
        if let Ok(node) = nodes.get(name).await
            && let Some(cidr) = node.spec.and_then(|s| s.pod_cidr)
        {
            return Some(cidr);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Runs the node agent until the process ends.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    check_prerequisites()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let addresses = vec![config.node_ip.clone(), config.node_name.clone()];
    let credentials = join::credentials(
        &config.data_dir,
        &config.server,
        &config.token,
        &config.node_name,
        &addresses,
    )
    .await?;
    let client = join::node_client(&config.server, &credentials)?;
    let mut facts = node::NodeFacts::gather(
        &config.node_name,
        &config.node_ip,
        config.kubelet_port,
        &config.data_dir,
    );
    facts.disk_pressure_below_percent = u64::from(config.disk_pressure_below_percent);
    // The API server may be starting or busy: keep trying, as kubelet does.
    let mut attempt = 0u32;
    let registered = loop {
        match node::register(&client, &facts).await {
            Ok(node) => break node,
            Err(e) if attempt < 30 => {
                attempt += 1;
                tracing::warn!("registering the Node (attempt {attempt}): {e:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.context("registering the Node")),
        }
    };
    let node_uid = registered.metadata.uid.clone().unwrap_or_default();
    tokio::spawn(heartbeat(client.clone(), facts.clone(), node_uid));

    let pod_cidr = node_pod_cidr(&client, &config.node_name)
        .await
        .unwrap_or_else(|| "10.42.0.0/24".into());
    let net_config = timonel_net::NetConfig {
        bridge: config.bridge.clone(),
        pod_cidr: pod_cidr
            .parse()
            .with_context(|| format!("pod CIDR {pod_cidr}"))?,
        blackhole_cidrs: vec![
            config.cluster_cidr.parse().context("the cluster CIDR")?,
            config.service_cidr.parse().context("the service CIDR")?,
        ],
        state_dir: config.data_dir.join("net"),
        netns_dir: config.netns_dir.clone(),
        mtu: 1500,
    };
    let network = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let network = timonel_net::PodNetwork::linux(net_config)?;
        network.ensure_host()?;
        Ok(network)
    })
    .await??;
    let images = Arc::new(timonel_runtime::image::ImageStore::open(&config.data_dir)?);
    for (path, result) in images.import_dropped_archives()? {
        match result {
            Ok(records) => tracing::info!(
                "imported {} image(s) from {}",
                records.len(),
                path.display()
            ),
            Err(e) => tracing::warn!("importing {}: {e}", path.display()),
        }
    }
    let registries =
        timonel_runtime::image::RegistriesConfig::load(&config.data_dir.join("registries.yaml"))?;
    let runtime = Arc::new(timonel_runtime::native::NativeRuntime::new(
        config.data_dir.join("containers"),
        &config.shim_exe,
    )?);
    runtime.sweep_incomplete()?;
    let sandboxes = Arc::new(sandbox::NetSandboxes { network });
    let agent = pods::Agent::new(
        client.clone(),
        facts,
        runtime,
        images,
        registries,
        sandboxes,
        config.data_dir.clone(),
        pods::Dns {
            nameserver: config.cluster_dns.clone(),
            domain: config.cluster_domain.clone(),
        },
    );
    tokio::spawn(image_gc(Arc::clone(&agent)));
    tokio::spawn(sweep_local_volumes(
        client.clone(),
        PathBuf::from(&agent.facts.storage_dir),
    ));
    server::start(&agent, &credentials, config.kubelet_port).await?;
    watch_pods(agent, &config.node_name).await
}

mod server {
    //! The kubelet's HTTPS API on the node's address: logs, exec, port-forward, for the API
    //! server's proxy (which presents the cluster's kubelet client certificate).
    use std::sync::Arc;

    use anyhow::Context as _;

    pub async fn start(
        agent: &Arc<crate::pods::Agent>,
        credentials: &crate::join::NodeCredentials,
        port: u16,
    ) -> anyhow::Result<()> {
        let tls = timonel_streaming::kubelet_tls_config(
            &credentials.serving_certificate,
            &credentials.serving_key,
            &credentials.client_ca,
        )?;
        let address = format!("{}:{port}", agent.facts.ip);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("listening on {address} for the kubelet API (is another agent running? choose --kubelet-port)"))?;
        let backend = Arc::new(crate::backend::AgentBackend {
            agent: Arc::clone(agent),
            cpu_samples: Default::default(),
        });
        tokio::spawn(timonel_streaming::serve(listener, tls, backend));
        Ok(())
    }
}

/// kubelet's image GC every 5 minutes: above 85 % disk use, unused images go, least recently
/// used first, down to 80 %; images of any container on the node (running or not) stay.
async fn image_gc(agent: Arc<pods::Agent>) {
    loop {
        tokio::time::sleep(Duration::from_secs(300)).await;
        let agent = Arc::clone(&agent);
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
            let in_use: HashSet<timonel_runtime::image::Digest> = agent
                .runtime
                .list()?
                .into_iter()
                .filter_map(|c| timonel_runtime::image::Digest::parse(&c.meta.image_id).ok())
                .collect();
            let now = chrono::Utc::now().timestamp().max(0) as u64;
            let removed = agent.images.garbage_collect(
                &timonel_runtime::image::GcPolicy::default(),
                &in_use,
                now,
            )?;
            Ok(removed.len())
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!("image GC removed {n} image(s)"),
            Ok(Err(e)) => tracing::warn!("image GC: {e:#}"),
            Err(e) => tracing::warn!("image GC: {e}"),
        }
    }
}

/// Removes the directories of local-path volumes deleted after their claim went (reclaim
/// policy Delete), as local-path-provisioner's cleanup does. The directories are read before
/// the volumes are listed: a directory exists only once its volume does, so a volume made
/// meanwhile cannot lose its directory.
async fn sweep_local_volumes(client: kube::Client, storage_dir: PathBuf) {
    use k8s_openapi::api::core::v1::PersistentVolume;
    let volumes: kube::Api<PersistentVolume> = kube::Api::all(client);
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let dirs = crate::volumes::local_path_dirs(&storage_dir);
        if dirs.is_empty() {
            continue;
        }
        let existing: HashSet<String> = match volumes.list_metadata(&Default::default()).await {
            Ok(list) => list
                .items
                .into_iter()
                .filter_map(|v| v.metadata.name)
                .collect(),
            Err(e) => {
                tracing::warn!("listing persistent volumes: {e}");
                continue;
            }
        };
        for (volume, path) in dirs {
            if !existing.contains(&volume) {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => tracing::info!("removed the directory of deleted volume {volume}"),
                    Err(e) => tracing::warn!("removing {}: {e}", path.display()),
                }
            }
        }
    }
}

async fn heartbeat(client: kube::Client, facts: node::NodeFacts, node_uid: String) {
    let mut last_status = tokio::time::Instant::now();
    loop {
        if let Err(e) = node::renew_lease(&client, &facts.name, &node_uid).await {
            tracing::warn!("renewing the node lease: {e:#}");
        }
        tokio::time::sleep(node::LEASE_RENEW_INTERVAL).await;
        if last_status.elapsed() >= node::STATUS_REPORT_INTERVAL {
            last_status = tokio::time::Instant::now();
            let nodes: Api<Node> = Api::all(client.clone());
            let previous = nodes.get_opt(&facts.name).await.ok().flatten();
            let result = if previous.is_none() {
                node::register(&client, &facts).await.map(|_| ())
            } else {
                node::post_status(&client, &facts, previous.as_ref())
                    .await
                    .map(|_| ())
            };
            if let Err(e) = result {
                tracing::warn!("posting the node status: {e:#}");
            }
        }
    }
}

async fn watch_pods(agent: Arc<pods::Agent>, node_name: &str) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let mut stream = watcher(api, config).boxed();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    listed.insert(uid.clone());
                    agent.dispatch(&uid, Some(Arc::new(pod)));
                }
            }
            Ok(watcher::Event::InitDone) => {
                // Pods deleted while the agent was away: stop and remove what is left.
                let mut orphans: HashSet<String> = agent
                    .runtime
                    .list()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.meta.pod_uid)
                    .collect();
                orphans.extend(agent.sandboxes.known());
                for uid in orphans {
                    if !listed.contains(&uid) && !agent.known_uids().contains(&uid) {
                        agent.dispatch(&uid, None);
                    }
                }
            }
            Ok(watcher::Event::Apply(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    agent.dispatch(&uid, Some(Arc::new(pod)));
                }
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    agent.dispatch(&uid, None);
                }
            }
            Err(e) => {
                tracing::warn!("watching pods: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    bail!("the pod watch ended")
}
