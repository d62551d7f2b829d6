//! kubelet's `/stats/summary` (stats/v1alpha1 `Summary`): the node's CPU and memory from
//! `/proc`, each running pod's and container's from its cgroup. `usageNanoCores` is the rate
//! since the previous request (absent on the first), as kubelet derives it from its samples.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value, json};
use timonel_runtime::native::stats::Usage;
use timonel_runtime::native::{ContainerInfo, ContainerState};

/// A container's cgroup, relative to each hierarchy's root.
pub fn container_cgroup(pod_uid: &str, container_id: &str) -> String {
    format!("{}/{container_id}", pod_cgroup(pod_uid))
}

pub fn pod_cgroup(pod_uid: &str) -> String {
    format!("/timonel/pod{pod_uid}")
}

/// The previous CPU sample of each object, for rates.
#[derive(Default)]
pub struct CpuSamples(Mutex<HashMap<String, (Instant, u64)>>);

impl CpuSamples {
    /// `usageNanoCores` since the last sample of `key`, recording this one.
    fn rate(&self, key: &str, now: Instant, total_nanos: u64) -> Option<u64> {
        let mut samples = self.0.lock().expect("poisoned");
        let previous = samples.insert(key.to_string(), (now, total_nanos));
        let (then, before) = previous?;
        let elapsed = now.duration_since(then).as_nanos() as u64;
        (elapsed > 0).then(|| {
            total_nanos
                .saturating_sub(before)
                .saturating_mul(1_000_000_000)
                / elapsed
        })
    }
}

fn cpu_json(
    samples: &CpuSamples,
    key: &str,
    time: &str,
    now: Instant,
    nanos: Option<u64>,
) -> Value {
    let mut cpu = json!({"time": time});
    if let Some(total) = nanos {
        cpu["usageCoreNanoSeconds"] = json!(total);
        if let Some(rate) = samples.rate(key, now, total) {
            cpu["usageNanoCores"] = json!(rate);
        }
    }
    cpu
}

fn memory_json(time: &str, usage: &Usage, limit: Option<u64>) -> Value {
    let mut memory = json!({"time": time});
    if let Some(bytes) = usage.memory_bytes {
        memory["usageBytes"] = json!(bytes);
    }
    if let Some(ws) = usage.working_set_bytes {
        memory["workingSetBytes"] = json!(ws);
        if let Some(limit) = limit {
            memory["availableBytes"] = json!(limit.saturating_sub(ws));
        }
    }
    memory
}

/// The node's cumulative busy CPU time (`/proc/stat`, all but idle and iowait) in nanoseconds.
pub fn node_cpu_nanos(proc_stat: &str) -> Option<u64> {
    let fields: Vec<u64> = proc_stat
        .lines()
        .find(|l| l.starts_with("cpu "))?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    // USER_HZ is 100 on Linux.
    Some(busy * 10_000_000)
}

/// `(total, available)` bytes from `/proc/meminfo`.
pub fn node_memory(meminfo: &str) -> (Option<u64>, Option<u64>) {
    let field = |key: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
                .map(|kib| kib * 1024)
        })
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// The Summary document for `node` with its running `containers`.
pub fn summary(
    node: &str,
    samples: &CpuSamples,
    containers: &[ContainerInfo],
    usage_of: impl Fn(&str) -> Usage,
) -> Value {
    let now = Instant::now();
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (total, available) =
        node_memory(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let node_usage = Usage {
        cpu_nanos: node_cpu_nanos(&std::fs::read_to_string("/proc/stat").unwrap_or_default()),
        memory_bytes: total.zip(available).map(|(t, a)| t.saturating_sub(a)),
        working_set_bytes: total.zip(available).map(|(t, a)| t.saturating_sub(a)),
    };
    let mut node_memory = memory_json(&time, &node_usage, total);
    if let Some(a) = available {
        node_memory["availableBytes"] = json!(a);
    }
    // Pods by UID, each with its running containers' latest attempt.
    let mut pods: BTreeMap<&str, Vec<&ContainerInfo>> = BTreeMap::new();
    for c in containers {
        if matches!(c.state, ContainerState::Running(_)) {
            pods.entry(c.meta.pod_uid.as_str()).or_default().push(c);
        }
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|(uid, containers)| {
            let first = containers[0];
            let pod_usage = usage_of(&pod_cgroup(uid));
            let containers: Vec<Value> = containers
                .iter()
                .map(|c| {
                    let usage = usage_of(&container_cgroup(uid, &c.id));
                    let started = match &c.state {
                        ContainerState::Running(s) => s.started_at.clone(),
                        _ => String::new(),
                    };
                    json!({
                        "name": c.meta.container_name,
                        "startTime": started,
                        "cpu": cpu_json(samples, &c.id, &time, now, usage.cpu_nanos),
                        "memory": memory_json(&time, &usage, None),
                    })
                })
                .collect();
            json!({
                "podRef": {
                    "name": first.meta.pod_name,
                    "namespace": first.meta.pod_namespace,
                    "uid": uid,
                },
                "startTime": first.meta.created_at,
                "containers": containers,
                "cpu": cpu_json(samples, uid, &time, now, pod_usage.cpu_nanos),
                "memory": memory_json(&time, &pod_usage, None),
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": node,
            "cpu": cpu_json(samples, "", &time, now, node_usage.cpu_nanos),
            "memory": node_memory,
        },
        "pods": pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use timonel_runtime::native::{ContainerMeta, Started};

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(node_cpu_nanos(stat), Some(160 * 10_000_000));
        let meminfo = "MemTotal:        2048 kB\nMemFree:  100 kB\nMemAvailable:    1024 kB\n";
        assert_eq!(node_memory(meminfo), (Some(2048 * 1024), Some(1024 * 1024)));
    }

    #[test]
    fn pods_and_containers_carry_their_cgroup_usage_and_a_rate_from_the_second_sample() {
        let running = ContainerInfo {
            id: "c1".into(),
            meta: ContainerMeta {
                pod_uid: "u1".into(),
                pod_namespace: "ns".into(),
                pod_name: "web".into(),
                container_name: "app".into(),
                ..Default::default()
            },
            state: ContainerState::Running(Started::default()),
        };
        let exited = ContainerInfo {
            id: "c0".into(),
            state: ContainerState::Created,
            ..running.clone()
        };
        let samples = CpuSamples::default();
        let usage = |path: &str| Usage {
            cpu_nanos: Some(if path.ends_with("c1") { 5_000 } else { 7_000 }),
            memory_bytes: Some(4096),
            working_set_bytes: Some(2048),
        };
        let doc = summary("n1", &samples, &[running.clone(), exited], usage);
        assert_eq!(doc["node"]["nodeName"], "n1");
        let pods = doc["pods"].as_array().unwrap();
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0]["podRef"]["name"], "web");
        assert_eq!(pods[0]["cpu"]["usageCoreNanoSeconds"], 7_000);
        assert_eq!(pods[0]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(pods[0]["containers"][0]["memory"]["workingSetBytes"], 2048);
        assert!(pods[0]["cpu"]["usageNanoCores"].is_null());
        let again = summary("n1", &samples, &[running], usage);
        assert!(again["pods"][0]["cpu"]["usageNanoCores"].is_u64());
    }
}
