//! `timonel reset`: removes what the agent left on the host.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use timonel_runtime::native::{ContainerRuntime, ContainerState, NativeRuntime};

/// Kills and removes every container, unmounts pod volumes, removes the `timonel` cgroups,
/// the pods' namespaces and veths, the bridge and the blackhole routes; with `remove_data`
/// also the data dir.
pub fn reset(
    data_dir: &Path,
    bridge: &str,
    cluster_cidr: &str,
    remove_data: bool,
) -> anyhow::Result<()> {
    crate::check_prerequisites()?;
    let containers_dir = data_dir.join("containers");
    if containers_dir.exists() {
        let runtime = NativeRuntime::new(&containers_dir, "/bin/false")?;
        let containers = runtime.list()?;
        let pod_uids: std::collections::BTreeSet<String> =
            containers.iter().map(|c| c.meta.pod_uid.clone()).collect();
        for c in &containers {
            if matches!(c.state, ContainerState::Running(_)) {
                let _ = runtime.signal(&c.id, 9);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &containers {
            while Instant::now() < deadline
                && matches!(
                    runtime.inspect(&c.id).map(|i| i.state),
                    Ok(ContainerState::Running(_))
                )
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Err(e) = runtime.remove(&c.id) {
                eprintln!("timonel reset: container {}: {e}", c.id);
            }
        }
        // Only this agent's cgroups: another agent on the host may be creating its own.
        for uid in pod_uids {
            timonel_runtime::native::shim::remove_cgroup_path(&crate::stats::pod_cgroup(&uid));
        }
        println!("removed {} container(s)", containers.len());
    }
    // Shared PID namespaces' init processes (shareProcessNamespace pods).
    if let Ok(pods) = std::fs::read_dir(data_dir.join("pods")) {
        for pod in pods.flatten() {
            timonel_runtime::native::pause::stop(&pod.path());
        }
    }
    crate::volumes::unmount_all(&data_dir.join("pods"));
    let _ = std::fs::remove_dir_all(data_dir.join("pods"));
    // The shared parent goes once empty (rmdir never removes a cgroup in use).
    timonel_runtime::native::shim::remove_cgroup_path("/timonel");
    let config = timonel_net::NetConfig {
        bridge: bridge.to_string(),
        pod_cidr: "10.42.0.0/24".parse().expect("valid"),
        blackhole_cidrs: vec![
            cluster_cidr
                .parse()
                .with_context(|| format!("--cluster-cidr {cluster_cidr}"))?,
            "10.43.0.0/16".parse().expect("valid"),
        ],
        state_dir: data_dir.join("net"),
        netns_dir: crate::netns_dir_for(bridge),
        mtu: 1500,
    };
    timonel_net::PodNetwork::linux(config)
        .and_then(|n| n.reset())
        .context("removing pod networking")?;
    println!("removed pod networking (bridge {bridge}, namespaces, routes)");
    if remove_data && data_dir.exists() {
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("removing {}", data_dir.display()))?;
        println!("removed {}", data_dir.display());
    }
    Ok(())
}
