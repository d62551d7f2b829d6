//! `timonel bench api`: starts a real `timonel server` process and measures it over HTTPS with
//! kube-rs clients, printing the figures docs/benchmarks.md records.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// API server: start-up, creates/s and latency, list latency, watch fan-out, RSS.
    Api(ApiBenchArgs),
    /// Scheduler end to end: pods bound per second (creation -> binding seen by watch) and RSS.
    Scheduler(SchedulerBenchArgs),
    /// Node agent: pod startup latency (creation -> Running seen by watch), agent RSS. Root.
    Pods(crate::bench_pods::PodsBenchArgs),
}

#[derive(clap::Args)]
pub struct SchedulerBenchArgs {
    /// `sqlite` (default), `etcd` (starts a throwaway etcd) or `memory`.
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// Nodes registered (4 cpu, 32Gi, 110 pods each, as scheduler_perf's SchedulingBasic).
    #[arg(long, default_value_t = 1_000)]
    nodes: usize,
    /// Pods created.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent creating clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
}

#[derive(clap::Args)]
pub struct ApiBenchArgs {
    /// `sqlite` (default), `etcd` (starts a throwaway etcd) or `memory`.
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// Concurrent clients for the create test.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Objects created in the create test.
    #[arg(long, default_value_t = 20_000)]
    creates: usize,
    /// Pods in the list test.
    #[arg(long, default_value_t = 10_000)]
    list_pods: usize,
    /// Watchers in the fan-out test.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Objects held for the loaded-RSS figure.
    #[arg(long, default_value_t = 100_000)]
    rss_objects: usize,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Api(args) => api(args).await,
        BenchCommand::Scheduler(args) => scheduler(args).await,
        BenchCommand::Pods(args) => crate::bench_pods::pods(args).await,
    }
}

/// A `timonel server` child process on a free port with a throwaway data dir.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) data_dir: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    ready_after: Duration,
    _etcd: Option<timonel_store::testing::EtcdServer>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

async fn ready(port: u16) -> bool {
    // /readyz needs no credentials; a TLS handshake + request via a raw client is simplest with
    // curl-free std: use kube's HTTP stack only after the kubeconfig exists, so poll the TCP
    // port and the kubeconfig file first, then /readyz through the client below.
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

async fn start_server(store: &str) -> anyhow::Result<ServerProcess> {
    start_server_with(
        store,
        &["--disable-scheduler", "--disable-controller-manager"],
    )
    .await
}

/// Starts a server process with `flags` added (which loops run inside it).
pub(crate) async fn start_server_with(
    store: &str,
    flags: &[&str],
) -> anyhow::Result<ServerProcess> {
    let data_dir = std::env::temp_dir().join(format!("timonel-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let (endpoint, etcd) = match store {
        "sqlite" => (String::new(), None),
        "memory" => ("memory://".to_string(), None),
        "etcd" => {
            let etcd =
                tokio::task::spawn_blocking(timonel_store::testing::EtcdServer::start).await??;
            (etcd.endpoint(), Some(etcd))
        }
        other => bail!("unknown store {other:?}: use sqlite, etcd or memory"),
    };
    let port = free_port()?;
    let kubeconfig = data_dir.join("kubeconfig.yaml");
    let started = Instant::now();
    let child = Command::new(std::env::current_exe()?)
        .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
        .args(flags)
        .arg("--https-listen-port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .arg("--datastore-endpoint")
        .arg(&endpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut server = ServerProcess {
        child,
        data_dir,
        kubeconfig,
        ready_after: Duration::ZERO,
        _etcd: etcd,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready(port).await && server.kubeconfig.exists() {
            let client = client(&server.kubeconfig).await?;
            let req = http_get("/readyz")?;
            if client.request_text(req).await.is_ok() {
                break;
            }
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("server exited early: {status}");
        }
        if Instant::now() > deadline {
            bail!("server not ready after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.ready_after = started.elapsed();
    Ok(server)
}

fn http_get(path: &str) -> anyhow::Result<http::Request<Vec<u8>>> {
    Ok(http::Request::get(path).body(Vec::new())?)
}

pub(crate) async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    api.create(&PostParams::default(), &ns).await?;
    Ok(())
}

/// Creates `count` objects from `clients` concurrent tasks; returns per-request latencies.
async fn create_many<F>(
    client: &Client,
    count: usize,
    clients: usize,
    make: F,
) -> anyhow::Result<(Duration, Vec<Duration>)>
where
    F: Fn(usize) -> anyhow::Result<(String, serde_json::Value)> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = client.clone();
        let make = make.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= count {
                    break;
                }
                let (path, body) = make(i)?;
                let req = http::Request::post(path)
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body)?)?;
                let t = Instant::now();
                client.request_text(req).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((elapsed, all))
}

async fn api(args: ApiBenchArgs) -> anyhow::Result<()> {
    println!("timonel bench api --store {}", args.store);
    // Start-up: best of three fresh starts (fresh data dir each).
    let mut startups = Vec::new();
    for _ in 0..3 {
        let server = start_server(&args.store).await?;
        startups.push(server.ready_after);
    }
    startups.sort();
    println!(
        "start to /readyz (fresh data dir, best of 3): {}",
        ms(startups[0])
    );

    let server = start_server(&args.store).await?;
    let pid = server.child.id();
    let client = client(&server.kubeconfig).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("RSS idle: {:.1} MiB", rss_kib(pid)? as f64 / 1024.0);

    create_namespace(&client, "bench").await?;
    let (elapsed, latencies) = create_many(&client, args.creates, args.clients, |i| {
        Ok((
            "/api/v1/namespaces/bench/configmaps".to_string(),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"k": "v"}}),
        ))
    })
    .await?;
    println!(
        "creates: {} ConfigMaps with {} clients in {:.2} s = {:.0} creates/s, p50 {}, p99 {}",
        args.creates,
        args.clients,
        elapsed.as_secs_f64(),
        args.creates as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
    );

    create_namespace(&client, "bench-pods").await?;
    create_many(&client, args.list_pods, args.clients, |i| {
        Ok((
            "/api/v1/namespaces/bench-pods/pods".to_string(),
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i}"), "labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "10m"}}}]}}),
        ))
    })
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench-pods");
    let mut list_times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let list = pods.list(&ListParams::default()).await?;
        list_times.push(t.elapsed());
        if list.items.len() != args.list_pods {
            bail!(
                "listed {} pods, expected {}",
                list.items.len(),
                args.list_pods
            );
        }
    }
    list_times.sort();
    let mut raw_times = Vec::new();
    for _ in 0..5 {
        let req = http_get("/api/v1/namespaces/bench-pods/pods")?;
        let t = Instant::now();
        let body = client.request_text(req).await?;
        raw_times.push(t.elapsed());
        if body.len() < args.list_pods * 100 {
            bail!("raw list suspiciously small: {} bytes", body.len());
        }
    }
    raw_times.sort();
    println!(
        "list of {} pods (raw HTTPS GET, response received, median of 5): {}",
        args.list_pods,
        ms(percentile(&raw_times, 0.5))
    );
    println!(
        "list of {} pods (typed kube-rs client, median of 5): {}",
        args.list_pods,
        ms(percentile(&list_times, 0.5))
    );

    // Watch fan-out: every watcher must see every event.
    create_namespace(&client, "bench-watch").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "bench-watch");
    let rv = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let events_per_watcher = 2_000usize;
    let received = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let cms = cms.clone();
        let rv = rv.clone();
        let received = received.clone();
        watchers.push(tokio::spawn(async move {
            let mut stream = cms
                .watch(&WatchParams::default().timeout(290), &rv)
                .await?
                .boxed();
            let mut seen = 0;
            while seen < events_per_watcher {
                match stream.try_next().await? {
                    Some(WatchEvent::Added(_)) => {
                        seen += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            anyhow::Ok(seen)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    create_many(&client, events_per_watcher, args.clients, |i| {
        Ok((
            "/api/v1/namespaces/bench-watch/configmaps".to_string(),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("w-{i}")}}),
        ))
    })
    .await?;
    for w in watchers {
        let seen = w.await??;
        if seen != events_per_watcher {
            bail!("a watcher saw {seen} of {events_per_watcher} events");
        }
    }
    let elapsed = t.elapsed();
    println!(
        "watch fan-out: {} events to {} watchers in {:.2} s = {:.0} events/s delivered",
        events_per_watcher,
        args.watchers,
        elapsed.as_secs_f64(),
        received.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
    );

    let already = args.creates + args.list_pods + events_per_watcher;
    if args.rss_objects > already {
        create_namespace(&client, "bench-rss").await?;
        create_many(&client, args.rss_objects - already, args.clients, |i| {
            Ok((
                "/api/v1/namespaces/bench-rss/configmaps".to_string(),
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("r-{i}")}, "data": {"k": "v"}}),
            ))
        })
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "RSS with {} objects: {:.1} MiB",
        args.rss_objects.max(already),
        rss_kib(pid)? as f64 / 1024.0
    );
    Ok(())
}

/// Registers `count` Ready nodes shaped like scheduler_perf's SchedulingBasic nodes.
async fn register_nodes(client: &Client, count: usize) -> anyhow::Result<()> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let status = serde_json::json!({
        "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
        "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]
    });
    futures::stream::iter(0..count)
        .map(|i| {
            let nodes = nodes.clone();
            let status = status.clone();
            async move {
                let name = format!("node-{i}");
                let node = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                }))?;
                nodes.create(&PostParams::default(), &node).await?;
                nodes
                    .patch_status(
                        &name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(serde_json::json!({"status": status})),
                    )
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

async fn scheduler(args: SchedulerBenchArgs) -> anyhow::Result<()> {
    println!(
        "timonel bench scheduler --store {} --nodes {} --pods {}",
        args.store, args.nodes, args.pods
    );
    // The scheduler runs inside the server process, as in `timonel server`; the controllers do
    // not, so nothing but the scheduler writes to the pods.
    let server = start_server_with(&args.store, &["--disable-controller-manager"]).await?;
    let pid = server.child.id();
    let client = client(&server.kubeconfig).await?;
    register_nodes(&client, args.nodes).await?;
    create_namespace(&client, "bench-sched").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench-sched");
    let watch_from = pods
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let wanted = args.pods;
    let watcher_pods = pods.clone();
    let counter = tokio::spawn(async move {
        let mut bound = std::collections::HashSet::new();
        let mut version = watch_from;
        loop {
            let mut stream = watcher_pods
                .watch(&WatchParams::default().timeout(290), &version)
                .await?
                .boxed();
            while let Some(event) = stream.try_next().await? {
                let pod = match event {
                    WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
                    WatchEvent::Bookmark(b) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(e) => bail!("watch error: {e:?}"),
                    WatchEvent::Deleted(_) => continue,
                };
                if let Some(v) = &pod.metadata.resource_version {
                    version = v.clone();
                }
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some()
                {
                    bound.insert(pod.metadata.name.unwrap_or_default());
                    if bound.len() == wanted {
                        return anyhow::Ok(Instant::now());
                    }
                }
            }
        }
    });
    let started = Instant::now();
    let (created, _) = create_many(&client, args.pods, args.clients, |i| {
        Ok((
            "/api/v1/namespaces/bench-sched/pods".to_string(),
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i}")},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}}),
        ))
    })
    .await?;
    let finished = tokio::time::timeout(Duration::from_secs(600), counter)
        .await
        .context("pods not all bound within 600 s")???;
    let elapsed = finished - started;
    println!(
        "{} pods created in {:.2} s ({:.0} creates/s)",
        args.pods,
        created.as_secs_f64(),
        args.pods as f64 / created.as_secs_f64()
    );
    println!(
        "{} pods on {} nodes bound (creation -> binding seen by watch) in {:.2} s: {:.0} pods/s",
        args.pods,
        args.nodes,
        elapsed.as_secs_f64(),
        args.pods as f64 / elapsed.as_secs_f64()
    );
    println!(
        "server RSS with {} nodes and {} bound pods: {:.1} MiB",
        args.nodes,
        args.pods,
        rss_kib(pid)? as f64 / 1024.0
    );
    Ok(())
}
