//! Node IPAM (upstream `pkg/controller/nodeipam`, range allocator): gives every node a
//! `spec.podCIDR` / `spec.podCIDRs` from the cluster CIDR. The used set is whatever the nodes
//! carry (read from the cache at every allocation) plus allocations still in flight, so a
//! restarted controller never hands out a CIDR twice; a node that has one keeps it.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::ControllerOptions;
use crate::common::{Error, EventSpec, api_error_code, emit_event, object_reference};

pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// Upstream's `--node-cidr-mask-size` default for IPv4.
pub const DEFAULT_NODE_CIDR_MASK_SIZE: u8 = 24;

const COMPONENT: &str = "cidrAllocator";

/// The cluster CIDR cut into equal per-node blocks (upstream's `CidrSet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrSet {
    base: u32,
    cluster_prefix: u8,
    node_prefix: u8,
}

impl CidrSet {
    /// Parses `a.b.c.d/n` and checks the node mask fits (upstream refuses a node mask smaller
    /// than the cluster's, and more than 16 bits of difference).
    pub fn new(cluster_cidr: &str, node_mask: u8) -> Result<CidrSet, String> {
        let (ip, prefix) = parse_cidr(cluster_cidr)?;
        if node_mask < prefix || node_mask > 32 {
            return Err(format!(
                "--node-cidr-mask-size {node_mask} must be between the cluster CIDR's prefix \
                 length {prefix} and 32"
            ));
        }
        if node_mask - prefix > 16 {
            return Err(format!(
                "--node-cidr-mask-size {node_mask} is more than 16 bits longer than the cluster \
                 CIDR {cluster_cidr}"
            ));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(CidrSet {
            base: u32::from(ip) & mask,
            cluster_prefix: prefix,
            node_prefix: node_mask,
        })
    }

    /// How many node blocks the cluster CIDR holds.
    pub fn len(&self) -> u32 {
        1 << (self.node_prefix - self.cluster_prefix)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    fn block_size(&self) -> u64 {
        1u64 << (32 - self.node_prefix)
    }

    /// The CIDR text of block `index`.
    pub fn block(&self, index: u32) -> String {
        let start = u64::from(self.base) + u64::from(index) * self.block_size();
        let ip = Ipv4Addr::from(u32::try_from(start).unwrap_or(u32::MAX));
        format!("{ip}/{}", self.node_prefix)
    }

    /// The block index of a CIDR, if it is one of this set's blocks.
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        let (ip, prefix) = parse_cidr(cidr).ok()?;
        if prefix != self.node_prefix {
            return None;
        }
        let offset = u32::from(ip).checked_sub(self.base)?;
        let index = u64::from(offset) / self.block_size();
        let index = u32::try_from(index).ok()?;
        (index < self.len() && u64::from(offset) % self.block_size() == 0).then_some(index)
    }

    /// The first free block at or after `cursor`, wrapping around (upstream allocates round
    /// robin, so a released block is not handed out again at once).
    pub fn next_free(&self, used: &HashSet<u32>, cursor: u32) -> Option<u32> {
        let len = self.len();
        (0..len)
            .map(|i| (cursor.wrapping_add(i)) % len)
            .find(|i| !used.contains(i))
    }
}

fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, prefix) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("invalid CIDR {text:?}: no prefix length"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("invalid CIDR {text:?}: only IPv4 cluster CIDRs are supported"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("invalid CIDR {text:?}: bad prefix length"))?;
    Ok((ip, prefix))
}

/// The node's pod CIDRs (`podCIDRs`, or the legacy single `podCIDR`).
pub fn node_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    let list = spec
        .and_then(|s| s.pod_cidrs.clone())
        .filter(|l| !l.is_empty());
    list.or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]))
        .unwrap_or_default()
}

/// What to do for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// It already has a CIDR (or is going away).
    Keep,
    /// Give it this block.
    Assign(u32),
    /// Every block is taken.
    Exhausted,
}

/// Decides the allocation of `node`, with `used` the blocks held by every node and in flight.
pub fn decide(node: &Node, set: &CidrSet, used: &HashSet<u32>, cursor: u32) -> Allocation {
    if !node_cidrs(node).is_empty() || node.metadata.deletion_timestamp.is_some() {
        return Allocation::Keep;
    }
    match set.next_free(used, cursor) {
        Some(index) => Allocation::Assign(index),
        None => Allocation::Exhausted,
    }
}

#[derive(Default)]
struct Allocator {
    /// Node name → block assigned but not yet seen in the cache.
    in_flight: HashMap<String, u32>,
    cursor: u32,
    /// Nodes already told the range is exhausted (one event each, as upstream's dedup would).
    reported: HashSet<String>,
}

struct Context {
    client: Client,
    set: CidrSet,
    nodes: Store<Node>,
    allocator: Mutex<Allocator>,
}

fn used_blocks(set: &CidrSet, nodes: &Store<Node>, allocator: &mut Allocator) -> HashSet<u32> {
    let mut used = HashSet::new();
    let mut present = HashSet::new();
    for node in nodes.state() {
        present.insert(node.name_any());
        for cidr in node_cidrs(&node) {
            if let Some(index) = set.index_of(&cidr) {
                used.insert(index);
            }
        }
        if !node_cidrs(&node).is_empty() {
            allocator.in_flight.remove(&node.name_any());
        }
    }
    allocator.in_flight.retain(|name, _| present.contains(name));
    used.extend(allocator.in_flight.values().copied());
    used
}

async fn sync(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Every node must be known before the first allocation: the used set comes from them.
    let _ = ctx.nodes.wait_until_ready().await;
    let name = node.name_any();
    let allocation = {
        let mut allocator = ctx.allocator.lock().unwrap_or_else(|e| e.into_inner());
        if !node_cidrs(&node).is_empty() {
            allocator.in_flight.remove(&name);
            return Ok(Action::await_change());
        }
        if allocator.in_flight.contains_key(&name) {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        let used = used_blocks(&ctx.set, &ctx.nodes, &mut allocator);
        let allocation = decide(&node, &ctx.set, &used, allocator.cursor);
        match allocation {
            Allocation::Assign(index) => {
                allocator.in_flight.insert(name.clone(), index);
                allocator.cursor = (index + 1) % ctx.set.len();
                allocator.reported.remove(&name);
            }
            Allocation::Exhausted if !allocator.reported.insert(name.clone()) => {
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
            _ => {}
        }
        allocation
    };
    match allocation {
        Allocation::Keep => Ok(Action::await_change()),
        Allocation::Exhausted => {
            let event = EventSpec::normal(
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            );
            emit_event(
                &ctx.client,
                &object_reference(node.as_ref()),
                &event,
                COMPONENT,
            )
            .await;
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        Allocation::Assign(index) => {
            let cidr = ctx.set.block(index);
            let api: Api<Node> = Api::all(ctx.client.clone());
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            });
            let result = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            if result.is_err() {
                ctx.allocator
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .in_flight
                    .remove(&name);
            }
            match result {
                Ok(_) => Ok(Action::await_change()),
                Err(e) if api_error_code(&e) == Some(404) => Ok(Action::await_change()),
                Err(e) if api_error_code(&e) == Some(409) => {
                    Ok(Action::requeue(Duration::from_millis(200)))
                }
                Err(e) => {
                    let event = EventSpec::normal(
                        "CIDRAssignmentFailed",
                        format!("Node {name} status is now: CIDRAssignmentFailed"),
                    );
                    emit_event(
                        &ctx.client,
                        &object_reference(node.as_ref()),
                        &event,
                        COMPONENT,
                    )
                    .await;
                    Err(e.into())
                }
            }
        }
    }
}

/// Runs the allocator until the watch ends. Fails at once on an invalid cluster CIDR.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let Some(ipam) = options.node_ipam.clone() else {
        return Ok(());
    };
    let set = CidrSet::new(&ipam.cluster_cidr, ipam.node_cidr_mask_size)
        .map_err(|e| anyhow::anyhow!(e))?;
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let context = Arc::new(Context {
        client,
        set,
        nodes: controller.store(),
        allocator: Mutex::default(),
    });
    controller
        // One allocation at a time: the used set is read and extended under one lock anyway.
        .with_config(kube::runtime::controller::Config::default().concurrency(1))
        .run(
            sync,
            |_, error, _| {
                tracing::warn!(%error, "pod CIDR allocation failed");
                Action::requeue(Duration::from_secs(5))
            },
            context,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(cidr: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(String::from),
                pod_cidrs: cidr.map(|c| vec![c.to_string()]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn default_range_has_256_blocks_of_24() {
        let set = CidrSet::new(DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_CIDR_MASK_SIZE).unwrap();
        assert_eq!(set.len(), 256);
        assert_eq!(set.block(0), "10.42.0.0/24");
        assert_eq!(set.block(255), "10.42.255.0/24");
        assert_eq!(set.index_of("10.42.7.0/24"), Some(7));
        assert_eq!(set.index_of("10.42.7.5/24"), None);
        assert_eq!(set.index_of("10.43.0.0/24"), None);
        assert_eq!(set.index_of("10.42.0.0/25"), None);
    }

    #[test]
    fn invalid_ranges_are_refused() {
        assert!(CidrSet::new("10.42.0.0/16", 8).is_err());
        assert!(CidrSet::new("10.0.0.0/8", 28).is_err());
        assert!(CidrSet::new("fd00::/48", 64).is_err());
        assert!(CidrSet::new("10.42.0.0", 24).is_err());
        // Host bits in the cluster CIDR are ignored, as upstream's ParseCIDR does.
        assert_eq!(
            CidrSet::new("10.42.3.4/16", 24).unwrap().block(1),
            "10.42.1.0/24"
        );
    }

    #[test]
    fn nodes_with_a_cidr_keep_it_and_others_get_the_next_free_block() {
        let set = CidrSet::new("10.42.0.0/16", 24).unwrap();
        let used = HashSet::from([0, 1, 3]);
        assert_eq!(
            decide(&node(Some("10.42.9.0/24")), &set, &used, 0),
            Allocation::Keep
        );
        assert_eq!(decide(&node(None), &set, &used, 0), Allocation::Assign(2));
        assert_eq!(decide(&node(None), &set, &used, 3), Allocation::Assign(4));
        // Round robin wraps around.
        assert_eq!(
            decide(&node(None), &set, &used, 255),
            Allocation::Assign(255)
        );
        let almost: HashSet<u32> = (1..256).collect();
        assert_eq!(
            decide(&node(None), &set, &almost, 200),
            Allocation::Assign(0)
        );
    }

    #[test]
    fn a_full_range_is_exhausted() {
        let set = CidrSet::new("10.42.0.0/30", 31).unwrap();
        assert_eq!(set.len(), 2);
        let used = HashSet::from([0, 1]);
        assert_eq!(decide(&node(None), &set, &used, 0), Allocation::Exhausted);
    }

    #[test]
    fn legacy_single_pod_cidr_counts() {
        let mut n = node(None);
        n.spec.as_mut().unwrap().pod_cidr = Some("10.42.4.0/24".into());
        assert_eq!(node_cidrs(&n), ["10.42.4.0/24"]);
    }
}
