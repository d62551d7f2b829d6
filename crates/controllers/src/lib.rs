//! Timonel's controllers in the kube-rs style: each module has a pure decision function
//! (object + related cached objects + `now` → actions as data) and a thin `run` that watches
//! the API server with `kube::runtime` and executes those actions.

use std::time::Duration;

pub mod common;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod expectations;
pub mod gc;
pub mod history;
pub mod job;
pub mod leader;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod serviceaccount;
pub mod statefulset;
pub mod tainteviction;
pub mod volumes;

/// Settings shared by every controller.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Reconciles running at once per controller.
    pub concurrency: u16,
    /// Every object is reconciled again after this long even without a change (level-triggered
    /// safety net).
    pub resync_period: Duration,
    /// Node lifecycle timings (`--node-monitor-grace-period`, `--node-startup-grace-period`).
    pub node_lifecycle: nodelifecycle::LifecycleSettings,
    /// Pod CIDR allocation (`--cluster-cidr`, `--node-cidr-mask-size`); None: disabled.
    pub node_ipam: Option<NodeIpamOptions>,
    /// `--terminated-pod-gc-threshold` (0: no limit).
    pub terminated_pod_gc_threshold: usize,
    /// The CA bundle published as `kube-root-ca.crt` in every namespace (`--root-ca-file`,
    /// or the client's own CA); None: not published.
    pub root_ca_pem: Option<String>,
}

/// Where node pod CIDRs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIpamOptions {
    pub cluster_cidr: String,
    pub node_cidr_mask_size: u8,
}

impl Default for NodeIpamOptions {
    fn default() -> Self {
        Self {
            cluster_cidr: nodeipam::DEFAULT_CLUSTER_CIDR.into(),
            node_cidr_mask_size: nodeipam::DEFAULT_NODE_CIDR_MASK_SIZE,
        }
    }
}

/// Parses a Go duration as upstream's flags take them: "40s", "5m", "1m30s", "500ms", "2h".
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} (examples: 40s, 1m30s, 500ms)");
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let value: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            resync_period: Duration::from_secs(300),
            node_lifecycle: nodelifecycle::LifecycleSettings::default(),
            node_ipam: Some(NodeIpamOptions::default()),
            terminated_pod_gc_threshold: podgc::DEFAULT_TERMINATED_POD_THRESHOLD,
            root_ca_pem: None,
        }
    }
}

/// Runs every controller concurrently; returns when one of them fails or all stop.
pub async fn run_all(client: kube::Client, options: ControllerOptions) -> anyhow::Result<()> {
    tokio::try_join!(
        replicaset::run(client.clone(), options.clone()),
        deployment::run(client.clone(), options.clone()),
        gc::run(client.clone(), options.clone()),
        namespace::run(client.clone(), options.clone()),
        daemonset::run(client.clone(), options.clone()),
        statefulset::run(client.clone(), options.clone()),
        job::run(client.clone(), options.clone()),
        cronjob::run(client.clone(), options.clone()),
        nodelifecycle::run(client.clone(), options.clone()),
        tainteviction::run(client.clone(), options.clone()),
        podgc::run(client.clone(), options.clone()),
        nodeipam::run(client.clone(), options.clone()),
        serviceaccount::run(client.clone(), options.clone()),
        volumes::run(client.clone(), options.clone()),
        disruption::run(client, options),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_upstream_flags_do() {
        assert_eq!(parse_go_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_go_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "40", "5x", "s", "1m30"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }
}
