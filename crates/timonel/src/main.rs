//! `timonel`: the one binary — control plane, (later) node agent, and benchmarks.

mod bench;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

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
    /// Measure performance and print the figures.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
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
    /// Do not run the node agent inside the server (the agent is not built yet: accepted for
    /// forward compatibility).
    #[arg(long)]
    disable_agent: bool,
}

fn main() {
    let cli = Cli::parse();
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
            Command::Bench { what } => bench::run(what).await,
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
    let _ = args.disable_agent;
    let server = timonel_apiserver::start(config).await?;
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

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
