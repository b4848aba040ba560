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

/// Counts the processes in a sandbox's cgroup from the host, where the function cannot lie
/// about them. Processes, not tasks: `pids.current` also counts threads (Node.js starts its
/// thread pool lazily, so that number moves on its own) and zombies, while `cgroup.procs`
/// lists live thread-group leaders only. Meaningful under runc only: under gVisor the cgroup
/// holds the sandbox kernel, not the function's processes.
#[derive(Debug, Clone)]
pub struct ProcessProbe {
    procs: PathBuf,
}

impl ProcessProbe {
    /// Finds the pids (v1) or unified (v2) cgroup of a Docker container by the usual layouts.
    pub fn find_docker(container_id: &str) -> Option<ProcessProbe> {
        [
            format!("/sys/fs/cgroup/pids/docker/{container_id}"),
            format!("/sys/fs/cgroup/pids/system.slice/docker-{container_id}.scope"),
            format!("/sys/fs/cgroup/docker/{container_id}"),
            format!("/sys/fs/cgroup/system.slice/docker-{container_id}.scope"),
        ]
        .into_iter()
        .map(|d| PathBuf::from(d).join("cgroup.procs"))
        .find(|p| p.exists())
        .map(|procs| ProcessProbe { procs })
    }

    /// Live processes in the cgroup now; None when it cannot be read (e.g. already removed).
    pub fn processes(&self) -> Option<usize> {
        let text = fs::read_to_string(&self.procs).ok()?;
        Some(text.lines().filter(|l| !l.trim().is_empty()).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_listed_processes() {
        let procs = std::env::temp_dir().join(format!("fnbox-procs-test-{}", std::process::id()));
        fs::write(&procs, "1\n23\n\n").expect("write");
        let probe = ProcessProbe { procs: procs.clone() };
        assert_eq!(probe.processes(), Some(2));
        fs::remove_file(&procs).expect("remove");
        assert_eq!(probe.processes(), None, "a removed cgroup reads as unknown, not as empty");
        assert!(ProcessProbe::find_docker("no-such-container").is_none());
    }
}
