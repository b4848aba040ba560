//! Per-invocation peak memory, read straight from the sandbox's memory cgroup: a reset before
//! the call and a read after cost two small sysfs writes/reads, no Docker API round trip.
//! Under gVisor the cgroup holds the whole sandbox (sentry included), so figures are totals.

use std::fs;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum MemoryProbe {
    /// cgroup v1: `memory.max_usage_in_bytes` is resettable by writing 0.
    V1 { dir: PathBuf },
    /// cgroup v2: `memory.peak` (resettable on kernels ≥ 6.12 by writing to it).
    V2 { dir: PathBuf },
}

impl MemoryProbe {
    /// Finds the cgroup of a Docker container by the usual layouts (cgroupfs and systemd drivers).
    pub fn find_docker(container_id: &str) -> Option<MemoryProbe> {
        let v1 = [
            format!("/sys/fs/cgroup/memory/docker/{container_id}"),
            format!("/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope"),
        ];
        for d in v1 {
            let dir = PathBuf::from(d);
            if dir.join("memory.max_usage_in_bytes").exists() {
                return Some(MemoryProbe::V1 { dir });
            }
        }
        let v2 = [
            format!("/sys/fs/cgroup/docker/{container_id}"),
            format!("/sys/fs/cgroup/system.slice/docker-{container_id}.scope"),
        ];
        for d in v2 {
            let dir = PathBuf::from(d);
            if dir.join("memory.peak").exists() {
                return Some(MemoryProbe::V2 { dir });
            }
        }
        None
    }

    /// Starts a new measurement window. Best effort: an old kernel may refuse the reset.
    pub fn reset_peak(&self) {
        let _ = match self {
            MemoryProbe::V1 { dir } => fs::write(dir.join("memory.max_usage_in_bytes"), b"0"),
            MemoryProbe::V2 { dir } => fs::write(dir.join("memory.peak"), b"0"),
        };
    }

    pub fn peak(&self) -> Option<u64> {
        let file = match self {
            MemoryProbe::V1 { dir } => dir.join("memory.max_usage_in_bytes"),
            MemoryProbe::V2 { dir } => dir.join("memory.peak"),
        };
        fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// True when the kernel had to fail a charge or kill for lack of memory in this cgroup.
    pub fn hit_limit(&self) -> bool {
        match self {
            // `oom_kill N` counts kills in this cgroup (kernel ≥ 4.13); failcnt would also count
            // limit hits that reclaim resolved, which are not OOMs.
            MemoryProbe::V1 { dir } => fs::read_to_string(dir.join("memory.oom_control"))
                .map(|s| {
                    s.lines().any(|l| {
                        let mut it = l.split_whitespace();
                        matches!((it.next(), it.next()), (Some("oom_kill"), Some(n)) if n != "0")
                    })
                })
                .unwrap_or(false),
            MemoryProbe::V2 { dir } => fs::read_to_string(dir.join("memory.events"))
                .map(|s| {
                    s.lines().any(|l| {
                        let mut it = l.split_whitespace();
                        matches!((it.next(), it.next()), (Some("oom_kill"), Some(n)) if n != "0")
                    })
                })
                .unwrap_or(false),
        }
    }
}

/// Counts the tasks (threads, of every process) in a sandbox's cgroup from the host, where the
/// function cannot lie about them: a thread the function leaves running shows here even when it
/// silenced its bootstrap's own report. Threads rather than processes, since a spinning thread
/// is as much leftover work as a child process; the Node.js bootstrap starts libuv's thread pool
/// before `ready` so that its count does not move on its own afterwards. Meaningful under runc
/// only: under gVisor the cgroup holds the sandbox kernel's threads, not the function's.
#[derive(Debug, Clone)]
pub struct TaskProbe {
    tasks: PathBuf,
}

impl TaskProbe {
    /// Finds the pids (v1) or unified (v2) cgroup of a Docker container by the usual layouts.
    pub fn find_docker(container_id: &str) -> Option<TaskProbe> {
        [
            format!("/sys/fs/cgroup/pids/docker/{container_id}/tasks"),
            format!("/sys/fs/cgroup/pids/system.slice/docker-{container_id}.scope/tasks"),
            format!("/sys/fs/cgroup/docker/{container_id}/cgroup.threads"),
            format!("/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cgroup.threads"),
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .map(|tasks| TaskProbe { tasks })
    }

    /// Live tasks in the cgroup now; None when it cannot be read (e.g. already removed).
    pub fn tasks(&self) -> Option<usize> {
        let text = fs::read_to_string(&self.tasks).ok()?;
        Some(text.lines().filter(|l| !l.trim().is_empty()).count())
    }
}

/// CPU time a sandbox's cgroup has used, read from the host on both runtimes (under gVisor it
/// includes the sandbox kernel, whose idle cost measured here is about 0.2 ms a second). An idle
/// sandbox that burns CPU is running something the function left behind.
#[derive(Debug, Clone)]
pub enum CpuProbe {
    /// cgroup v1: `cpuacct.usage`, nanoseconds.
    V1 { usage: PathBuf },
    /// cgroup v2: `usage_usec` in `cpu.stat`.
    V2 { stat: PathBuf },
}

impl CpuProbe {
    pub fn find_docker(container_id: &str) -> Option<CpuProbe> {
        let v1 = [
            format!("/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage"),
            format!("/sys/fs/cgroup/cpu,cpuacct/docker/{container_id}/cpuacct.usage"),
            format!("/sys/fs/cgroup/cpuacct/system.slice/docker-{container_id}.scope/cpuacct.usage"),
            format!("/sys/fs/cgroup/cpu,cpuacct/system.slice/docker-{container_id}.scope/cpuacct.usage"),
        ];
        if let Some(usage) = v1.into_iter().map(PathBuf::from).find(|p| p.exists()) {
            return Some(CpuProbe::V1 { usage });
        }
        [
            format!("/sys/fs/cgroup/docker/{container_id}/cpu.stat"),
            format!("/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat"),
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .map(|stat| CpuProbe::V2 { stat })
    }

    /// CPU time used so far, in nanoseconds; None when it cannot be read.
    pub fn used_ns(&self) -> Option<u64> {
        match self {
            CpuProbe::V1 { usage } => fs::read_to_string(usage).ok()?.trim().parse().ok(),
            CpuProbe::V2 { stat } => parse_usage_usec(&fs::read_to_string(stat).ok()?).map(|us| us.saturating_mul(1000)),
        }
    }
}

fn parse_usage_usec(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("usage_usec ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_listed_tasks() {
        let tasks = std::env::temp_dir().join(format!("fnbox-tasks-test-{}", std::process::id()));
        fs::write(&tasks, "1\n23\n\n").expect("write");
        let probe = TaskProbe { tasks: tasks.clone() };
        assert_eq!(probe.tasks(), Some(2));
        fs::remove_file(&tasks).expect("remove");
        assert_eq!(probe.tasks(), None, "a removed cgroup reads as unknown, not as empty");
        assert!(TaskProbe::find_docker("no-such-container").is_none());
    }

    #[test]
    fn reads_cpu_usage_of_both_cgroup_versions() {
        let dir = std::env::temp_dir().join(format!("fnbox-cpu-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        fs::write(dir.join("cpuacct.usage"), "123456789\n").expect("write");
        fs::write(dir.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n").expect("write");
        assert_eq!(CpuProbe::V1 { usage: dir.join("cpuacct.usage") }.used_ns(), Some(123_456_789));
        assert_eq!(CpuProbe::V2 { stat: dir.join("cpu.stat") }.used_ns(), Some(2_500_000));
        fs::remove_dir_all(&dir).expect("remove");
        assert_eq!(CpuProbe::V1 { usage: dir.join("cpuacct.usage") }.used_ns(), None);
        assert!(CpuProbe::find_docker("no-such-container").is_none());
    }
}
