//! The node's own objects: its Node (capacity, addresses, nodeInfo, conditions) and its
//! Lease in `kube-node-lease`, renewed every 10 s as kubelet does.

use std::fs;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// kubelet's defaults.
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(60);
pub const MAX_PODS: u32 = 110;

/// What the node reports about itself.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub ip: String,
    pub kubelet_port: u16,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub architecture: String,
    /// Where this node keeps local-path volumes (announced on the Node for the provisioner).
    pub storage_dir: String,
    /// The agent's data dir, whose filesystem DiskPressure watches.
    pub data_dir: std::path::PathBuf,
    /// DiskPressure below this percent available (0: never).
    pub disk_pressure_below_percent: u64,
}

/// kubelet's default hard eviction signals, as node conditions: memory.available < 100Mi,
/// nodefs.available < 10 % (configurable); and fewer than 10 % of PIDs left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

impl Pressure {
    /// From `/proc/meminfo`'s MemAvailable (bytes), the data dir's filesystem (available and
    /// total blocks), and the process count against `pid_max`.
    pub fn from_figures(
        memory_available: Option<u64>,
        disk: Option<(u64, u64)>,
        pids: Option<(u64, u64)>,
        disk_below_percent: u64,
    ) -> Pressure {
        Pressure {
            memory: memory_available.is_some_and(|a| a < 100 << 20),
            disk: disk.is_some_and(|(available, total)| {
                total > 0 && available * 100 < total * disk_below_percent
            }),
            pid: pids.is_some_and(|(used, max)| max > 0 && (max - used.min(max)) * 10 < max),
        }
    }

    pub fn measure(data_dir: &Path, disk_below_percent: u64) -> Pressure {
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = crate::stats::node_memory(&meminfo).1;
        let disk = rustix::fs::statvfs(data_dir)
            .ok()
            .map(|s| (s.f_bavail, s.f_blocks));
        // /proc/loadavg's fourth field is running/total tasks.
        let used = fs::read_to_string("/proc/loadavg").ok().and_then(|l| {
            l.split_whitespace()
                .nth(3)?
                .split('/')
                .nth(1)?
                .parse::<u64>()
                .ok()
        });
        let max = first_line("/proc/sys/kernel/pid_max").parse::<u64>().ok();
        Pressure::from_figures(memory, disk, used.zip(max), disk_below_percent)
    }
}

fn first_line(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    let text = fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn memory_total_bytes() -> u64 {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    crate::stats::node_memory(&meminfo).0.unwrap_or(0)
}

fn disk_bytes(path: &Path) -> u64 {
    rustix::fs::statvfs(path)
        .map(|s| s.f_blocks * s.f_frsize)
        .unwrap_or(0)
}

impl NodeFacts {
    /// Reads the machine's facts.
    pub fn gather(name: &str, ip: &str, kubelet_port: u16, data_dir: &Path) -> NodeFacts {
        let uname = rustix::system::uname();
        NodeFacts {
            name: name.to_string(),
            ip: ip.to_string(),
            kubelet_port,
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
            memory_bytes: memory_total_bytes(),
            ephemeral_storage_bytes: disk_bytes(data_dir),
            storage_dir: data_dir.join("storage").display().to_string(),
            data_dir: data_dir.to_path_buf(),
            disk_pressure_below_percent: 10,
            kernel_version: uname.release().to_string_lossy().into_owned(),
            os_image: os_image(),
            machine_id: first_line("/etc/machine-id"),
            boot_id: first_line("/proc/sys/kernel/random/boot_id"),
            architecture: match std::env::consts::ARCH {
                "x86_64" => "amd64".into(),
                "aarch64" => "arm64".into(),
                other => other.into(),
            },
        }
    }

    fn capacity(&self) -> Value {
        json!({
            "cpu": self.cpus.to_string(),
            "memory": format!("{}Ki", self.memory_bytes / 1024),
            "ephemeral-storage": format!("{}Ki", self.ephemeral_storage_bytes / 1024),
            "pods": MAX_PODS.to_string(),
            "hugepages-2Mi": "0",
            "hugepages-1Gi": "0",
        })
    }

    /// The Node's status as kubelet posts it.
    pub fn status(&self, now: &str, previous: Option<&Node>) -> Value {
        let capacity = self.capacity();
        json!({
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": self.ip},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": self.machine_id,
                "systemUUID": self.machine_id,
                "bootID": self.boot_id,
                "kernelVersion": self.kernel_version,
                "osImage": self.os_image,
                "containerRuntimeVersion": format!("timonel://{}", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": crate::KUBELET_VERSION,
                "kubeProxyVersion": crate::KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": self.architecture,
            },
            "conditions": conditions(now, previous, Pressure::measure(&self.data_dir, self.disk_pressure_below_percent)),
        })
    }
}

/// kubelet's four conditions; a condition's lastTransitionTime only moves when its status
/// changes.
fn conditions(now: &str, previous: Option<&Node>, pressure: Pressure) -> Value {
    let wanted = [
        if pressure.memory {
            (
                "MemoryPressure",
                "True",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            )
        } else {
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            )
        },
        if pressure.disk {
            (
                "DiskPressure",
                "True",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            )
        } else {
            (
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            )
        },
        if pressure.pid {
            (
                "PIDPressure",
                "True",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            )
        } else {
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            )
        },
        (
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ];
    let old = previous
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.as_ref());
    let list: Vec<Value> = wanted
        .iter()
        .map(|(kind, status, reason, message)| {
            let transition = old
                .and_then(|c| c.iter().find(|c| c.type_ == *kind))
                .filter(|c| c.status == *status)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| now.to_string());
            json!({
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": transition,
            })
        })
        .collect();
    Value::Array(list)
}

pub fn now_seconds() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn now_micros() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Read by the local-path provisioner (timonel-controllers' `volumes::NODE_DIR_ANNOTATION`).
pub const LOCAL_PATH_DIR_ANNOTATION: &str = "timonel.io/local-path-dir";

/// Creates the Node if missing (with the labels kubelet sets) and posts its status.
pub async fn register(client: &kube::Client, facts: &NodeFacts) -> anyhow::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let existing = nodes.get_opt(&facts.name).await?;
    if existing.is_none() {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": facts.name,
                "labels": {
                    "kubernetes.io/hostname": facts.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": facts.architecture,
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": facts.architecture,
                },
                "annotations": {LOCAL_PATH_DIR_ANNOTATION: facts.storage_dir},
            },
        }))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    } else if existing
        .as_ref()
        .and_then(|n| n.metadata.annotations.as_ref())
        .and_then(|a| a.get(LOCAL_PATH_DIR_ANNOTATION))
        != Some(&facts.storage_dir)
    {
        // The agent may come back with another data dir.
        let patch =
            json!({"metadata": {"annotations": {LOCAL_PATH_DIR_ANNOTATION: facts.storage_dir}}});
        nodes
            .patch(&facts.name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
    }
    post_status(client, facts, existing.as_ref()).await
}

/// Posts the node's status (heartbeat and facts). Controllers write the Node at the same time
/// (pod CIDR, taints): a conflict is retried, as kubelet's status updates are.
pub async fn post_status(
    client: &kube::Client,
    facts: &NodeFacts,
    previous: Option<&Node>,
) -> anyhow::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = facts.status(&now_seconds(), previous);
    let mut attempt = 0;
    loop {
        let result = nodes
            .patch_status(
                &facts.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await;
        match result {
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Renews (or creates) the node's Lease.
pub async fn renew_lease(
    client: &kube::Client,
    node_name: &str,
    node_uid: &str,
) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = now_micros();
    let patch = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name,
            "namespace": "kube-node-lease",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid,
            }],
        },
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": now,
        },
    });
    match leases
        .patch(node_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease: Lease = serde_json::from_value(patch)?;
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "n1".into(),
            ip: "127.0.0.1".into(),
            kubelet_port: 10250,
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 100 << 30,
            kernel_version: "6.18.0".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            architecture: "amd64".into(),
            storage_dir: "/var/lib/timonel/agent/storage".into(),
            data_dir: "/var/lib/timonel/agent".into(),
            disk_pressure_below_percent: 10,
        }
    }

    #[test]
    fn pressure_follows_kubelet_default_thresholds() {
        assert_eq!(
            Pressure::from_figures(Some(1 << 30), Some((50, 100)), Some((100, 32768)), 10),
            Pressure::default()
        );
        let low = Pressure::from_figures(Some(50 << 20), Some((5, 100)), Some((30000, 32768)), 10);
        // Disk pressure off.
        assert!(!Pressure::from_figures(None, Some((0, 100)), None, 0).disk);
        assert_eq!(
            low,
            Pressure {
                memory: true,
                disk: true,
                pid: true
            }
        );
        let conditions = conditions("2026-01-01T00:00:00Z", None, low);
        assert_eq!(conditions[0]["type"], "MemoryPressure");
        assert_eq!(conditions[0]["status"], "True");
        assert_eq!(conditions[0]["reason"], "KubeletHasInsufficientMemory");
        assert_eq!(conditions[1]["reason"], "KubeletHasDiskPressure");
        assert_eq!(conditions[2]["reason"], "KubeletHasInsufficientPID");
        // Unknown figures are no pressure.
        assert_eq!(
            Pressure::from_figures(None, None, None, 10),
            Pressure::default()
        );
    }

    #[test]
    fn status_carries_capacity_addresses_and_ready() {
        let s = facts().status("2026-01-01T00:00:00Z", None);
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["capacity"]["memory"], "4194304Ki");
        assert_eq!(s["addresses"][0]["address"], "127.0.0.1");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert!(
            s["nodeInfo"]["containerRuntimeVersion"]
                .as_str()
                .unwrap()
                .starts_with("timonel://")
        );
        let ready = &s["conditions"][3];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let first = facts().status("2026-01-01T00:00:00Z", None);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1"}, "status": first,
        }))
        .unwrap();
        let second = facts().status("2026-01-01T00:01:00Z", Some(&node));
        assert_eq!(
            second["conditions"][3]["lastHeartbeatTime"],
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(
            second["conditions"][3]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
    }
}
