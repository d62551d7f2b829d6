//! The seam between the networking logic and the kernel.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::{NetError, PodNamespaces};

/// What kind of network link an existing interface is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// One end of a veth pair.
    Veth,
    /// Anything else (the kernel's `IFLA_INFO_KIND`, or empty when it has none).
    Other(String),
}

/// How the pod end of a veth pair is to be set up inside the pod's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterface {
    /// The name the link has when it arrives in the namespace.
    pub current_name: String,
    /// The name it gets there (`eth0`).
    pub name: String,
    /// Address and prefix length of the pod.
    pub address: Ipv4Net,
    /// Next hop of the default route (the bridge's address).
    pub gateway: Ipv4Addr,
    /// MTU of the link.
    pub mtu: u32,
}

/// Every kernel operation this crate performs, one method each.
///
/// The logic in [`crate::PodNetwork`] (idempotency, naming, IPAM, cleanup order) only talks to
/// the kernel through this trait, so it can be unit-tested without root against
/// [`crate::FakeKernel`]; [`crate::LinuxKernel`] is the real implementation. Implementations
/// perform exactly the one change asked for; deciding whether it is needed is the caller's job,
/// except that deletions of absent objects succeed (so teardown is idempotent).
pub trait NetKernel: Send + Sync {
    /// Kind of the link `name` in the host namespace, `None` if there is no such link.
    fn link_kind(&self, name: &str) -> Result<Option<LinkKind>, NetError>;
    /// Creates a bridge with the given MTU.
    fn create_bridge(&self, name: &str, mtu: u32) -> Result<(), NetError>;
    /// IPv4 addresses (with prefix length) on host link `name`.
    fn link_addresses(&self, name: &str) -> Result<Vec<Ipv4Net>, NetError>;
    /// Adds an IPv4 address to host link `name`.
    fn add_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError>;
    /// Sets host link `name` administratively up.
    fn set_link_up(&self, name: &str) -> Result<(), NetError>;
    /// Deletes host link `name` (for a veth, both ends go). Succeeds if it does not exist.
    fn delete_link(&self, name: &str) -> Result<(), NetError>;
    /// Sets `net.ipv4.ip_forward=1`.
    fn enable_ip_forward(&self) -> Result<(), NetError>;
    /// Destinations of the blackhole routes in the host's main routing table.
    fn blackhole_routes(&self) -> Result<Vec<Ipv4Net>, NetError>;
    /// Adds a blackhole route for `destination` to the main table.
    fn add_blackhole_route(&self, destination: Ipv4Net) -> Result<(), NetError>;
    /// Deletes the blackhole route for `destination`. Succeeds if it does not exist.
    fn delete_blackhole_route(&self, destination: Ipv4Net) -> Result<(), NetError>;
    /// Creates a veth pair `host` <-> `peer`, both in the host namespace, with the given MTU.
    fn create_veth(&self, host: &str, peer: &str, mtu: u32) -> Result<(), NetError>;
    /// Enslaves host link `name` to `bridge`.
    fn set_link_master(&self, name: &str, bridge: &str) -> Result<(), NetError>;
    /// Moves host link `name` into the network namespace bind-mounted at `netns`.
    fn move_link_to_netns(&self, name: &str, netns: &Path) -> Result<(), NetError>;
    /// Inside namespace `netns`: renames, addresses and raises the pod's interface and adds the
    /// default route through the gateway.
    fn configure_pod_interface(
        &self,
        netns: &Path,
        interface: &PodInterface,
    ) -> Result<(), NetError>;
    /// Creates fresh net, ipc and uts namespaces, bind-mounts them on the (not yet existing)
    /// files named in `namespaces`, sets `hostname` in the uts namespace and brings `lo` up in
    /// the net namespace. The parent directory exists.
    fn create_pod_namespaces(
        &self,
        namespaces: &PodNamespaces,
        hostname: &str,
    ) -> Result<(), NetError>;
    /// Whether `path` is a live namespace bind mount.
    fn is_namespace_file(&self, path: &Path) -> Result<bool, NetError>;
    /// Unmounts (if mounted) and deletes (if present) a namespace file.
    fn remove_namespace_file(&self, path: &Path) -> Result<(), NetError>;
}
