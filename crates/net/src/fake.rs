//! An in-memory [`NetKernel`] for tests that cannot (or should not) use root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::Ipv4Net;

use crate::{LinkKind, NetError, NetKernel, NsKind, PodInterface, PodNamespaces};

/// A link as the fake kernel models it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLink {
    /// Current name.
    pub name: String,
    /// Bridge or veth.
    pub kind: LinkKind,
    /// Administratively up.
    pub up: bool,
    /// Bridge it is enslaved to.
    pub master: Option<String>,
    /// IPv4 addresses.
    pub addresses: Vec<Ipv4Net>,
    /// MTU.
    pub mtu: u32,
    /// For a veth end: the other end's name at creation time.
    pub peer: Option<String>,
}

/// Everything the fake kernel holds; [`FakeKernel::state`] returns a snapshot.
#[derive(Debug, Clone, Default)]
pub struct FakeState {
    /// Links in the host namespace, by name.
    pub links: BTreeMap<String, FakeLink>,
    /// Links inside pod network namespaces, by namespace file.
    pub pod_links: BTreeMap<PathBuf, Vec<FakeLink>>,
    /// Default gateway inside pod network namespaces, by namespace file.
    pub pod_default_routes: BTreeMap<PathBuf, Ipv4Addr>,
    /// Pod network namespaces whose `lo` is up.
    pub lo_up: BTreeSet<PathBuf>,
    /// Hostname of each UTS namespace file.
    pub hostnames: BTreeMap<PathBuf, String>,
    /// Live namespace bind mounts.
    pub namespaces: BTreeSet<PathBuf>,
    /// Blackhole routes in the host's main table.
    pub blackholes: Vec<Ipv4Net>,
    /// `net.ipv4.ip_forward`.
    pub ip_forward: bool,
    /// Every mutating call, in order, as `op name` (e.g. `create_veth timonel1234abcd`).
    pub calls: Vec<String>,
    /// The next call of this operation (method name) fails once.
    pub fail_on: Option<String>,
}

/// In-memory model of the kernel objects this crate manages. Clones share state, so a test can
/// keep one clone to inspect while a [`crate::PodNetwork`] owns another. Namespace files are
/// created and removed for real (as empty files), so the directory logic is exercised too.
#[derive(Debug, Clone, Default)]
pub struct FakeKernel {
    state: Arc<Mutex<FakeState>>,
}

fn fake_err(op: &str, message: impl Into<String>) -> NetError {
    NetError::Netlink {
        context: op.to_string(),
        message: message.into(),
        errno: None,
    }
}

impl FakeKernel {
    /// An empty kernel: no links, no routes, ip_forward off.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the state.
    pub fn state(&self) -> FakeState {
        self.lock().clone()
    }

    /// Makes the next call of method `op` fail (once), to test recovery from partial work.
    pub fn fail_next(&self, op: &str) {
        self.lock().fail_on = Some(op.to_string());
    }

    /// Adds a link that this crate did not create (to check it is left alone).
    pub fn add_foreign_link(&self, name: &str, kind: LinkKind) {
        self.lock().links.insert(
            name.to_string(),
            FakeLink {
                name: name.to_string(),
                kind,
                up: true,
                master: None,
                addresses: Vec::new(),
                mtu: 1500,
                peer: None,
            },
        );
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks, records a mutating call and applies fault injection.
    fn call(&self, op: &str, subject: &str) -> Result<MutexGuard<'_, FakeState>, NetError> {
        let mut state = self.lock();
        if state.fail_on.as_deref() == Some(op) {
            state.fail_on = None;
            return Err(fake_err(op, "injected failure"));
        }
        state.calls.push(format!("{op} {subject}"));
        Ok(state)
    }

    fn query(&self, op: &str) -> Result<MutexGuard<'_, FakeState>, NetError> {
        let mut state = self.lock();
        if state.fail_on.as_deref() == Some(op) {
            state.fail_on = None;
            return Err(fake_err(op, "injected failure"));
        }
        Ok(state)
    }
}

fn host_link<'a>(
    state: &'a mut FakeState,
    op: &str,
    name: &str,
) -> Result<&'a mut FakeLink, NetError> {
    state
        .links
        .get_mut(name)
        .ok_or_else(|| fake_err(op, format!("no link {name}")))
}

/// Removes the veth end named `peer` wherever it is (host or any pod namespace), and any end
/// whose peer is `name`.
fn remove_veth_other_end(state: &mut FakeState, name: &str, peer: Option<&str>) {
    if let Some(peer) = peer {
        state.links.remove(peer);
    }
    state.links.retain(|_, l| l.peer.as_deref() != Some(name));
    for links in state.pod_links.values_mut() {
        links.retain(|l| l.peer.as_deref() != Some(name));
    }
}

impl NetKernel for FakeKernel {
    fn link_kind(&self, name: &str) -> Result<Option<LinkKind>, NetError> {
        Ok(self
            .query("link_kind")?
            .links
            .get(name)
            .map(|l| l.kind.clone()))
    }

    fn create_bridge(&self, name: &str, mtu: u32) -> Result<(), NetError> {
        let mut state = self.call("create_bridge", name)?;
        if state.links.contains_key(name) {
            return Err(fake_err("create_bridge", format!("{name} exists")));
        }
        state.links.insert(
            name.to_string(),
            FakeLink {
                name: name.to_string(),
                kind: LinkKind::Bridge,
                up: false,
                master: None,
                addresses: Vec::new(),
                mtu,
                peer: None,
            },
        );
        Ok(())
    }

    fn link_addresses(&self, name: &str) -> Result<Vec<Ipv4Net>, NetError> {
        let mut state = self.query("link_addresses")?;
        Ok(host_link(&mut state, "link_addresses", name)?
            .addresses
            .clone())
    }

    fn add_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError> {
        let mut state = self.call("add_address", name)?;
        let link = host_link(&mut state, "add_address", name)?;
        if link.addresses.contains(&address) {
            return Err(fake_err("add_address", "File exists"));
        }
        link.addresses.push(address);
        Ok(())
    }

    fn set_link_up(&self, name: &str) -> Result<(), NetError> {
        let mut state = self.call("set_link_up", name)?;
        host_link(&mut state, "set_link_up", name)?.up = true;
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<(), NetError> {
        let mut state = self.call("delete_link", name)?;
        if let Some(link) = state.links.remove(name) {
            remove_veth_other_end(&mut state, name, link.peer.as_deref());
            // Ports of a deleted bridge are released.
            for l in state.links.values_mut() {
                if l.master.as_deref() == Some(name) {
                    l.master = None;
                }
            }
        }
        Ok(())
    }

    fn enable_ip_forward(&self) -> Result<(), NetError> {
        self.call("enable_ip_forward", "")?.ip_forward = true;
        Ok(())
    }

    fn blackhole_routes(&self) -> Result<Vec<Ipv4Net>, NetError> {
        Ok(self.query("blackhole_routes")?.blackholes.clone())
    }

    fn add_blackhole_route(&self, destination: Ipv4Net) -> Result<(), NetError> {
        let mut state = self.call("add_blackhole_route", &destination.to_string())?;
        if state.blackholes.contains(&destination) {
            return Err(fake_err("add_blackhole_route", "File exists"));
        }
        state.blackholes.push(destination);
        Ok(())
    }

    fn delete_blackhole_route(&self, destination: Ipv4Net) -> Result<(), NetError> {
        let mut state = self.call("delete_blackhole_route", &destination.to_string())?;
        state.blackholes.retain(|d| *d != destination);
        Ok(())
    }

    fn create_veth(&self, host: &str, peer: &str, mtu: u32) -> Result<(), NetError> {
        let mut state = self.call("create_veth", host)?;
        for name in [host, peer] {
            if state.links.contains_key(name) {
                return Err(fake_err("create_veth", format!("{name} exists")));
            }
        }
        for (name, other) in [(host, peer), (peer, host)] {
            state.links.insert(
                name.to_string(),
                FakeLink {
                    name: name.to_string(),
                    kind: LinkKind::Veth,
                    up: false,
                    master: None,
                    addresses: Vec::new(),
                    mtu,
                    peer: Some(other.to_string()),
                },
            );
        }
        Ok(())
    }

    fn set_link_master(&self, name: &str, bridge: &str) -> Result<(), NetError> {
        let mut state = self.call("set_link_master", name)?;
        if state.links.get(bridge).map(|l| &l.kind) != Some(&LinkKind::Bridge) {
            return Err(fake_err("set_link_master", format!("no bridge {bridge}")));
        }
        host_link(&mut state, "set_link_master", name)?.master = Some(bridge.to_string());
        Ok(())
    }

    fn move_link_to_netns(&self, name: &str, netns: &Path) -> Result<(), NetError> {
        let mut state = self.call("move_link_to_netns", name)?;
        if !state.namespaces.contains(netns) {
            return Err(fake_err(
                "move_link_to_netns",
                format!("no namespace {}", netns.display()),
            ));
        }
        let link = state
            .links
            .remove(name)
            .ok_or_else(|| fake_err("move_link_to_netns", format!("no link {name}")))?;
        state
            .pod_links
            .entry(netns.to_path_buf())
            .or_default()
            .push(link);
        Ok(())
    }

    fn configure_pod_interface(
        &self,
        netns: &Path,
        interface: &PodInterface,
    ) -> Result<(), NetError> {
        let mut state = self.call("configure_pod_interface", &interface.current_name)?;
        let links = state.pod_links.entry(netns.to_path_buf()).or_default();
        if links.iter().any(|l| l.name == interface.name) {
            return Err(fake_err(
                "configure_pod_interface",
                format!("{} exists", interface.name),
            ));
        }
        let link = links
            .iter_mut()
            .find(|l| l.name == interface.current_name)
            .ok_or_else(|| {
                fake_err(
                    "configure_pod_interface",
                    format!("no link {}", interface.current_name),
                )
            })?;
        link.name = interface.name.clone();
        link.addresses.push(interface.address);
        link.mtu = interface.mtu;
        link.up = true;
        state
            .pod_default_routes
            .insert(netns.to_path_buf(), interface.gateway);
        Ok(())
    }

    fn create_pod_namespaces(
        &self,
        namespaces: &PodNamespaces,
        hostname: &str,
    ) -> Result<(), NetError> {
        let mut state = self.call(
            "create_pod_namespaces",
            &namespaces.net.display().to_string(),
        )?;
        for kind in NsKind::ALL {
            let path = namespaces.get(kind);
            if state.namespaces.contains(path) {
                return Err(fake_err(
                    "create_pod_namespaces",
                    format!("{} is mounted", path.display()),
                ));
            }
        }
        for kind in NsKind::ALL {
            let path = namespaces.get(kind);
            fs::write(path, b"").map_err(|source| NetError::Io {
                context: format!("creating {}", path.display()),
                source,
            })?;
            state.namespaces.insert(path.to_path_buf());
        }
        state
            .hostnames
            .insert(namespaces.uts.clone(), hostname.to_string());
        state.lo_up.insert(namespaces.net.clone());
        Ok(())
    }

    fn is_namespace_file(&self, path: &Path) -> Result<bool, NetError> {
        Ok(self.query("is_namespace_file")?.namespaces.contains(path))
    }

    fn remove_namespace_file(&self, path: &Path) -> Result<(), NetError> {
        let mut state = self.call("remove_namespace_file", &path.display().to_string())?;
        if state.namespaces.remove(path) {
            // The last reference is gone: the namespace and its links die with it, and a veth
            // end dying takes its host-side peer along.
            let dead = state.pod_links.remove(path).unwrap_or_default();
            for link in dead {
                if let Some(peer) = &link.peer {
                    state.links.remove(peer);
                }
            }
            state.pod_default_routes.remove(path);
            state.lo_up.remove(path);
            state.hostnames.remove(path);
        }
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetError::Io {
                context: format!("removing {}", path.display()),
                source,
            }),
        }
    }
}
