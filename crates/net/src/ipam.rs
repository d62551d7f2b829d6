//! Host-local address allocation, persisted as one file per address.
//!
//! `dir/<ip>` holds the pod id that owns `<ip>`; it is created with `O_CREAT|O_EXCL`, so two
//! allocators can never both win the same address and a crash leaves either no file or a file.
//! `dir/last_reserved` holds the most recently handed out address so allocation walks the range
//! round-robin and a just-released address is not immediately reused.

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::NetError;

const LAST_RESERVED: &str = "last_reserved";

pub(crate) struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Net,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let context = context.into();
    move |source| NetError::Io { context, source }
}

impl Ipam {
    pub(crate) fn new(dir: PathBuf, cidr: Ipv4Net) -> Self {
        Ipam { dir, cidr }
    }

    /// First and last address that may be given to a pod: the network address, the gateway
    /// (first host) and the broadcast address are excluded.
    fn range(&self) -> (u32, u32) {
        let network = u32::from(self.cidr.network());
        let broadcast = u32::from(self.cidr.broadcast());
        (network + 2, broadcast - 1)
    }

    fn ensure_dir(&self) -> Result<(), NetError> {
        fs::create_dir_all(&self.dir).map_err(io_err(format!("creating {}", self.dir.display())))
    }

    /// Every allocation on disk: (address, pod id). Files that do not parse as addresses of this
    /// CIDR are ignored.
    pub(crate) fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(format!("reading {}", self.dir.display()))(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading {}", self.dir.display())))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let owner = match fs::read_to_string(entry.path()) {
                Ok(owner) => owner.trim().to_string(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(format!("reading {}", entry.path().display()))(e)),
            };
            out.push((ip, owner));
        }
        out.sort();
        Ok(out)
    }

    /// The address `pod_id` holds, if any.
    pub(crate) fn lookup(&self, pod_id: &str) -> Result<Option<Ipv4Addr>, NetError> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(ip, owner)| owner == pod_id && self.cidr.contains(ip))
            .map(|(ip, _)| ip))
    }

    /// Removes files left empty by a crash between create and write. Only safe while no other
    /// allocator works on the same directory (called at start-up).
    pub(crate) fn remove_empty(&self) -> Result<(), NetError> {
        for (ip, owner) in self.allocations()? {
            if owner.is_empty() {
                let path = self.dir.join(ip.to_string());
                remove_file_if_present(&path)?;
            }
        }
        Ok(())
    }

    fn last_reserved(&self) -> Option<u32> {
        fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
    }

    /// Returns the address of `pod_id`, allocating the next free one round-robin if it has none.
    pub(crate) fn allocate(&self, pod_id: &str) -> Result<Ipv4Addr, NetError> {
        if let Some(ip) = self.lookup(pod_id)? {
            return Ok(ip);
        }
        self.ensure_dir()?;
        let (first, last) = self.range();
        let size = last - first + 1;
        let start = match self.last_reserved() {
            Some(prev) if (first..=last).contains(&prev) => (prev - first + 1) % size,
            _ => 0,
        };
        for step in 0..size {
            let ip = Ipv4Addr::from(first + (start + step) % size);
            let path = self.dir.join(ip.to_string());
            let mut file = match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(format!("creating {}", path.display()))(e)),
            };
            let written = file
                .write_all(pod_id.as_bytes())
                .and_then(|()| file.sync_all());
            if let Err(e) = written {
                let _ = fs::remove_file(&path);
                return Err(io_err(format!("writing {}", path.display()))(e));
            }
            self.write_last_reserved(ip)?;
            return Ok(ip);
        }
        Err(NetError::Exhausted { cidr: self.cidr })
    }

    fn write_last_reserved(&self, ip: Ipv4Addr) -> Result<(), NetError> {
        let tmp = self.dir.join(format!("{LAST_RESERVED}.tmp"));
        let dst = self.dir.join(LAST_RESERVED);
        fs::write(&tmp, ip.to_string())
            .and_then(|()| fs::rename(&tmp, &dst))
            .map_err(io_err(format!("writing {}", dst.display())))
    }

    /// Releases every address held by `pod_id`.
    pub(crate) fn release(&self, pod_id: &str) -> Result<(), NetError> {
        for (ip, owner) in self.allocations()? {
            if owner == pod_id {
                remove_file_if_present(&self.dir.join(ip.to_string()))?;
            }
        }
        Ok(())
    }
}

pub(crate) fn remove_file_if_present(path: &Path) -> Result<(), NetError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
    }
}
