//! `timonel`: the one binary — control plane, (later) node agent, and benchmarks.

mod bench;
mod bench_pods;
mod image_cmd;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "timonel",
    version,
    about = "A Kubernetes-compatible orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server over a durable store).
    Server(ServerArgs),
    /// Run the scheduler alone against any compatible API server.
    Scheduler(ClientArgs),
    /// Run the controllers alone against any compatible API server.
    ControllerManager(ControllerManagerArgs),
    /// Register simulated nodes that run pods on paper (for scale tests, like KWOK).
    SimNodes(SimArgs),
    /// Measure performance and print the figures.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Run the node agent: join a cluster and run its pods as containers on this machine.
    Agent(AgentArgs),
    /// Remove everything the node agent left on this host: containers, mounts, cgroups,
    /// namespaces, the bridge and routes (and its data with --remove-data).
    Reset(ResetArgs),
    /// Internal: the per-container shim the agent starts (not for direct use).
    #[command(hide = true)]
    ContainerShim { dir: PathBuf, id: String },
    /// Internal: the init of a pod's shared PID namespace (not for direct use).
    #[command(hide = true)]
    PodPause,
    /// Internal: runs a command inside a container with this process's stdio.
    #[command(hide = true)]
    ContainerExec {
        dir: PathBuf,
        id: String,
        #[arg(long)]
        tty: bool,
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Manage the node agent's images: import archives, list, remove.
    Image {
        #[command(subcommand)]
        what: image_cmd::ImageCommand,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where certificates, credentials and the embedded database live.
    #[arg(long, default_value = "/var/lib/timonel")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// HTTPS port of the API.
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// Write an admin kubeconfig here (mode 0600).
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// Empty: SQLite in the data dir. `http://host:2379[,…]`: an etcd cluster.
    #[arg(long, default_value = "")]
    datastore_endpoint: String,
    /// Do not run the node agent inside the server.
    #[arg(long)]
    disable_agent: bool,
    #[command(flatten)]
    node: NodeFlags,
    /// Do not run the scheduler inside the server.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run the controllers inside the server.
    #[arg(long)]
    disable_controller_manager: bool,
    #[command(flatten)]
    controllers: ControllerFlags,
    /// Seconds a pod tolerates the node.kubernetes.io/not-ready:NoExecute taint unless it
    /// says otherwise (DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// Seconds a pod tolerates the node.kubernetes.io/unreachable:NoExecute taint unless it
    /// says otherwise (DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// Run the scheduler and the controllers only while holding their Leases
    /// (kube-system/kube-scheduler, kube-system/kube-controller-manager), as upstream.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    leader_elect: bool,
}

/// The node agent's identity and addresses.
#[derive(clap::Args, Clone)]
struct NodeFlags {
    /// The Node's name (default: this machine's hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The address the node reports and serves its kubelet API on.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: String,
    /// HTTPS port of the node's kubelet API (logs, exec, attach, port-forward).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// The bridge pods attach to.
    #[arg(long, default_value = "timonel0")]
    bridge: String,
    /// DiskPressure when the data dir's filesystem has less than this percent available
    /// (kubelet's default hard eviction signal, nodefs.available<10%); 0 turns it off.
    #[arg(long, default_value_t = 10)]
    disk_pressure_below_percent: u8,
}

impl NodeFlags {
    fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .to_ascii_lowercase()
        })
    }

    fn agent_config(
        &self,
        server: &str,
        token: &str,
        data_dir: PathBuf,
    ) -> timonel_agent::AgentConfig {
        let mut config =
            timonel_agent::AgentConfig::new(server, token, &self.node_name(), data_dir);
        config.node_ip = self.node_ip.clone();
        config.kubelet_port = self.kubelet_port;
        config.bridge = self.bridge.clone();
        config.disk_pressure_below_percent = self.disk_pressure_below_percent;
        config.netns_dir = timonel_agent::netns_dir_for(&self.bridge);
        config
    }
}

#[derive(clap::Args)]
struct AgentArgs {
    /// The API server, e.g. https://127.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token: the server's DATA_DIR/server/node-token.
    #[arg(long, env = "TIMONEL_TOKEN")]
    token: String,
    /// Where credentials, images, containers and logs live.
    #[arg(long, default_value = "/var/lib/timonel/agent")]
    data_dir: PathBuf,
    /// The cluster's pod range (the server's --cluster-cidr): blackholed on this host.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    #[command(flatten)]
    node: NodeFlags,
}

#[derive(clap::Args)]
struct ResetArgs {
    /// The agent's data dir (DATA_DIR/agent for an agent inside `timonel server`).
    #[arg(long, default_value = "/var/lib/timonel/agent")]
    data_dir: PathBuf,
    /// The bridge pods attach to.
    #[arg(long, default_value = "timonel0")]
    bridge: String,
    /// The cluster's pod range the agent blackholed (its --cluster-cidr).
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Also delete the data dir (images, credentials, logs).
    #[arg(long)]
    remove_data: bool,
}

#[derive(clap::Args)]
struct ControllerManagerArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    controllers: ControllerFlags,
}

/// Flags of the controllers, with kube-controller-manager's names and defaults.
#[derive(clap::Args)]
struct ControllerFlags {
    /// How long a node may stay silent (no Lease renewal, no status) before it is marked
    /// unhealthy: a Go duration such as 40s.
    #[arg(long, default_value = "40s", value_parser = timonel_controllers::parse_go_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// How long a node that never reported may take before it is marked unhealthy.
    #[arg(long, default_value = "1m0s", value_parser = timonel_controllers::parse_go_duration)]
    node_startup_grace_period: std::time::Duration,
    /// Allocate spec.podCIDR for every node from --cluster-cidr.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    allocate_node_cidrs: bool,
    /// The range node pod CIDRs are cut from (IPv4).
    #[arg(long, default_value = timonel_controllers::nodeipam::DEFAULT_CLUSTER_CIDR)]
    cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = timonel_controllers::nodeipam::DEFAULT_NODE_CIDR_MASK_SIZE)]
    node_cidr_mask_size: u8,
    /// Terminated pods kept before the oldest are deleted (0: no limit).
    #[arg(long, default_value_t = timonel_controllers::podgc::DEFAULT_TERMINATED_POD_THRESHOLD)]
    terminated_pod_gc_threshold: usize,
    /// The CA bundle published to every namespace as the ConfigMap kube-root-ca.crt (default:
    /// the cluster's CA, as the API client trusts it).
    #[arg(long)]
    root_ca_file: Option<PathBuf>,
}

impl ControllerFlags {
    fn options(&self) -> anyhow::Result<timonel_controllers::ControllerOptions> {
        let node_ipam = self
            .allocate_node_cidrs
            .then(|| timonel_controllers::NodeIpamOptions {
                cluster_cidr: self.cluster_cidr.clone(),
                node_cidr_mask_size: self.node_cidr_mask_size,
            });
        if let Some(ipam) = &node_ipam {
            // Refuse a bad range at start rather than from inside a controller task.
            timonel_controllers::nodeipam::CidrSet::new(
                &ipam.cluster_cidr,
                ipam.node_cidr_mask_size,
            )
            .map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))?;
        }
        Ok(timonel_controllers::ControllerOptions {
            node_lifecycle: timonel_controllers::nodelifecycle::LifecycleSettings {
                grace_period: self.node_monitor_grace_period,
                startup_grace_period: self.node_startup_grace_period,
            },
            node_ipam,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            root_ca_pem: match &self.root_ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("--root-ca-file {}", path.display()))?,
                ),
                None => None,
            },
            ..timonel_controllers::ControllerOptions::default()
        })
    }
}

/// The PEM bundle of the CA certificates a kube client trusts (DER in its config).
fn ca_bundle_pem(config: &kube::Config) -> Option<String> {
    use base64::Engine;
    let certs = config.root_cert.as_ref().filter(|c| !c.is_empty())?;
    let mut pem = String::new();
    for der in certs {
        let encoded = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    Some(pem)
}

#[derive(clap::Args)]
struct ClientArgs {
    /// Kubeconfig of the cluster to work on.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Run the scheduler and the controllers only while holding their Leases
    /// (kube-system/kube-scheduler, kube-system/kube-controller-manager), as upstream.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    leader_elect: bool,
}

#[derive(clap::Args)]
struct SimArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    count: usize,
    /// Nodes are named PREFIX-0 … PREFIX-(N-1).
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// CPU capacity of each node.
    #[arg(long, default_value = "8")]
    cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "32Gi")]
    memory: String,
    /// Pod capacity of each node.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Milliseconds from binding to Running and Ready.
    #[arg(long, default_value_t = 500)]
    start_delay_ms: u64,
    /// Milliseconds a pod that does not restart runs before it succeeds.
    #[arg(long, default_value_t = 2000)]
    run_time_ms: u64,
    /// Seconds between Lease renewals.
    #[arg(long, default_value_t = 10)]
    lease_interval_seconds: u64,
    /// Admin kubeconfig of the cluster.
    #[arg(long)]
    kubeconfig: PathBuf,
}

/// A kube-rs client from a kubeconfig file.
async fn client_from(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    Ok(client_and_config_from(kubeconfig).await?.0)
}

/// A kube-rs client from a kubeconfig file, with the configuration it was built from.
async fn client_and_config_from(
    kubeconfig: &std::path::Path,
) -> anyhow::Result<(kube::Client, kube::Config)> {
    use anyhow::Context;
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await?;
    Ok((kube::Client::try_from(config.clone())?, config))
}

async fn run_sim(args: SimArgs) -> anyhow::Result<()> {
    let client = client_from(&args.kubeconfig).await?;
    let options = timonel_sim::SimOptions {
        count: args.count,
        prefix: args.prefix,
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        start_delay: std::time::Duration::from_millis(args.start_delay_ms),
        run_time: std::time::Duration::from_millis(args.run_time_ms),
        lease_interval: std::time::Duration::from_secs(args.lease_interval_seconds),
        ..timonel_sim::SimOptions::default()
    };
    tokio::select! {
        result = timonel_sim::run(client, options) => result,
        _ = shutdown_signal() => Ok(()),
    }
}

fn main() {
    let cli = Cli::parse();
    // The shim and exec helpers fork (libcontainer): they run before any thread exists.
    match &cli.command {
        Command::ContainerShim { dir, id } => {
            std::process::exit(timonel_runtime::native::shim::shim_main(dir, id))
        }
        Command::PodPause => std::process::exit(timonel_runtime::native::pause::pause_main()),
        Command::ContainerExec {
            dir,
            id,
            tty,
            command,
        } => std::process::exit(if *tty {
            timonel_runtime::native::exec_tty::exec_tty_main(dir, id, command.clone())
        } else {
            timonel_runtime::native::shim::exec_main(dir, id, command.clone())
        }),
        _ => {}
    }
    // kube's rustls client needs a process-wide crypto provider; ring is the workspace's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIMONEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => run_server(args).await,
            Command::SimNodes(args) => run_sim(args).await,
            Command::Scheduler(args) => {
                let client = client_from(&args.kubeconfig).await?;
                let identity = timonel_controllers::leader::identity();
                // Alone, a lost lease ends the process, as upstream's kube-scheduler does.
                let elected = run_elected(
                    client.clone(),
                    SCHEDULER_LEASE,
                    &identity,
                    args.leader_elect,
                    true,
                    || {
                        timonel_scheduler::run(
                            client.clone(),
                            timonel_scheduler::SchedulerOptions::default(),
                        )
                    },
                );
                tokio::select! {
                    r = elected => r,
                    _ = shutdown_signal() => Ok(()),
                }
            }
            Command::ControllerManager(args) => {
                let mut options = args.controllers.options()?;
                let (client, config) = client_and_config_from(&args.client.kubeconfig).await?;
                if options.root_ca_pem.is_none() {
                    options.root_ca_pem = ca_bundle_pem(&config);
                }
                let identity = timonel_controllers::leader::identity();
                let elected = run_elected(
                    client.clone(),
                    CONTROLLER_MANAGER_LEASE,
                    &identity,
                    args.client.leader_elect,
                    true,
                    || timonel_controllers::run_all(client.clone(), options.clone()),
                );
                tokio::select! {
                    r = elected => r,
                    _ = shutdown_signal() => Ok(()),
                }
            }
            Command::Bench { what } => bench::run(what).await,
            Command::Image { what } => image_cmd::run(what),
            Command::Agent(args) => {
                let mut config = args
                    .node
                    .agent_config(&args.server, &args.token, args.data_dir);
                config.cluster_cidr = args.cluster_cidr.clone();
                tokio::select! {
                    r = timonel_agent::run(config) => r,
                    _ = shutdown_signal() => Ok(()),
                }
            }
            Command::Reset(args) => timonel_agent::reset::reset(
                &args.data_dir,
                &args.bridge,
                &args.cluster_cidr,
                args.remove_data,
            ),
            Command::ContainerShim { .. } | Command::ContainerExec { .. } | Command::PodPause => {
                unreachable!("handled above")
            }
        }
    });
    if let Err(err) = result {
        // One clear line, as the issue asks: the chain of causes joined.
        // Some errors already print their cause; do not repeat it.
        let mut line = String::new();
        for cause in err.chain().map(|c| c.to_string()) {
            if !line.contains(&cause) {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&cause);
            }
        }
        eprintln!("timonel: {line}");
        std::process::exit(1);
    }
}

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut config = timonel_apiserver::Config::new(args.data_dir);
    config.bind_address = args.bind_address;
    config.port = args.https_listen_port;
    config.datastore_endpoint = args.datastore_endpoint;
    config.write_kubeconfig = args.write_kubeconfig.clone();
    config.admission.default_not_ready_toleration_seconds =
        args.default_not_ready_toleration_seconds;
    config.admission.default_unreachable_toleration_seconds =
        args.default_unreachable_toleration_seconds;
    let mut controller_options = args.controllers.options()?;
    let data_dir = config.data_dir.clone();
    let server = timonel_apiserver::start(config).await?;
    if controller_options.root_ca_pem.is_none() {
        controller_options.root_ca_pem = Some(server.ca_pem.clone());
    }
    if !args.disable_agent {
        let token = std::fs::read_to_string(data_dir.join("server").join("node-token"))?;
        let url = format!("https://127.0.0.1:{}", server.address.port());
        let mut agent = args
            .node
            .agent_config(&url, token.trim(), data_dir.join("agent"));
        agent.cluster_cidr = args.controllers.cluster_cidr.clone();
        tokio::spawn(async move {
            if let Err(e) = timonel_agent::run(agent).await {
                eprintln!("timonel: node agent stopped: {e:#}");
            }
        });
    }
    // The scheduler and controllers are API clients of this server, over loopback HTTPS.
    let needs_client = !args.disable_scheduler || !args.disable_controller_manager;
    if needs_client {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        let client = kube::Client::try_from(config)?;
        // One identity for both loops of this server; a lost lease stops that loop and the
        // server campaigns again (the API server itself keeps serving).
        let identity = timonel_controllers::leader::identity();
        if !args.disable_scheduler {
            let client = client.clone();
            let identity = identity.clone();
            let leader_elect = args.leader_elect;
            tokio::spawn(async move {
                let work = || {
                    timonel_scheduler::run(
                        client.clone(),
                        timonel_scheduler::SchedulerOptions::default(),
                    )
                };
                let result = run_elected(
                    client.clone(),
                    SCHEDULER_LEASE,
                    &identity,
                    leader_elect,
                    false,
                    work,
                )
                .await;
                if let Err(e) = result {
                    eprintln!("timonel: scheduler stopped: {e:#}");
                }
            });
        }
        if !args.disable_controller_manager {
            let leader_elect = args.leader_elect;
            tokio::spawn(async move {
                let work =
                    || timonel_controllers::run_all(client.clone(), controller_options.clone());
                let result = run_elected(
                    client.clone(),
                    CONTROLLER_MANAGER_LEASE,
                    &identity,
                    leader_elect,
                    false,
                    work,
                )
                .await;
                if let Err(e) = result {
                    eprintln!("timonel: controllers stopped: {e:#}");
                }
            });
        }
    }
    eprintln!(
        "timonel: API server ready at {} in {} ms",
        server.url(),
        started.elapsed().as_millis()
    );
    match &args.write_kubeconfig {
        Some(path) => eprintln!(
            "timonel: kubeconfig written to {0}; try: kubectl --kubeconfig {0} get namespaces",
            path.display()
        ),
        None => eprintln!("timonel: pass --write-kubeconfig PATH to get an admin kubeconfig"),
    }
    shutdown_signal().await;
    server.shutdown();
    Ok(())
}

/// Upstream's lock names, in kube-system.
const SCHEDULER_LEASE: &str = "kube-scheduler";
const CONTROLLER_MANAGER_LEASE: &str = "kube-controller-manager";

/// Runs `work`, under leader election on `lease` unless `leader_elect` is off.
async fn run_elected<F, Fut>(
    client: kube::Client,
    lease: &str,
    identity: &str,
    leader_elect: bool,
    exit_on_loss: bool,
    mut work: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if !leader_elect {
        return work().await;
    }
    let config = timonel_controllers::leader::LeaderElectionConfig::new(lease, identity);
    timonel_controllers::leader::run_while_leading(client, config, exit_on_loss, work).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
