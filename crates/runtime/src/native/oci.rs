//! The OCI runtime `config.json` of one container, built as JSON from a [`ContainerSpec`].
//!
//! Pure: no IO, so every security-relevant default is unit-tested without root.

use serde_json::{Value, json};

use super::{ContainerSpec, NamespaceMode};

/// The capabilities containerd (and so kubelet) grants a non-privileged container.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, for privileged containers.
const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Syscalls the `RuntimeDefault` seccomp profile refuses with EPERM. Docker's profile is an
/// allow-list of ~350 calls; this deny-list covers the calls that profile exists to keep from
/// containers (kernel modules, kexec, reboot, swap, clocks, keyrings, bpf, perf, mount
/// manipulation, namespaces escapes through open_by_handle_at).
const RUNTIME_DEFAULT_DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// The CPU period kubelet uses for CFS quotas (100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// cgroup v1 `cpu.shares` for a request in millicores, as kubelet's `MilliCPUToShares`
/// (minimum 2).
pub fn cpu_shares(request_millis: u64) -> u64 {
    if request_millis == 0 {
        return 2;
    }
    (request_millis * 1024 / 1000).max(2)
}

/// CFS quota for a limit in millicores, as kubelet's `MilliCPUToQuota` (minimum 1 ms).
pub fn cpu_quota(limit_millis: u64) -> u64 {
    (limit_millis * CPU_PERIOD_US / 1000).max(1000)
}

fn namespace(kind: &str, mode: &NamespaceMode) -> Option<Value> {
    match mode {
        NamespaceMode::Host => None,
        NamespaceMode::Private => Some(json!({ "type": kind })),
        NamespaceMode::Join(path) => Some(json!({ "type": kind, "path": path })),
    }
}

/// Builds the OCI runtime configuration for `spec`, whose root filesystem is already mounted
/// at `rootfs`.
pub fn runtime_config(spec: &ContainerSpec, rootfs: &std::path::Path) -> Value {
    let capabilities: Vec<String> = if spec.privileged {
        ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    } else {
        let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        let normalise = |c: &String| {
            let upper = c.to_ascii_uppercase();
            if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            }
        };
        let drops: Vec<String> = spec.capabilities_drop.iter().map(normalise).collect();
        if drops.iter().any(|d| d == "CAP_ALL") {
            caps.clear();
        }
        caps.retain(|c| !drops.contains(c));
        for add in spec.capabilities_add.iter().map(normalise) {
            if add == "CAP_ALL" {
                caps = ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect();
            } else if !caps.contains(&add) {
                caps.push(add);
            }
        }
        caps
    };
    // The bounding set keeps every capability a privileged exec may need; effective and
    // permitted are what the container's processes actually hold.
    let caps = json!({
        "bounding": capabilities,
        "effective": capabilities,
        "permitted": capabilities,
    });

    let mut namespaces: Vec<Value> = [
        namespace("pid", &spec.pid_namespace),
        namespace("network", &spec.network_namespace),
        namespace("ipc", &spec.ipc_namespace),
        namespace("uts", &spec.uts_namespace),
    ]
    .into_iter()
    .flatten()
    .collect();
    namespaces.push(json!({ "type": "mount" }));

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", if spec.privileged { "rw" } else { "ro" }]}),
    ];
    if matches!(spec.network_namespace, NamespaceMode::Host) {
        // A new sysfs instance is refused outside a private network namespace; bind the
        // host's instead, as runc does for host networking.
        mounts[5] = json!({"destination": "/sys", "type": "bind", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
    }
    for mount in &spec.mounts {
        let mut options = vec!["rbind".to_string()];
        options.push(if mount.read_only { "ro" } else { "rw" }.to_string());
        mounts.push(json!({
            "destination": mount.destination,
            "type": "bind",
            "source": mount.source,
            "options": options,
        }));
    }

    let mut resources = json!({
        "devices": [{"allow": spec.privileged, "access": "rwm"}],
    });
    if !spec.privileged {
        // The devices every container needs (null, zero, full, random, urandom, tty, ptmx,
        // pts); libcontainer creates the nodes, the cgroup allows exactly these.
        resources["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        ]);
    }
    let mut cpu = serde_json::Map::new();
    cpu.insert("shares".into(), json!(cpu_shares(spec.cpu_request_millis)));
    if let Some(limit) = spec.cpu_limit_millis {
        cpu.insert("quota".into(), json!(cpu_quota(limit)));
        cpu.insert("period".into(), json!(CPU_PERIOD_US));
    }
    resources["cpu"] = Value::Object(cpu);
    if let Some(limit) = spec.memory_limit_bytes {
        // No swap: a container's memory limit is what it may use, as kubelet with swap off.
        resources["memory"] = json!({ "limit": limit, "swap": limit });
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": spec.cgroup_path,
    });
    if !spec.privileged {
        linux["maskedPaths"] = json!([
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
        ]);
        linux["readonlyPaths"] = json!([
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]);
        if spec.seccomp_runtime_default {
            linux["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
                "syscalls": [{
                    "names": RUNTIME_DEFAULT_DENIED,
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 1,
                }],
            });
        }
    }

    let mut process = json!({
        "terminal": spec.tty,
        "user": {
            "uid": spec.uid,
            "gid": spec.gid,
            "additionalGids": spec.additional_gids,
        },
        "args": spec.args,
        "env": spec.env,
        "cwd": if spec.working_dir.is_empty() { "/" } else { spec.working_dir.as_str() },
        "capabilities": caps,
        "noNewPrivileges": spec.no_new_privileges,
        // A negative score needs CAP_SYS_RESOURCE, which some hosts withhold from root:
        // clamp rather than fail the container.
        "oomScoreAdj": spec.oom_score_adj.max(0),
    });
    if spec.tty {
        process["consoleSize"] = json!({"height": 24, "width": 80});
    }

    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": { "path": rootfs, "readonly": spec.read_only_rootfs },
        "mounts": mounts,
        "linux": linux,
    });
    if matches!(spec.uts_namespace, NamespaceMode::Private) {
        config["hostname"] = json!(spec.hostname);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::BindMount;
    use std::path::{Path, PathBuf};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            args: vec!["sh".into()],
            hostname: "web-0".into(),
            cgroup_path: "/timonel/podx/c1".into(),
            ..ContainerSpec::default()
        }
    }

    fn caps(config: &Value) -> Vec<String> {
        serde_json::from_value(config["process"]["capabilities"]["effective"].clone()).unwrap()
    }

    #[test]
    fn default_container_gets_containerds_capabilities_and_private_namespaces() {
        let config = runtime_config(&spec(), Path::new("/r"));
        assert_eq!(caps(&config).len(), DEFAULT_CAPABILITIES.len());
        let kinds: Vec<&str> = config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["pid", "network", "ipc", "uts", "mount"]);
        assert_eq!(config["hostname"], "web-0");
        assert_eq!(config["linux"]["cgroupsPath"], "/timonel/podx/c1");
        assert!(config["linux"].get("seccomp").is_none());
    }

    #[test]
    fn capabilities_add_and_drop_accept_both_spellings() {
        let mut s = spec();
        s.capabilities_add = vec!["NET_ADMIN".into()];
        s.capabilities_drop = vec!["CAP_KILL".into(), "net_raw".into()];
        let c = caps(&runtime_config(&s, Path::new("/r")));
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()));
        assert!(!c.contains(&"CAP_NET_RAW".to_string()));
        s.capabilities_drop = vec!["ALL".into()];
        s.capabilities_add = vec!["CHOWN".into()];
        assert_eq!(caps(&runtime_config(&s, Path::new("/r"))), ["CAP_CHOWN"]);
    }

    #[test]
    fn joined_and_host_namespaces() {
        let mut s = spec();
        s.network_namespace = NamespaceMode::Join(PathBuf::from("/run/timonel/netns/p/net"));
        s.uts_namespace = NamespaceMode::Join(PathBuf::from("/run/timonel/netns/p/uts"));
        s.pid_namespace = NamespaceMode::Host;
        let config = runtime_config(&s, Path::new("/r"));
        let ns = config["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(ns[0]["type"], "network");
        assert_eq!(ns[0]["path"], "/run/timonel/netns/p/net");
        assert!(
            config.get("hostname").is_none(),
            "the pod's UTS namespace has it"
        );
        s.network_namespace = NamespaceMode::Host;
        let config = runtime_config(&s, Path::new("/r"));
        assert_eq!(config["mounts"][5]["type"], "bind");
    }

    #[test]
    fn resources_follow_kubelet_conversions() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(250), 256);
        assert_eq!(cpu_quota(500), 50_000);
        assert_eq!(cpu_quota(1), 1000);
        let mut s = spec();
        s.cpu_request_millis = 100;
        s.cpu_limit_millis = Some(200);
        s.memory_limit_bytes = Some(64 << 20);
        let config = runtime_config(&s, Path::new("/r"));
        let r = &config["linux"]["resources"];
        assert_eq!(r["cpu"]["shares"], 102);
        assert_eq!(r["cpu"]["quota"], 20_000);
        assert_eq!(r["memory"]["limit"], 64 << 20);
    }

    #[test]
    fn negative_oom_score_adj_is_clamped_and_seccomp_applies_on_request() {
        let mut s = spec();
        s.oom_score_adj = -997;
        s.seccomp_runtime_default = true;
        s.read_only_rootfs = true;
        s.mounts = vec![BindMount {
            source: "/data/v".into(),
            destination: "/etc/config".into(),
            read_only: true,
        }];
        let config = runtime_config(&s, Path::new("/r"));
        assert_eq!(config["process"]["oomScoreAdj"], 0);
        assert_eq!(
            config["linux"]["seccomp"]["defaultAction"],
            "SCMP_ACT_ALLOW"
        );
        assert_eq!(config["root"]["readonly"], true);
        let last = config["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["destination"], "/etc/config");
        assert_eq!(last["options"], json!(["rbind", "ro"]));
    }

    #[test]
    fn privileged_gets_every_capability_and_no_masks() {
        let mut s = spec();
        s.privileged = true;
        s.seccomp_runtime_default = true;
        let config = runtime_config(&s, Path::new("/r"));
        assert!(caps(&config).contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(config["linux"].get("maskedPaths").is_none());
        assert!(config["linux"].get("seccomp").is_none());
    }
}
