//! Running a package manager: as an unprivileged user, in a directory of its own, with a
//! deadline, its output streamed into the build's log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::BuildError;

/// The build's log as it grows: the API reads it while the build runs.
#[derive(Clone, Default)]
pub struct BuildLog(Arc<Mutex<String>>);

/// What a live log keeps; older output is cut at the front.
const LIVE_LOG_BYTES: usize = 256 * 1024;

impl BuildLog {
    pub fn line(&self, line: &str) {
        let mut s = self.0.lock();
        s.push_str(line);
        s.push('\n');
        if s.len() > LIVE_LOG_BYTES {
            let mut cut = s.len() - LIVE_LOG_BYTES / 2;
            while !s.is_char_boundary(cut) {
                cut += 1;
            }
            s.drain(..cut);
        }
    }

    pub fn text(&self) -> String {
        self.0.lock().clone()
    }
}

/// Who package managers run as: root on the host is more than downloading packages needs.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// The uid of this process (the owner of `/proc/self`), without `unsafe`.
pub fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// One command to run.
pub struct Step {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub run_as: Option<RunAs>,
    pub deadline: Instant,
}

/// Runs `step`, every output line into `log`; `Ok` when it exits 0. The error keeps the
/// package manager's own error lines (they name the package).
pub async fn run(step: Step, log: &BuildLog) -> Result<(), BuildError> {
    let shown = format!("$ {} {}", step.program.display(), shown_args(&step.args));
    log.line(&shown);
    let mut cmd = match step.run_as {
        Some(who) => {
            // setpriv (util-linux) drops to the user before exec; tokio has no uid switch
            // that works without `unsafe` pre-exec code.
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", who.uid))
                .arg(format!("--regid={}", who.gid))
                .arg("--clear-groups")
                .arg("--")
                .arg(&step.program);
            c
        }
        None => Command::new(&step.program),
    };
    cmd.args(&step.args)
        .current_dir(&step.dir)
        .envs(step.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| BuildError::Setup(format!("cannot run {}: {e}", step.program.display())))?;
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let out = child.stdout.take().map(|o| tokio::spawn(pump(o, log.clone(), errors.clone())));
    let err = child.stderr.take().map(|e| tokio::spawn(pump(e, log.clone(), errors.clone())));
    let waited = tokio::time::timeout_at(step.deadline.into(), child.wait()).await;
    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(BuildError::Setup(format!("waiting for {}: {e}", step.program.display()))),
        Err(_) => {
            // The whole process group (the child leads its own, see `process_group(0)`): pip
            // and npm may start helpers. A checked pid, never 0 or 1: killpg(1) or kill(-1)
            // would reach every process on the host.
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.kill().await;
            return Err(BuildError::Timeout);
        }
    };
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    if status.success() {
        return Ok(());
    }
    let errors = errors.lock().clone();
    let message = if errors.is_empty() {
        format!("{} exited with {status}", step.program.file_name().and_then(|n| n.to_str()).unwrap_or("the package manager"))
    } else {
        errors.join("\n")
    };
    Err(BuildError::PackageManager(message))
}

/// The arguments as the build log shows them: pip gets one `--platform` per compatible tag
/// (dozens), shown as the first and a count.
fn shown_args(args: &[String]) -> String {
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    let mut platforms: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--platform" && i + 1 < args.len() {
            platforms.push(&args[i + 1]);
            i += 2;
            continue;
        }
        if !platforms.is_empty() {
            out.push(platform_summary(&platforms));
            platforms.clear();
        }
        out.push(args[i].clone());
        i += 1;
    }
    if !platforms.is_empty() {
        out.push(platform_summary(&platforms));
    }
    out.join(" ")
}

fn platform_summary(platforms: &[&str]) -> String {
    match platforms {
        [one] => format!("--platform {one}"),
        [first, rest @ ..] => format!("--platform {first} (+{} more --platform tags)", rest.len()),
        [] => String::new(),
    }
}

/// The lines that carry a package manager's verdict (pip: `ERROR: …`; npm: `npm error …`),
/// at most this many.
const MAX_ERROR_LINES: usize = 8;

async fn pump(r: impl AsyncRead + Unpin, log: BuildLog, errors: Arc<Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let l = line.trim_end();
        let lower = l.to_ascii_lowercase();
        let verdict = l.starts_with("ERROR:") || lower.starts_with("npm error") || lower.starts_with("npm err!");
        if verdict {
            let mut e = errors.lock();
            let text = l.to_owned();
            if e.len() < MAX_ERROR_LINES && !e.contains(&text) && !lower.contains("a complete log of this run") {
                e.push(text);
            }
        }
        log.line(l);
    }
}

/// Bytes under `dir` (files only; links are not followed).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Gives `path` (and what is under it) to `who`, so the package manager can write there.
pub fn give(path: &Path, who: Option<RunAs>) -> Result<(), BuildError> {
    let Some(who) = who else { return Ok(()) };
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(who.uid), Some(who.gid))
            .map_err(|e| BuildError::Setup(format!("chown {}: {e}", p.display())))?;
        if p.is_dir() && !p.is_symlink() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shown_args;

    #[test]
    fn platform_flags_are_summed_up_in_the_log() {
        let args: Vec<String> = ["download", "--platform", "a", "--platform", "b", "--platform", "c", "-r", "x.txt"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(shown_args(&args), "download --platform a (+2 more --platform tags) -r x.txt");
        let one: Vec<String> = ["--platform", "a"].into_iter().map(String::from).collect();
        assert_eq!(shown_args(&one), "--platform a");
    }
}
