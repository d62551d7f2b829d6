//! The Kubernetes API server: HTTPS, authentication, the generic REST pipeline, watch cache,
//! discovery and OpenAPI.
//!
//! Only this crate talks to the store (see docs/ARCHITECTURE.md). Every kind goes through
//! one pipeline ([`rest`]); kind-specific behaviour lives in [`admission`].

// An ApiError is a whole `Status` (message, details, causes) returned at most once per request;
// boxing it would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod body;
pub mod cache;
pub mod discovery;
pub mod eviction;
pub mod glue;
pub mod kubelet;
pub mod request;
pub mod rest;
pub mod server;
pub mod tokens;
pub mod watch;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use timonel_store::Store;

pub use server::{State, User};

/// How the server is started.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub port: u16,
    /// Empty: SQLite in the data dir; `http://h:2379[,…]`: etcd; `memory://`: in memory.
    pub datastore_endpoint: String,
    pub write_kubeconfig: Option<PathBuf>,
    /// How often old revisions are compacted away.
    pub compaction_interval: Duration,
    /// Settings of the admission plugins.
    pub admission: admission::AdmissionOptions,
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            bind_address: IpAddr::from([0, 0, 0, 0]),
            port: 6443,
            datastore_endpoint: String::new(),
            write_kubeconfig: None,
            compaction_interval: Duration::from_secs(300),
            admission: admission::AdmissionOptions::default(),
        }
    }
}

/// Revisions kept behind the newest at each compaction (k3s keeps 1000 as well).
const COMPACTION_RETAIN: i64 = 1000;

/// A started server.
pub struct RunningServer {
    pub address: SocketAddr,
    pub state: Arc<State>,
    pub kubeconfig: String,
    pub admin_token: String,
    pub ca_pem: String,
    serve_task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// The URL clients use (loopback when bound to every address).
    pub fn url(&self) -> String {
        let host = if self.address.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            match self.address.ip() {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            }
        };
        format!("https://{host}:{}", self.address.port())
    }

    pub fn shutdown(self) {
        self.serve_task.abort();
    }
}

/// Opens the datastore the endpoint names.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let endpoint = config.datastore_endpoint.trim();
    if endpoint.is_empty() {
        let dir = config.data_dir.join("server").join("db");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("state.db");
        let store = timonel_store::sqlite::SqliteStore::open(&path)?;
        return Ok(Arc::new(store));
    }
    if endpoint == "memory://" {
        return Ok(Arc::new(timonel_store::memory::MemoryStore::new()));
    }
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        let endpoints: Vec<String> = endpoint
            .split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        let store = timonel_store::etcd::EtcdStore::connect(&endpoints).await?;
        return Ok(Arc::new(store));
    }
    anyhow::bail!(
        "unsupported --datastore-endpoint {endpoint:?}: use an empty value (SQLite), http://host:2379[,…] (etcd) or memory://"
    )
}

fn identify(der: &[u8]) -> Option<User> {
    timonel_pki::identity_from_cert(der).map(|(name, groups)| User { name, groups })
}

/// Binds, opens the store, loads the cache, bootstraps and serves. Returns once ready.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let address = SocketAddr::new(config.bind_address, config.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let address = listener.local_addr()?;
    let mut sans = vec![config.bind_address.to_string()];
    if let Ok(host) = std::env::var("HOSTNAME") {
        sans.push(host);
    }
    let pki = timonel_pki::ClusterPki::load_or_create(&config.data_dir, &sans)?;
    let tls = pki.server_config()?;
    let store = open_store(&config).await?;
    let authenticator = server::Authenticator {
        tokens: vec![(
            pki.admin_token().to_string(),
            User {
                name: "system:admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            },
        )],
    };
    let state =
        State::with_admission(store.clone(), authenticator, config.admission.clone()).await?;
    let _ = state
        .kubelet
        .set(Arc::new(kubelet::KubeletAccess::new(pki.clone())?));
    let _ = state
        .token_signer
        .set(Arc::new(tokens::TokenSigner::from_pkcs8(
            pki.service_account_key(),
        )?));
    admission::bootstrap(&state)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrapping the cluster: {}", e.message))?;
    timonel_store::spawn_compactor(store, config.compaction_interval, COMPACTION_RETAIN);
    let serve_task = tokio::spawn(server::serve_tls(state.clone(), listener, tls, identify));
    state.ready.store(true, Ordering::Release);
    // Build the OpenAPI schemas off the start-up path: kubectl asks for them first thing.
    tokio::task::spawn_blocking(|| {
        glue::schemas();
    });
    let running = RunningServer {
        address,
        state,
        kubeconfig: String::new(),
        admin_token: pki.admin_token().to_string(),
        ca_pem: pki.ca_pem().to_string(),
        serve_task,
    };
    let kubeconfig = pki.kubeconfig_yaml(&running.url());
    if let Some(path) = &config.write_kubeconfig {
        pki.write_kubeconfig(path, &running.url())?;
    }
    Ok(RunningServer {
        kubeconfig,
        ..running
    })
}
