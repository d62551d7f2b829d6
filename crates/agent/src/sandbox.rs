//! Pod sandboxes on the real host: namespaces and the pod's address from `timonel-net`.

use timonel_net::{LinuxKernel, PodNetwork};

use crate::pods::{Sandbox, Sandboxes};

/// Namespaces and bridge networking for pods, over `timonel-net`.
pub struct NetSandboxes {
    pub network: PodNetwork<LinuxKernel>,
}

impl Sandboxes for NetSandboxes {
    fn setup(&self, pod_uid: &str, hostname: &str) -> anyhow::Result<Sandbox> {
        let namespaces = self.network.create_namespaces(pod_uid, hostname)?;
        let address = self.network.attach(pod_uid, &namespaces.net)?;
        Ok(Sandbox {
            net: Some(namespaces.net),
            ipc: Some(namespaces.ipc),
            uts: Some(namespaces.uts),
            pid: None,
            ip: Some(address.ip.to_string()),
        })
    }

    fn teardown(&self, pod_uid: &str) -> anyhow::Result<()> {
        Ok(self.network.teardown(pod_uid)?)
    }

    fn known(&self) -> Vec<String> {
        self.network.known_pods().unwrap_or_default()
    }
}
