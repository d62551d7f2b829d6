//! [`NetKernel`] on the real Linux kernel: rtnetlink for links, addresses and routes; `nix` for
//! namespaces and mounts.
//!
//! rtnetlink is async (tokio). Each operation runs on its own short-lived thread with a
//! current-thread runtime and a fresh netlink socket. That costs a thread spawn per call (fine
//! at pod-creation rates) and buys three things: calling from inside the agent's tokio runtime
//! cannot hit "runtime within runtime", no runtime thread ever changes namespace, and the
//! operations that must happen inside a pod's network namespace simply `setns()` that thread
//! first (a netlink socket talks to the namespace it was created in).

use std::fs::{self, File};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statfs::{NSFS_MAGIC, statfs};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteType};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::ns::{self, NsKind};
use crate::{LinkKind, NetError, NetKernel, PodInterface, PodNamespaces};

const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;
const ENOENT: i32 = nix::errno::Errno::ENOENT as i32;
const ESRCH: i32 = nix::errno::Errno::ESRCH as i32;
const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;

/// The real kernel. Stateless; every method needs root (`CAP_NET_ADMIN`, and `CAP_SYS_ADMIN`
/// for namespaces and mounts) and blocks for one or a few netlink round trips.
#[derive(Debug, Clone, Default)]
pub struct LinuxKernel {
    _private: (),
}

impl LinuxKernel {
    /// The kernel of the calling process.
    pub fn new() -> Self {
        Self::default()
    }
}

fn nl_err(context: &str, error: rtnetlink::Error) -> NetError {
    let errno = match &error {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()).filter(|c| *c != 0),
        _ => None,
    };
    NetError::Netlink {
        context: context.to_string(),
        message: error.to_string(),
        errno,
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let context = context.into();
    move |source| NetError::Io { context, source }
}

fn errno_of(e: &NetError) -> Option<i32> {
    match e {
        NetError::Netlink { errno, .. } => *errno,
        _ => None,
    }
}

/// Runs `f` with a netlink handle on the current thread (which must not be inside a runtime),
/// talking to the network namespace the thread is in.
fn netlink_here<T, F, Fut>(f: F) -> Result<T, NetError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, NetError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(io_err("starting netlink runtime"))?;
    runtime.block_on(async move {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(io_err("opening netlink socket"))?;
        let driver = tokio::spawn(connection);
        let result = f(handle).await;
        driver.abort();
        result
    })
}

/// Runs `f` with a netlink handle on a fresh thread, in the host namespace (`netns` = None) or
/// after joining the network namespace `netns`.
fn netlink<T, F, Fut>(netns: Option<&Path>, f: F) -> Result<T, NetError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, NetError>>,
{
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("timonel-netlink".to_string())
            .spawn_scoped(scope, move || {
                if let Some(netns) = netns {
                    ns::join(netns, NsKind::Net)
                        .map_err(io_err(format!("joining {}", netns.display())))?;
                }
                netlink_here(f)
            })
            .map_err(io_err("spawning netlink thread"))?;
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The link called `name`, or None.
async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) => {
            let e = nl_err(&format!("looking up link {name}"), e);
            if matches!(errno_of(&e), Some(ENODEV)) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

async fn link_index(handle: &Handle, name: &str) -> Result<u32, NetError> {
    match find_link(handle, name).await? {
        Some(link) => Ok(link.header.index),
        None => Err(NetError::Netlink {
            context: format!("looking up link {name}"),
            message: "no such device".to_string(),
            errno: Some(ENODEV),
        }),
    }
}

fn kind_of(link: &LinkMessage) -> LinkKind {
    for attribute in &link.attributes {
        if let LinkAttribute::LinkInfo(infos) = attribute {
            for info in infos {
                if let LinkInfo::Kind(kind) = info {
                    return match kind {
                        InfoKind::Bridge => LinkKind::Bridge,
                        InfoKind::Veth => LinkKind::Veth,
                        other => LinkKind::Other(other.to_string()),
                    };
                }
            }
        }
    }
    LinkKind::Other(String::new())
}

/// Blackhole routes of the main table (they are IPv4 since we dump IPv4 only).
async fn dump_blackholes(
    handle: &Handle,
) -> Result<Vec<(Ipv4Net, rtnetlink::packet_route::route::RouteMessage)>, NetError> {
    let mut routes = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    let mut out = Vec::new();
    while let Some(route) = routes
        .try_next()
        .await
        .map_err(|e| nl_err("listing routes", e))?
    {
        if route.header.kind != RouteType::BlackHole {
            continue;
        }
        let mut table = u32::from(route.header.table);
        let mut destination = Ipv4Addr::UNSPECIFIED;
        for attribute in &route.attributes {
            match attribute {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = *a,
                _ => {}
            }
        }
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            continue;
        }
        if let Ok(net) = Ipv4Net::new(destination, route.header.destination_prefix_length) {
            out.push((net, route));
        }
    }
    Ok(out)
}

impl NetKernel for LinuxKernel {
    fn link_kind(&self, name: &str) -> Result<Option<LinkKind>, NetError> {
        netlink(None, async |h| {
            Ok(find_link(&h, name).await?.as_ref().map(kind_of))
        })
    }

    fn create_bridge(&self, name: &str, mtu: u32) -> Result<(), NetError> {
        netlink(None, async |h| {
            h.link()
                .add(LinkBridge::new(name).mtu(mtu).build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("creating bridge {name}"), e))
        })
    }

    fn link_addresses(&self, name: &str) -> Result<Vec<Ipv4Net>, NetError> {
        netlink(None, async |h| {
            let index = link_index(&h, name).await?;
            let mut addresses = h.address().get().set_link_index_filter(index).execute();
            let mut out = Vec::new();
            while let Some(message) = addresses
                .try_next()
                .await
                .map_err(|e| nl_err(&format!("listing addresses of {name}"), e))?
            {
                if message.header.index != index {
                    continue;
                }
                let mut local = None;
                let mut address = None;
                for attribute in &message.attributes {
                    match attribute {
                        AddressAttribute::Local(IpAddr::V4(a)) => local = Some(*a),
                        AddressAttribute::Address(IpAddr::V4(a)) => address = Some(*a),
                        _ => {}
                    }
                }
                if let Some(ip) = local.or(address)
                    && let Ok(net) = Ipv4Net::new(ip, message.header.prefix_len)
                {
                    out.push(net);
                }
            }
            Ok(out)
        })
    }

    fn add_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError> {
        netlink(None, async |h| {
            let index = link_index(&h, name).await?;
            h.address()
                .add(index, IpAddr::V4(address.addr()), address.prefix_len())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("adding {address} to {name}"), e))
        })
    }

    fn set_link_up(&self, name: &str) -> Result<(), NetError> {
        netlink(None, async |h| {
            let index = link_index(&h, name).await?;
            h.link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("setting {name} up"), e))
        })
    }

    fn delete_link(&self, name: &str) -> Result<(), NetError> {
        netlink(None, async |h| {
            let Some(link) = find_link(&h, name).await? else {
                return Ok(());
            };
            match h.link().del(link.header.index).execute().await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let e = nl_err(&format!("deleting link {name}"), e);
                    if matches!(errno_of(&e), Some(ENODEV)) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
            }
        })
    }

    fn enable_ip_forward(&self) -> Result<(), NetError> {
        let path = "/proc/sys/net/ipv4/ip_forward";
        let current = fs::read_to_string(path).map_err(io_err(format!("reading {path}")))?;
        if current.trim() != "1" {
            fs::write(path, "1").map_err(io_err(format!("writing {path}")))?;
        }
        Ok(())
    }

    fn blackhole_routes(&self) -> Result<Vec<Ipv4Net>, NetError> {
        netlink(None, async |h| {
            Ok(dump_blackholes(&h)
                .await?
                .into_iter()
                .map(|(net, _)| net)
                .collect())
        })
    }

    fn add_blackhole_route(&self, destination: Ipv4Net) -> Result<(), NetError> {
        netlink(None, async |h| {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(destination.network(), destination.prefix_len())
                .kind(RouteType::BlackHole)
                .build();
            h.route()
                .add(route)
                .execute()
                .await
                .map_err(|e| nl_err(&format!("adding blackhole route {destination}"), e))
        })
    }

    fn delete_blackhole_route(&self, destination: Ipv4Net) -> Result<(), NetError> {
        netlink(None, async |h| {
            for (net, route) in dump_blackholes(&h).await? {
                if net != destination {
                    continue;
                }
                if let Err(e) = h.route().del(route).execute().await {
                    let e = nl_err(&format!("deleting blackhole route {destination}"), e);
                    if !matches!(errno_of(&e), Some(ESRCH | ENOENT)) {
                        return Err(e);
                    }
                }
            }
            Ok(())
        })
    }

    fn create_veth(&self, host: &str, peer: &str, mtu: u32) -> Result<(), NetError> {
        netlink(None, async |h| {
            h.link()
                .add(LinkVeth::new(host, peer).mtu(mtu).build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("creating veth {host}/{peer}"), e))
        })
    }

    fn set_link_master(&self, name: &str, bridge: &str) -> Result<(), NetError> {
        netlink(None, async |h| {
            let index = link_index(&h, name).await?;
            let bridge_index = link_index(&h, bridge).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .controller(bridge_index)
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| nl_err(&format!("adding {name} to bridge {bridge}"), e))
        })
    }

    fn move_link_to_netns(&self, name: &str, netns: &Path) -> Result<(), NetError> {
        let file = File::open(netns).map_err(io_err(format!("opening {}", netns.display())))?;
        let fd = file.as_raw_fd();
        netlink(None, async |h| {
            let index = link_index(&h, name).await?;
            h.link()
                .set(LinkUnspec::new_with_index(index).setns_by_fd(fd).build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("moving {name} into {}", netns.display()), e))
        })
    }

    fn configure_pod_interface(
        &self,
        netns: &Path,
        interface: &PodInterface,
    ) -> Result<(), NetError> {
        netlink(Some(netns), async |h| {
            let name = &interface.name;
            let index = link_index(&h, &interface.current_name).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .name(name.clone())
                        .mtu(interface.mtu)
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| {
                    nl_err(&format!("renaming {} to {name}", interface.current_name), e)
                })?;
            let address = interface.address;
            if let Err(e) = h
                .address()
                .add(index, IpAddr::V4(address.addr()), address.prefix_len())
                .execute()
                .await
            {
                let e = nl_err(&format!("adding {address} to {name}"), e);
                if errno_of(&e) != Some(EEXIST) {
                    return Err(e);
                }
            }
            h.link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("setting {name} up"), e))?;
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(interface.gateway)
                .output_interface(index)
                .build();
            if let Err(e) = h.route().add(route).execute().await {
                let e = nl_err(
                    &format!("adding default route via {}", interface.gateway),
                    e,
                );
                if errno_of(&e) != Some(EEXIST) {
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    fn create_pod_namespaces(
        &self,
        namespaces: &PodNamespaces,
        hostname: &str,
    ) -> Result<(), NetError> {
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("timonel-unshare".to_string())
                .spawn_scoped(scope, move || -> Result<(), NetError> {
                    // Only this thread moves; the namespaces outlive it through the bind mounts.
                    unshare(
                        CloneFlags::CLONE_NEWNET
                            | CloneFlags::CLONE_NEWIPC
                            | CloneFlags::CLONE_NEWUTS,
                    )
                    .map_err(|e| io_err("unshare(net|ipc|uts)")(e.into()))?;
                    nix::unistd::sethostname(hostname)
                        .map_err(|e| io_err(format!("sethostname({hostname})"))(e.into()))?;
                    for kind in NsKind::ALL {
                        let target = namespaces.get(kind);
                        File::create(target)
                            .map_err(io_err(format!("creating {}", target.display())))?;
                        let source = format!("/proc/thread-self/ns/{}", kind.proc_name());
                        mount(
                            Some(source.as_str()),
                            target,
                            None::<&str>,
                            MsFlags::MS_BIND,
                            None::<&str>,
                        )
                        .map_err(|e| {
                            io_err(format!("bind-mounting {source} on {}", target.display()))(
                                e.into(),
                            )
                        })?;
                    }
                    netlink_here(async |h| {
                        let index = link_index(&h, "lo").await?;
                        h.link()
                            .set(LinkUnspec::new_with_index(index).up().build())
                            .execute()
                            .await
                            .map_err(|e| nl_err("setting lo up", e))
                    })
                })
                .map_err(io_err("spawning unshare thread"))?;
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn is_namespace_file(&self, path: &Path) -> Result<bool, NetError> {
        match statfs(path) {
            Ok(fs) => Ok(fs.filesystem_type() == NSFS_MAGIC),
            Err(nix::errno::Errno::ENOENT) => Ok(false),
            Err(e) => Err(io_err(format!("statfs {}", path.display()))(e.into())),
        }
    }

    fn remove_namespace_file(&self, path: &Path) -> Result<(), NetError> {
        // Unmount until it is no longer a namespace file (a path can be mounted over twice).
        while self.is_namespace_file(path)? {
            match umount2(path, MntFlags::MNT_DETACH) {
                Ok(()) => {}
                Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => break,
                Err(e) => return Err(io_err(format!("unmounting {}", path.display()))(e.into())),
            }
        }
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
        }
    }
}
