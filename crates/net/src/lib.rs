//! Single-node pod networking for the Timonel node agent.
//!
//! Every pod gets its own network, IPC and UTS namespaces and one IPv4 address from the node's
//! pod CIDR. All pods hang off one Linux bridge on the host, whose address is the first host of
//! the pod CIDR and is every pod's default gateway:
//!
//! ```text
//!   host ns:   timonel0 (bridge, 10.42.0.1/24) ── timonel1a2b3c4d (veth) ─┐
//!   pod ns:                                            eth0 10.42.0.7/24 ─┘  default via 10.42.0.1
//! ```
//!
//! # Invariants
//!
//! * **Naming.** Every object this crate creates on the host is named `timonel…`: the bridge
//!   (from [`NetConfig::bridge`]), each pod's host-side veth `timonel` + 8 hex digits of the
//!   SHA-256 of the pod id (15 characters, the kernel's limit), and the transient peer name
//!   `timonelp` + 7 hex digits used between creating the pair and moving its end into the pod.
//!   The crate only ever deletes links whose names it derives from its own configuration and
//!   state; it never scans for or touches other interfaces, never changes the host's default
//!   route and never touches iptables/nftables. Besides the bridge's connected route, the only
//!   host routes it adds are one `blackhole` route per [`NetConfig::blackhole_cidrs`] entry, so a
//!   packet for a cluster address that no local pod holds is dropped instead of leaving the
//!   machine through the default route.
//! * **Idempotency.** Every operation can be repeated, in particular after an agent restart:
//!   [`PodNetwork::ensure_host`] only adds what is missing, [`PodNetwork::create_namespaces`] and
//!   [`PodNetwork::attach`] return what already exists unchanged, and
//!   [`PodNetwork::teardown`]/[`PodNetwork::reset`] succeed when there is nothing to remove. A
//!   half-done `create_namespaces` or `attach` (crash in the middle) is detected and redone from
//!   scratch on the next call.
//! * **State.** Everything needed to find what was created survives restarts on disk:
//!   `state_dir/ipam/<ip>` holds the pod id owning `<ip>` (created `O_CREAT|O_EXCL`, like CNI
//!   host-local), `state_dir/ipam/last_reserved` makes allocation round-robin, and
//!   `state_dir/attached/<pod id>` records a completed attach. The namespaces are bind mounts at
//!   `netns_dir/<pod id>/{net,ipc,uts}`, so they outlive the agent process.
//! * **Threads.** Namespace changes (`unshare`, `setns`) only ever happen on short-lived
//!   dedicated `std::thread`s, never on the caller's thread, so async runtime workers never end
//!   up in a pod namespace. All methods block (netlink round trips, file I/O); call them from
//!   `spawn_blocking` or a plain thread. [`PodNetwork`] is `Send + Sync` and serialises its
//!   operations internally.
//!
//! Kernel access sits behind [`NetKernel`]: [`LinuxKernel`] talks rtnetlink and uses `nix` for
//! namespaces and needs root (`CAP_NET_ADMIN` + `CAP_SYS_ADMIN`); [`FakeKernel`] is an
//! in-memory model for tests of the logic.
//!
//! # Use from the node agent
//!
//! ```no_run
//! # fn main() -> Result<(), timonel_net::NetError> {
//! use timonel_net::{NetConfig, PodNetwork};
//!
//! let net = PodNetwork::linux(NetConfig {
//!     bridge: "timonel0".into(),
//!     pod_cidr: "10.42.0.0/24".parse().unwrap(),
//!     blackhole_cidrs: vec!["10.42.0.0/16".parse().unwrap(), "10.43.0.0/16".parse().unwrap()],
//!     state_dir: "/var/lib/timonel/net".into(),
//!     netns_dir: "/run/timonel/netns".into(),
//!     mtu: 1500,
//! })?;
//! net.ensure_host()?; // at every start
//! let running: Vec<String> = vec![]; // pod UIDs the agent still wants
//! for stale in net.known_pods()?.into_iter().filter(|p| !running.contains(p)) {
//!     net.teardown(&stale)?;
//! }
//! // Per pod, before starting its containers (which join the namespace files):
//! let ns = net.create_namespaces("3f0c1a9e-pod-uid", "my-pod")?;
//! let address = net.attach("3f0c1a9e-pod-uid", &ns.net)?; // address.ip is status.podIP
//! // When the pod is gone:
//! net.teardown("3f0c1a9e-pod-uid")?;
//! # let _ = address;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod fake;
mod ipam;
mod kernel;
mod linux;
mod ns;

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

pub use fake::{FakeKernel, FakeLink, FakeState};
pub use kernel::{LinkKind, NetKernel, PodInterface};
pub use linux::LinuxKernel;
pub use ns::{NsKind, connect_in_netns, run_in_namespace, run_in_netns};

use ipam::{Ipam, remove_file_if_present};

/// Name of the pod's interface inside its network namespace.
pub const POD_INTERFACE: &str = "eth0";
/// Prefix of every host object this crate creates.
pub const NAME_PREFIX: &str = "timonel";
/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
const IFNAME_MAX: usize = 15;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The [`NetConfig`] cannot work (bad names, a CIDR too small, ...).
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// A pod id or hostname that cannot be used (pod ids become file names).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Every assignable address of the pod CIDR is taken.
    #[error("pod CIDR {cidr} is exhausted: every assignable address is allocated")]
    Exhausted {
        /// The exhausted CIDR.
        cidr: Ipv4Net,
    },
    /// A host object with one of our names exists but is not what we would have created.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A file system or system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A netlink request failed.
    #[error("netlink: {context}: {message}")]
    Netlink {
        /// What was being done.
        context: String,
        /// The kernel's (or rtnetlink's) error.
        message: String,
        /// The errno, when the kernel sent one.
        errno: Option<i32>,
    },
}

/// Configuration of the node's pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Name of the node bridge; must start with `timonel` ("timonel0" in production).
    pub bridge: String,
    /// The node's pod CIDR, e.g. 10.42.0.0/24; the gateway is its first host (.1), which is
    /// put on the bridge. At most a /30.
    pub pod_cidr: Ipv4Net,
    /// CIDRs that get a host `blackhole` route each (cluster CIDR 10.42.0.0/16 and service CIDR
    /// 10.43.0.0/16 in production), so nothing addressed to a cluster address leaves the machine.
    pub blackhole_cidrs: Vec<Ipv4Net>,
    /// Where IPAM and bookkeeping state is persisted, e.g. `<agent data dir>/net`.
    pub state_dir: PathBuf,
    /// Where namespace files are bind-mounted, e.g. `/run/timonel/netns`.
    pub netns_dir: PathBuf,
    /// MTU of the bridge and of both ends of every veth (1500).
    pub mtu: u32,
}

/// The persistent namespace files of one pod, ready to be joined with `setns()` (e.g. by the
/// container runtime via the OCI spec's namespace `path`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodNamespaces {
    /// Network namespace file.
    pub net: PathBuf,
    /// IPC namespace file.
    pub ipc: PathBuf,
    /// UTS namespace file.
    pub uts: PathBuf,
}

impl PodNamespaces {
    /// The files under `dir`: `dir/net`, `dir/ipc`, `dir/uts`.
    pub fn in_dir(dir: &Path) -> Self {
        PodNamespaces {
            net: dir.join(NsKind::Net.proc_name()),
            ipc: dir.join(NsKind::Ipc.proc_name()),
            uts: dir.join(NsKind::Uts.proc_name()),
        }
    }

    /// The file of namespace type `kind`.
    pub fn get(&self, kind: NsKind) -> &Path {
        match kind {
            NsKind::Net => &self.net,
            NsKind::Ipc => &self.ipc,
            NsKind::Uts => &self.uts,
        }
    }
}

/// A pod's place on the node network.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodAddress {
    /// The pod's IP (on its `eth0`).
    pub ip: Ipv4Addr,
    /// Prefix length of the pod CIDR.
    pub prefix_len: u8,
    /// The pod's default gateway, the bridge's address.
    pub gateway: Ipv4Addr,
    /// Name of the host end of the pod's veth pair.
    pub host_veth: String,
}

/// The node's pod network: host setup plus per-pod namespaces and addresses.
///
/// Generic over the kernel so its logic can be tested with [`FakeKernel`].
pub struct PodNetwork<K: NetKernel = LinuxKernel> {
    kernel: K,
    config: NetConfig,
    ipam: Ipam,
    /// Serialises all operations of this process (IPAM lookups + allocations, link creation).
    lock: Mutex<()>,
}

/// Host-side veth name of a pod: `timonel` + 8 hex digits of SHA-256(pod id).
pub fn host_veth_name(pod_id: &str) -> String {
    format!("{NAME_PREFIX}{}", &hash_hex(pod_id)[..8])
}

/// Transient name of the pod end while it is still in the host namespace. `p` is not a hex
/// digit, so this can never equal a [`host_veth_name`].
fn peer_temp_name(pod_id: &str) -> String {
    format!("{NAME_PREFIX}p{}", &hash_hex(pod_id)[..7])
}

fn hash_hex(pod_id: &str) -> String {
    hex::encode(Sha256::digest(pod_id.as_bytes()))
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let context = context.into();
    move |source| NetError::Io { context, source }
}

/// Pod ids name files and directories, so only a safe alphabet is accepted (UIDs fit).
fn validate_pod_id(pod_id: &str) -> Result<(), NetError> {
    let ok = !pod_id.is_empty()
        && pod_id.len() <= 253
        && pod_id != "."
        && pod_id != ".."
        && pod_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidArgument(format!(
            "pod id {pod_id:?} must be 1-253 characters of [A-Za-z0-9._-]"
        )))
    }
}

fn validate_hostname(hostname: &str) -> Result<(), NetError> {
    if hostname.is_empty() || hostname.len() > 64 || hostname.contains('\0') {
        return Err(NetError::InvalidArgument(format!(
            "hostname {hostname:?} must be 1-64 bytes without NUL"
        )));
    }
    Ok(())
}

fn validate_config(config: &NetConfig) -> Result<(), NetError> {
    let bridge = &config.bridge;
    if !bridge.starts_with(NAME_PREFIX) || bridge.len() > IFNAME_MAX {
        return Err(NetError::Config(format!(
            "bridge name {bridge:?} must start with {NAME_PREFIX:?} and be at most {IFNAME_MAX} characters"
        )));
    }
    if !bridge
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(NetError::Config(format!(
            "bridge name {bridge:?} has invalid characters"
        )));
    }
    // A bridge named like a pod veth would be deleted by that pod's teardown.
    if bridge.len() == IFNAME_MAX
        && bridge[NAME_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'p')
    {
        return Err(NetError::Config(format!(
            "bridge name {bridge:?} collides with the pod veth naming scheme"
        )));
    }
    if config.pod_cidr.prefix_len() > 30 {
        return Err(NetError::Config(format!(
            "pod CIDR {} is too small: at least a /30 is needed",
            config.pod_cidr
        )));
    }
    if config.pod_cidr != config.pod_cidr.trunc() {
        return Err(NetError::Config(format!(
            "pod CIDR {} has host bits set (did you mean {}?)",
            config.pod_cidr,
            config.pod_cidr.trunc()
        )));
    }
    if !(68..=65535).contains(&config.mtu) {
        return Err(NetError::Config(format!("MTU {} out of range", config.mtu)));
    }
    Ok(())
}

impl PodNetwork<LinuxKernel> {
    /// The real thing: talks to the Linux kernel. Needs root to do anything.
    pub fn linux(config: NetConfig) -> Result<Self, NetError> {
        Self::with_kernel(LinuxKernel::new(), config)
    }
}

impl<K: NetKernel> PodNetwork<K> {
    /// Builds a pod network on `kernel`. Validates the configuration and removes IPAM files a
    /// crash left empty; does not touch the kernel.
    pub fn with_kernel(kernel: K, config: NetConfig) -> Result<Self, NetError> {
        validate_config(&config)?;
        let ipam = Ipam::new(config.state_dir.join("ipam"), config.pod_cidr);
        ipam.remove_empty()?;
        Ok(PodNetwork {
            kernel,
            config,
            ipam,
            lock: Mutex::new(()),
        })
    }

    /// The kernel this network runs on (tests inspect a [`FakeKernel`] through it).
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The bridge's address, every pod's default gateway: the first host of the pod CIDR.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.config.pod_cidr.network()) + 1)
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pod_dir(&self, pod_id: &str) -> PathBuf {
        self.config.netns_dir.join(pod_id)
    }

    fn attached_marker(&self, pod_id: &str) -> PathBuf {
        self.config.state_dir.join("attached").join(pod_id)
    }

    /// Idempotent: bridge exists and is up with gateway/prefix, net.ipv4.ip_forward=1, blackhole
    /// routes present. Only adds what is missing, so it is cheap to call at every agent start.
    pub fn ensure_host(&self) -> Result<(), NetError> {
        let _guard = self.guard();
        let bridge = &self.config.bridge;
        match self.kernel.link_kind(bridge)? {
            None => self.kernel.create_bridge(bridge, self.config.mtu)?,
            Some(LinkKind::Bridge) => {}
            Some(other) => {
                return Err(NetError::Conflict(format!(
                    "link {bridge} exists but is a {other:?}, not a bridge"
                )));
            }
        }
        let gateway = Ipv4Net::new(self.gateway(), self.config.pod_cidr.prefix_len())
            .expect("prefix length comes from a valid Ipv4Net");
        if !self.kernel.link_addresses(bridge)?.contains(&gateway) {
            self.kernel.add_address(bridge, gateway)?;
        }
        self.kernel.set_link_up(bridge)?;
        self.kernel.enable_ip_forward()?;
        let present = self.kernel.blackhole_routes()?;
        for cidr in &self.config.blackhole_cidrs {
            if !present.contains(&cidr.trunc()) {
                self.kernel.add_blackhole_route(cidr.trunc())?;
            }
        }
        Ok(())
    }

    /// Idempotent per pod_id (the pod UID). Creates persistent net, ipc and uts namespaces as
    /// files `<netns_dir>/<pod_id>/{net,ipc,uts}` (bind mounts of `/proc/thread-self/ns/*` made
    /// from a dedicated std::thread that unshare()s, so the async runtime's threads are never
    /// moved), sets the hostname inside the UTS namespace, brings `lo` up inside the net
    /// namespace. If they already exist (agent restart) returns the existing ones unchanged; if
    /// only some exist (crash while creating) they are removed and all three made anew.
    pub fn create_namespaces(
        &self,
        pod_id: &str,
        hostname: &str,
    ) -> Result<PodNamespaces, NetError> {
        validate_pod_id(pod_id)?;
        validate_hostname(hostname)?;
        let _guard = self.guard();
        let dir = self.pod_dir(pod_id);
        let namespaces = PodNamespaces::in_dir(&dir);
        let mut complete = true;
        for kind in NsKind::ALL {
            complete &= self.kernel.is_namespace_file(namespaces.get(kind))?;
        }
        if complete {
            return Ok(namespaces);
        }
        self.remove_namespace_files(&namespaces)?;
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        if let Err(e) = self.kernel.create_pod_namespaces(&namespaces, hostname) {
            let _ = self.remove_namespace_files(&namespaces);
            return Err(e);
        }
        Ok(namespaces)
    }

    fn remove_namespace_files(&self, namespaces: &PodNamespaces) -> Result<(), NetError> {
        for kind in NsKind::ALL {
            self.kernel.remove_namespace_file(namespaces.get(kind))?;
        }
        Ok(())
    }

    fn address(&self, ip: Ipv4Addr, pod_id: &str) -> PodAddress {
        PodAddress {
            ip,
            prefix_len: self.config.pod_cidr.prefix_len(),
            gateway: self.gateway(),
            host_veth: host_veth_name(pod_id),
        }
    }

    /// Idempotent per pod_id: allocates an IP (persisted), creates a veth pair whose host end
    /// (name `timonel` + 8 hex chars of a hash of pod_id, ≤15 chars) joins the bridge and whose
    /// other end becomes `eth0` in the pod's net namespace with the address and a default route
    /// via the gateway. Called again after an agent restart it returns the same address,
    /// touching nothing. A half-done earlier attempt (no completion record, or its host veth
    /// gone) is undone and redone, keeping the address.
    ///
    /// `netns` is the pod's network namespace file, normally [`PodNamespaces::net`].
    /// [`PodNetwork::ensure_host`] must have run first (the bridge must exist).
    pub fn attach(&self, pod_id: &str, netns: &Path) -> Result<PodAddress, NetError> {
        validate_pod_id(pod_id)?;
        let _guard = self.guard();
        let ip = self.ipam.allocate(pod_id)?;
        let address = self.address(ip, pod_id);
        let host = &address.host_veth;
        let peer = peer_temp_name(pod_id);
        let marker = self.attached_marker(pod_id);
        let recorded = fs::read_to_string(&marker)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let host_kind = self.kernel.link_kind(host)?;
        if recorded == Some(ip) && host_kind == Some(LinkKind::Veth) {
            return Ok(address);
        }
        // Not (completely) attached: start from a clean slate, deleting only our own names.
        if let Some(other) = self.other_owner_of_veth(pod_id)? {
            return Err(NetError::Conflict(format!(
                "pods {pod_id} and {other} hash to the same veth name {host}"
            )));
        }
        remove_file_if_present(&marker)?;
        if host_kind.is_some() {
            self.kernel.delete_link(host)?;
        }
        if self.kernel.link_kind(&peer)?.is_some() {
            self.kernel.delete_link(&peer)?;
        }
        let result = self.plumb(&address, &peer, netns);
        if let Err(e) = result {
            let _ = self.kernel.delete_link(host);
            let _ = self.kernel.delete_link(&peer);
            return Err(e);
        }
        let attached_dir = self.config.state_dir.join("attached");
        fs::create_dir_all(&attached_dir)
            .map_err(io_err(format!("creating {}", attached_dir.display())))?;
        let tmp = attached_dir.join(format!(".{pod_id}.tmp"));
        fs::write(&tmp, ip.to_string())
            .and_then(|()| fs::rename(&tmp, &marker))
            .map_err(io_err(format!("writing {}", marker.display())))?;
        Ok(address)
    }

    fn plumb(&self, address: &PodAddress, peer: &str, netns: &Path) -> Result<(), NetError> {
        let host = &address.host_veth;
        let mtu = self.config.mtu;
        self.kernel.create_veth(host, peer, mtu)?;
        self.kernel.set_link_master(host, &self.config.bridge)?;
        self.kernel.set_link_up(host)?;
        self.kernel.move_link_to_netns(peer, netns)?;
        let interface = PodInterface {
            current_name: peer.to_string(),
            name: POD_INTERFACE.to_string(),
            address: Ipv4Net::new(address.ip, address.prefix_len)
                .expect("prefix length comes from a valid Ipv4Net"),
            gateway: address.gateway,
            mtu,
        };
        self.kernel.configure_pod_interface(netns, &interface)
    }

    /// The address of `pod_id` if it is completely attached, without changing anything (for
    /// reporting `status.podIP` after a restart before deciding to re-run the pod).
    pub fn pod_address(&self, pod_id: &str) -> Result<Option<PodAddress>, NetError> {
        validate_pod_id(pod_id)?;
        let _guard = self.guard();
        let Some(ip) = self.ipam.lookup(pod_id)? else {
            return Ok(None);
        };
        let marker = self.attached_marker(pod_id);
        let recorded: Option<Ipv4Addr> = fs::read_to_string(&marker)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let address = self.address(ip, pod_id);
        if recorded == Some(ip)
            && self.kernel.link_kind(&address.host_veth)? == Some(LinkKind::Veth)
        {
            Ok(Some(address))
        } else {
            Ok(None)
        }
    }

    /// The namespace files of `pod_id` if all three are live, without changing anything.
    pub fn pod_namespaces(&self, pod_id: &str) -> Result<Option<PodNamespaces>, NetError> {
        validate_pod_id(pod_id)?;
        let _guard = self.guard();
        let namespaces = PodNamespaces::in_dir(&self.pod_dir(pod_id));
        for kind in NsKind::ALL {
            if !self.kernel.is_namespace_file(namespaces.get(kind))? {
                return Ok(None);
            }
        }
        Ok(Some(namespaces))
    }

    /// Removes the veth, releases the IP, unmounts and deletes the namespace files. Idempotent:
    /// whatever is already gone is skipped.
    pub fn teardown(&self, pod_id: &str) -> Result<(), NetError> {
        validate_pod_id(pod_id)?;
        let _guard = self.guard();
        self.teardown_locked(pod_id)
    }

    /// Another attached pod whose veth name equals `pod_id`'s (a 32-bit hash collision: rare,
    /// but deleting a stranger's veth would cut that pod off).
    fn other_owner_of_veth(&self, pod_id: &str) -> Result<Option<String>, NetError> {
        let name = host_veth_name(pod_id);
        let dir = self.config.state_dir.join("attached");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(format!("reading {}", dir.display()))(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
            if let Some(other) = entry.file_name().to_str()
                && other != pod_id
                && !other.starts_with('.')
                && host_veth_name(other) == name
            {
                return Ok(Some(other.to_string()));
            }
        }
        Ok(None)
    }

    fn teardown_locked(&self, pod_id: &str) -> Result<(), NetError> {
        let mut names = vec![peer_temp_name(pod_id)];
        if self.other_owner_of_veth(pod_id)?.is_none() {
            names.push(host_veth_name(pod_id));
        }
        for name in names {
            if self.kernel.link_kind(&name)?.is_some() {
                self.kernel.delete_link(&name)?;
            }
        }
        remove_file_if_present(&self.attached_marker(pod_id))?;
        self.ipam.release(pod_id)?;
        let dir = self.pod_dir(pod_id);
        self.remove_namespace_files(&PodNamespaces::in_dir(&dir))?;
        match fs::remove_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("removing {}", dir.display()))(e)),
        }
    }

    /// Pods (pod_id) that currently hold namespaces or addresses, for garbage collection at
    /// start: the agent tears down those it no longer runs. Sorted, without duplicates.
    pub fn known_pods(&self) -> Result<Vec<String>, NetError> {
        let _guard = self.guard();
        self.known_pods_locked()
    }

    fn known_pods_locked(&self) -> Result<Vec<String>, NetError> {
        let mut pods: Vec<String> = self
            .ipam
            .allocations()?
            .into_iter()
            .map(|(_, owner)| owner)
            .filter(|owner| validate_pod_id(owner).is_ok())
            .collect();
        for dir in [
            self.config.netns_dir.clone(),
            self.config.state_dir.join("attached"),
        ] {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(format!("reading {}", dir.display()))(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
                if let Some(name) = entry.file_name().to_str()
                    && !name.starts_with('.')
                    && validate_pod_id(name).is_ok()
                {
                    pods.push(name.to_string());
                }
            }
        }
        pods.sort();
        pods.dedup();
        Ok(pods)
    }

    /// Removes everything this crate ever created on the host: all pods' veths and namespace
    /// files, the bridge, the blackhole routes, the state dir (and the netns dir if that is then
    /// empty). Used by `timonel reset`. `net.ipv4.ip_forward` is left as it is, since its value
    /// before [`PodNetwork::ensure_host`] is not known.
    pub fn reset(&self) -> Result<(), NetError> {
        let _guard = self.guard();
        for pod_id in self.known_pods_locked()? {
            self.teardown_locked(&pod_id)?;
        }
        let bridge = &self.config.bridge;
        match self.kernel.link_kind(bridge)? {
            None => {}
            Some(LinkKind::Bridge) => self.kernel.delete_link(bridge)?,
            Some(other) => {
                return Err(NetError::Conflict(format!(
                    "link {bridge} is a {other:?}, not our bridge; left alone"
                )));
            }
        }
        let present = self.kernel.blackhole_routes()?;
        for cidr in &self.config.blackhole_cidrs {
            if present.contains(&cidr.trunc()) {
                self.kernel.delete_blackhole_route(cidr.trunc())?;
            }
        }
        match fs::remove_dir_all(&self.config.state_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io_err(format!(
                    "removing {}",
                    self.config.state_dir.display()
                ))(e));
            }
        }
        // Only if empty: something else may share it.
        let _ = fs::remove_dir(&self.config.netns_dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
