//! `timonel bench pods`: pod startup latency on one real node. Starts a server (scheduler and
//! controllers) and a `timonel agent`, imports a local image, creates pods and records when
//! each is first seen Running through a watch; also the runtime's own container start time
//! and the agent's RSS idle and with the pods running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;

use crate::bench::{client, free_port, ms, percentile, rss_kib, start_server_with};

#[derive(clap::Args)]
pub struct PodsBenchArgs {
    /// An image archive to run (build one with scripts/build-busybox-image.sh OUT.tar
    /// docker.io/library/busybox:1.36).
    #[arg(long)]
    image_archive: PathBuf,
    /// The image reference the archive holds.
    #[arg(long, default_value = "busybox:1.36")]
    image: String,
    /// Pods created.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pause between two creations; 0 creates them as fast as the API takes them (a burst,
    /// whose tail is queueing on the node). Upstream's density tests pace creations.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
}

const BRIDGE: &str = "timonelbench0";
const CIDR: &str = "10.246.0.0/16";

struct Agent {
    child: std::process::Child,
    data_dir: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(exe) = std::env::current_exe() {
            let _ = Command::new(exe)
                .args([
                    "reset",
                    "--bridge",
                    BRIDGE,
                    "--cluster-cidr",
                    CIDR,
                    "--remove-data",
                    "--data-dir",
                ])
                .arg(&self.data_dir)
                .stdout(Stdio::null())
                .status();
        }
    }
}

pub async fn pods(args: PodsBenchArgs) -> anyhow::Result<()> {
    timonel_agent::check_prerequisites()?;
    println!(
        "timonel bench pods --pods {} --image {} --interval-ms {}",
        args.pods, args.image, args.interval_ms
    );
    let server = start_server_with("sqlite", &["--cluster-cidr", CIDR]).await?;
    let client = client(&server.kubeconfig).await?;
    let data_dir = std::env::temp_dir().join(format!("timonel-bench-agent-{}", std::process::id()));
    std::fs::create_dir_all(data_dir.join("images"))?;
    std::fs::copy(
        &args.image_archive,
        data_dir.join("images").join("image.tar"),
    )
    .with_context(|| format!("copying {}", args.image_archive.display()))?;
    let token = std::fs::read_to_string(server.data_dir.join("server").join("node-token"))?;
    let port = server_port(&server.kubeconfig)?;
    let child = Command::new(std::env::current_exe()?)
        .args([
            "agent",
            "--node-name",
            "bench-node",
            "--bridge",
            BRIDGE,
            "--cluster-cidr",
            CIDR,
        ])
        .arg("--server")
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("--token")
        .arg(token.trim())
        .arg("--kubelet-port")
        .arg(free_port()?.to_string())
        .arg("--data-dir")
        .arg(&data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let agent = Agent { child, data_dir };
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = nodes.get_opt("bench-node").await?.is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent's node is not Ready after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = rss_kib(agent.child.id())?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut stream = watcher(pods.clone(), watcher::Config::default()).boxed();
    // Drain the initial (empty) list so every Running seen later is a new pod.
    while let Some(event) = stream.next().await {
        if matches!(event?, watcher::Event::InitDone) {
            break;
        }
    }
    // The watch is read while pods are created, so each Running is timed when it arrives.
    let wanted = args.pods;
    let observer = tokio::spawn(async move {
        let mut running: HashMap<String, Instant> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        while running.len() < wanted {
            let next = tokio::time::timeout_at(deadline.into(), stream.next()).await;
            let Ok(Some(event)) = next else {
                bail!(
                    "only {} of {wanted} pods Running after 300 s",
                    running.len()
                );
            };
            if let watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) = event? {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    running.entry(name).or_insert_with(Instant::now);
                }
            }
        }
        Ok::<_, anyhow::Error>((running, Instant::now()))
    });
    let mut created: HashMap<String, Instant> = HashMap::new();
    let start_all = Instant::now();
    for i in 0..args.pods {
        let name = format!("bench-{i}");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": args.image, "command": ["sleep", "3600"]}],
            },
        }))?;
        created.insert(name, Instant::now());
        pods.create(&PostParams::default(), &pod).await?;
        if args.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
    }
    let (running, last) = observer.await??;
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(name, t)| running.get(name).map(|r| r.duration_since(*t)))
        .collect();
    let all_running = last.duration_since(start_all);
    latencies.sort();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy_rss = rss_kib(agent.child.id())?;
    println!(
        "pods Running            {} in {}",
        args.pods,
        ms(all_running)
    );
    println!(
        "startup latency p50     {}",
        ms(percentile(&latencies, 0.50))
    );
    println!(
        "startup latency p99     {}",
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "startup latency max     {}",
        ms(*latencies.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "agent RSS idle          {:.1} MiB",
        idle_rss as f64 / 1024.0
    );
    println!(
        "agent RSS with {} pods {:.1} MiB",
        args.pods,
        busy_rss as f64 / 1024.0
    );
    let mut starts = container_start_times(&agent.data_dir.join("containers"));
    starts.sort();
    println!(
        "container start p50     {} (runtime: create → process running)",
        ms(percentile(&starts, 0.50))
    );
    println!("container start p99     {}", ms(percentile(&starts, 0.99)));
    let shims: u64 = shim_rss_kib();
    println!(
        "container shims RSS     {:.1} MiB in all ({:.2} MiB each)",
        shims as f64 / 1024.0,
        shims as f64 / 1024.0 / args.pods.max(1) as f64
    );
    drop(agent);
    drop(server);
    Ok(())
}

/// For every container the runtime recorded: from its creation (`meta.json`'s `created_at`,
/// before the root filesystem is mounted) to its process running (`started.json`).
fn container_start_times(containers: &std::path::Path) -> Vec<Duration> {
    let read = |path: std::path::PathBuf, field: &str| -> Option<chrono::DateTime<chrono::Utc>> {
        let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        chrono::DateTime::parse_from_rfc3339(value[field].as_str()?)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let Ok(entries) = std::fs::read_dir(containers) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let created = read(e.path().join("meta.json"), "created_at")?;
            let started = read(e.path().join("started.json"), "started_at")?;
            (started - created).to_std().ok()
        })
        .collect()
}

/// Sum of the RSS of every container shim process.
fn shim_rss_kib() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.windows(14).any(|w| w == b"container-shim"))
                .unwrap_or(false)
        })
        .filter_map(|pid| rss_kib(pid).ok())
        .sum()
}

fn server_port(kubeconfig: &std::path::Path) -> anyhow::Result<u16> {
    let text = std::fs::read_to_string(kubeconfig)?;
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .context("no server in the kubeconfig")?;
    server
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_matches('/').parse().ok())
        .context("no port in the server URL")
}
