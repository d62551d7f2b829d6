//! Resource usage of a cgroup, for the kubelet's `/stats/summary`: cumulative CPU time and
//! memory usage and working set, from cgroup v1 (cpuacct, memory) or v2 files.

use std::fs;
use std::path::Path;

/// What a cgroup used; `None` where its files were not found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_nanos: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Usage minus inactive page cache, what the OOM killer and kubelet's eviction count.
    pub working_set_bytes: Option<u64>,
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat).
fn stat_field(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Usage of `cgroup_path` (e.g. `/timonel/pod<uid>`) under the cgroup mount `root`
/// (`/sys/fs/cgroup`): v1 controller directories when mounted there, else the v2 tree.
pub fn usage_at(root: &Path, cgroup_path: &str) -> Usage {
    let relative = cgroup_path.trim_start_matches('/');
    let v1_memory = root.join("memory").join(relative);
    if v1_memory.is_dir() || root.join("cpuacct").is_dir() {
        let cpu = ["cpuacct", "cpu,cpuacct", "cpu"]
            .iter()
            .find_map(|c| read_u64(&root.join(c).join(relative).join("cpuacct.usage")));
        let memory = read_u64(&v1_memory.join("memory.usage_in_bytes"));
        let inactive = stat_field(&v1_memory.join("memory.stat"), "total_inactive_file");
        return Usage {
            cpu_nanos: cpu,
            memory_bytes: memory,
            working_set_bytes: memory.map(|m| m.saturating_sub(inactive.unwrap_or(0))),
        };
    }
    let dir = root.join(relative);
    let memory = read_u64(&dir.join("memory.current"));
    let inactive = stat_field(&dir.join("memory.stat"), "inactive_file");
    Usage {
        cpu_nanos: stat_field(&dir.join("cpu.stat"), "usage_usec").map(|us| us * 1000),
        memory_bytes: memory,
        working_set_bytes: memory.map(|m| m.saturating_sub(inactive.unwrap_or(0))),
    }
}

/// Usage of `cgroup_path` on this host.
pub fn usage(cgroup_path: &str) -> Usage {
    usage_at(Path::new("/sys/fs/cgroup"), cgroup_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn v1_and_v2_files_give_the_same_figures() {
        let v1 = tempfile::tempdir().unwrap();
        let pod = "timonel/podu";
        write(
            &v1.path().join("cpuacct").join(pod).join("cpuacct.usage"),
            "2500000000\n",
        );
        write(
            &v1.path()
                .join("memory")
                .join(pod)
                .join("memory.usage_in_bytes"),
            "1048576\n",
        );
        write(
            &v1.path().join("memory").join(pod).join("memory.stat"),
            "cache 10\ntotal_inactive_file 4096\n",
        );
        let expected = Usage {
            cpu_nanos: Some(2_500_000_000),
            memory_bytes: Some(1_048_576),
            working_set_bytes: Some(1_048_576 - 4096),
        };
        assert_eq!(usage_at(v1.path(), "/timonel/podu"), expected);

        let v2 = tempfile::tempdir().unwrap();
        write(
            &v2.path().join(pod).join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 1\n",
        );
        write(&v2.path().join(pod).join("memory.current"), "1048576\n");
        write(
            &v2.path().join(pod).join("memory.stat"),
            "anon 1\ninactive_file 4096\n",
        );
        assert_eq!(usage_at(v2.path(), "/timonel/podu"), expected);
        // Nothing there: nothing known.
        assert_eq!(usage_at(v2.path(), "/timonel/other"), Usage::default());
    }
}
