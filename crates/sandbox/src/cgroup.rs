//! What the host reads of a sandbox from its cgroups, where the function cannot lie: peak memory
//! per invocation (reset before the call, read after), tasks (threads) and CPU time. No Docker
//! API round trip; under gVisor the cgroup holds the whole sandbox (its kernel included), so
//! figures are totals.
//!
//! Every file read on each call is opened once per sandbox and read with `pread`: opening a
//! cgroup file costs 35–50 µs here (kernfs), a `pread` of an open one about 1.5 µs.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A cgroup file kept open for repeated reads (and writes) at offset 0.
#[derive(Debug)]
struct CgroupFile {
    file: fs::File,
}

/// The longest cgroup file read (a `tasks` list of 64 pids is under 1 KiB).
const MAX_CGROUP_FILE: usize = 64 * 1024;

impl CgroupFile {
    fn open(path: &Path, write: bool) -> Option<CgroupFile> {
        fs::OpenOptions::new().read(true).write(write).open(path).ok().map(|file| CgroupFile { file })
    }

    /// The whole file as it is now; None once the cgroup is gone.
    fn read(&self) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        loop {
            if len == buf.len() {
                if buf.len() >= MAX_CGROUP_FILE {
                    break;
                }
                buf.resize(buf.len() * 2, 0);
            }
            match self.file.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(_) => return None,
            }
        }
        buf.truncate(len);
        String::from_utf8(buf).ok()
    }

    fn number(&self) -> Option<u64> {
        self.read()?.trim().parse().ok()
    }

    fn write(&self, data: &[u8]) -> std::io::Result<usize> {
        self.file.write_at(data, 0)
    }
}

#[derive(Debug)]
pub struct MemoryProbe {
    /// cgroup v1 `memory.max_usage_in_bytes` (reset by writing 0) or v2 `memory.peak`
    /// (resettable on kernels ≥ 6.12 by writing to it), open for reading and writing.
    peak: CgroupFile,
    /// Where kills for lack of memory are counted: v1 `memory.oom_control`, v2 `memory.events`.
    events: PathBuf,
}

impl MemoryProbe {
    /// Finds the cgroup of a Docker container by the usual layouts (cgroupfs and systemd drivers).
    pub fn find_docker(container_id: &str) -> Option<MemoryProbe> {
        let (v1, v2) = docker_memory_dirs(container_id);
        for dir in v1 {
            if let Some(peak) = CgroupFile::open(&dir.join("memory.max_usage_in_bytes"), true) {
                return Some(MemoryProbe { peak, events: dir.join("memory.oom_control") });
            }
        }
        for dir in v2 {
            // Read-only where the kernel cannot reset the peak (before 6.12).
            let peak = CgroupFile::open(&dir.join("memory.peak"), true)
                .or_else(|| CgroupFile::open(&dir.join("memory.peak"), false));
            if let Some(peak) = peak {
                return Some(MemoryProbe { peak, events: dir.join("memory.events") });
            }
        }
        None
    }

    /// Starts a new measurement window. Best effort: an old kernel may refuse the reset.
    pub fn reset_peak(&self) {
        let _ = self.peak.write(b"0");
    }

    pub fn peak(&self) -> Option<u64> {
        self.peak.number()
    }

    /// True when the kernel had to kill for lack of memory in this cgroup. Read only after a
    /// sandbox died, so by path. `oom_kill N` counts kills (kernel ≥ 4.13); failcnt would also
    /// count limit hits that reclaim resolved, which are not OOMs.
    pub fn hit_limit(&self) -> bool {
        fs::read_to_string(&self.events)
            .map(|s| {
                s.lines().any(|l| {
                    let mut it = l.split_whitespace();
                    matches!((it.next(), it.next()), (Some("oom_kill"), Some(n)) if n != "0")
                })
            })
            .unwrap_or(false)
    }
}

/// Where a Docker container's memory cgroup may be, by the usual layouts (cgroupfs and systemd
/// drivers): the cgroup v1 candidates, then the v2 ones.
fn docker_memory_dirs(container_id: &str) -> ([PathBuf; 2], [PathBuf; 2]) {
    (
        [
            PathBuf::from(format!("/sys/fs/cgroup/memory/docker/{container_id}")),
            PathBuf::from(format!("/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope")),
        ],
        [
            PathBuf::from(format!("/sys/fs/cgroup/docker/{container_id}")),
            PathBuf::from(format!("/sys/fs/cgroup/system.slice/docker-{container_id}.scope")),
        ],
    )
}

/// Sets a running Docker container's memory limit (swap included, none allowed) in its cgroup.
///
/// Written here rather than through `docker update`: that takes 38 ms on runc (dockerd,
/// containerd, the shim, a `runc update` process) and fails on runsc 20221219, which has no
/// `update` command (both measured here). The host's cgroup is what enforces the limit on both
/// runtimes (under gVisor it holds the whole sandbox), so a write takes effect at once. Docker's
/// own record (`docker inspect`) keeps the limit the container was created with.
pub fn set_docker_memory_limit(container_id: &str, bytes: u64) -> std::io::Result<()> {
    let value = bytes.to_string();
    let (v1, v2) = docker_memory_dirs(container_id);
    if let Some(dir) = v1.into_iter().find(|d| d.join("memory.limit_in_bytes").exists()) {
        let memory = dir.join("memory.limit_in_bytes");
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        // memory ≤ memory+swap at every moment: lower memory first, raise memory+swap first.
        let current: Option<u64> = fs::read_to_string(&memory).ok().and_then(|s| s.trim().parse().ok());
        let order = if current.is_some_and(|c| bytes < c) { [&memory, &memsw] } else { [&memsw, &memory] };
        for file in order {
            // Without swap accounting (a boot option) there is no memsw file: memory alone.
            if file == &memsw && !memsw.exists() {
                continue;
            }
            fs::write(file, &value)?;
        }
        return Ok(());
    }
    match v2.into_iter().find(|d| d.join("memory.max").exists()) {
        // Docker created it with no swap (`memory.swap.max` 0), which stays so.
        Some(dir) => fs::write(dir.join("memory.max"), value),
        None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no memory cgroup found for the container")),
    }
}

/// Counts the tasks (threads, of every process) in a sandbox's cgroup from the host, where the
/// function cannot lie about them: a thread the function leaves running shows here even when it
/// silenced its bootstrap's own report. Threads rather than processes, since a spinning thread
/// is as much leftover work as a child process; the Node.js bootstrap starts libuv's thread pool
/// before `ready` so that its count does not move on its own afterwards. Meaningful under runc
/// only: under gVisor the cgroup holds the sandbox kernel's threads, not the function's.
///
/// Read from `pids.current`, a counter: a kept-open `tasks` list is not re-read by cgroup v1
/// (it caches the list per open file until a second passes unused). It also counts a zombie
/// until it is reaped, which only makes the host more careful.
#[derive(Debug)]
pub struct TaskProbe {
    current: CgroupFile,
}

impl TaskProbe {
    /// Finds the pids (v1) or unified (v2) cgroup of a Docker container by the usual layouts.
    pub fn find_docker(container_id: &str) -> Option<TaskProbe> {
        [
            format!("/sys/fs/cgroup/pids/docker/{container_id}/pids.current"),
            format!("/sys/fs/cgroup/pids/system.slice/docker-{container_id}.scope/pids.current"),
            format!("/sys/fs/cgroup/docker/{container_id}/pids.current"),
            format!("/sys/fs/cgroup/system.slice/docker-{container_id}.scope/pids.current"),
        ]
        .into_iter()
        .find_map(|p| CgroupFile::open(Path::new(&p), false))
        .map(|current| TaskProbe { current })
    }

    /// Tasks in the cgroup now; None when it cannot be read (e.g. already removed).
    pub fn tasks(&self) -> Option<usize> {
        self.current.number().and_then(|n| usize::try_from(n).ok())
    }
}

/// CPU time a sandbox's cgroup has used, read from the host on both runtimes (under gVisor it
/// includes the sandbox kernel, whose idle cost measured here is about 0.2 ms a second). An idle
/// sandbox that burns CPU is running something the function left behind.
#[derive(Debug)]
pub struct CpuProbe {
    /// cgroup v1 `cpuacct.usage` (nanoseconds), or v2 `cpu.stat` (its `usage_usec` line).
    file: CgroupFile,
    v2: bool,
}

impl CpuProbe {
    pub fn find_docker(container_id: &str) -> Option<CpuProbe> {
        let v1 = [
            format!("/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage"),
            format!("/sys/fs/cgroup/cpu,cpuacct/docker/{container_id}/cpuacct.usage"),
            format!("/sys/fs/cgroup/cpuacct/system.slice/docker-{container_id}.scope/cpuacct.usage"),
            format!("/sys/fs/cgroup/cpu,cpuacct/system.slice/docker-{container_id}.scope/cpuacct.usage"),
        ];
        if let Some(usage) = v1.into_iter().find_map(|p| CgroupFile::open(Path::new(&p), false)) {
            return Some(CpuProbe { file: usage, v2: false });
        }
        [
            format!("/sys/fs/cgroup/docker/{container_id}/cpu.stat"),
            format!("/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat"),
        ]
        .into_iter()
        .find_map(|p| CgroupFile::open(Path::new(&p), false))
        .map(|file| CpuProbe { file, v2: true })
    }

    /// CPU time used so far, in nanoseconds; None when it cannot be read.
    pub fn used_ns(&self) -> Option<u64> {
        if self.v2 {
            parse_usage_usec(&self.file.read()?).map(|us| us.saturating_mul(1000))
        } else {
            self.file.number()
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
    fn counts_tasks() {
        let tasks = std::env::temp_dir().join(format!("fnbox-tasks-test-{}", std::process::id()));
        fs::write(&tasks, "2\n").expect("write");
        let probe = TaskProbe { current: CgroupFile::open(&tasks, false).expect("open") };
        assert_eq!(probe.tasks(), Some(2));
        fs::write(&tasks, "11\n").expect("write");
        assert_eq!(probe.tasks(), Some(11), "the open file is read afresh each time");
        fs::remove_file(&tasks).expect("remove");
        assert!(TaskProbe::find_docker("no-such-container").is_none());
    }

    #[test]
    fn reads_cpu_usage_of_both_cgroup_versions() {
        let dir = std::env::temp_dir().join(format!("fnbox-cpu-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        fs::write(dir.join("cpuacct.usage"), "123456789\n").expect("write");
        fs::write(dir.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n").expect("write");
        let open = |name: &str| CgroupFile::open(&dir.join(name), false).expect("open");
        assert_eq!(CpuProbe { file: open("cpuacct.usage"), v2: false }.used_ns(), Some(123_456_789));
        assert_eq!(CpuProbe { file: open("cpu.stat"), v2: true }.used_ns(), Some(2_500_000));
        fs::remove_dir_all(&dir).expect("remove");
        assert!(CpuProbe::find_docker("no-such-container").is_none());
    }
}
