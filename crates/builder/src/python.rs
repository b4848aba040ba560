//! Python packages with the host's pip: wheels only, for the image's interpreter and platform.
//!
//! Only wheels (`--only-binary=:all:`): a source distribution would run its setup.py on the
//! host at resolve time, which is the package's code running outside any sandbox. A package
//! without a wheel for the image's Python fails with pip's own message naming it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::command::{run, Step};
use crate::platform::PythonPlatform;
use crate::{BuildError, Job};

/// pip's arguments that pin the target: the image's interpreter, ABI and glibc, not the host's.
fn target_args(p: &PythonPlatform) -> Vec<String> {
    let mut args = vec!["--only-binary=:all:".to_string()];
    for tag in p.platform_tags() {
        args.push("--platform".into());
        args.push(tag);
    }
    let nodot = p.version.replace('.', "");
    args.extend([
        "--python-version".into(),
        p.version.clone(),
        "--implementation".into(),
        "cp".into(),
        "--abi".into(),
        format!("cp{nodot}"),
        "--abi".into(),
        "abi3".into(),
        "--abi".into(),
        "none".into(),
    ]);
    args
}

fn pip(job: &Job<'_>, mut args: Vec<String>) -> Step {
    let mut all = vec!["-m".to_string(), "pip".into()];
    all.append(&mut args);
    all.extend(["--disable-pip-version-check".into(), "--no-input".into(), "--progress-bar".into(), "off".into()]);
    job.step(job.config.pip_python.clone(), all)
}

/// Resolves `requirements` (downloading wheels into the job's directory) and returns the lock:
/// one `name==version --hash=sha256:…` line per wheel, sorted.
pub async fn resolve(job: &Job<'_>, p: &PythonPlatform, requirements: &str) -> Result<String, BuildError> {
    let req = job.dir.join("requirements.txt");
    job.write(&req, requirements)?;
    let wheels = job.dir.join("wheels");
    job.mkdir(&wheels)?;
    let mut args = vec!["download".to_string(), "--dest".into(), wheels.display().to_string()];
    args.extend(target_args(p));
    args.extend(["-r".into(), req.display().to_string()]);
    run(pip(job, args), job.log).await?;
    job.check_disk().await?;
    // Hashing tens of MB of wheels is blocking work.
    tokio::task::spawn_blocking(move || lock_of(&wheels))
        .await
        .map_err(|e| BuildError::Setup(format!("hashing wheels: {e}")))?
}

/// Downloads exactly the wheels of `lock` (hashes checked): what a node that did not resolve
/// the build runs, so it installs the same bytes.
pub async fn fetch(job: &Job<'_>, p: &PythonPlatform, lock: &str) -> Result<(), BuildError> {
    let req = job.dir.join("lock.txt");
    job.write(&req, lock)?;
    let wheels = job.dir.join("wheels");
    job.mkdir(&wheels)?;
    let mut args = vec!["download".to_string(), "--no-deps".into(), "--require-hashes".into(), "--dest".into(), wheels.display().to_string()];
    args.extend(target_args(p));
    args.extend(["-r".into(), req.display().to_string()]);
    run(pip(job, args), job.log).await?;
    job.check_disk().await
}

/// Installs the downloaded wheels of `lock` into `site/` (no index, no network needed) and
/// returns that directory. pip unpacks wheels; it runs none of their code.
pub async fn install(job: &Job<'_>, p: &PythonPlatform, lock: &str) -> Result<PathBuf, BuildError> {
    let req = job.dir.join("lock.txt");
    job.write(&req, lock)?;
    let site = job.dir.join("site");
    job.mkdir(&site)?;
    let mut args = vec![
        "install".to_string(),
        "--no-index".into(),
        "--no-deps".into(),
        "--require-hashes".into(),
        "--no-compile".into(),
        "--no-warn-script-location".into(),
        "--find-links".into(),
        job.dir.join("wheels").display().to_string(),
        "--target".into(),
        site.display().to_string(),
    ];
    args.extend(target_args(p));
    args.extend(["-r".into(), req.display().to_string()]);
    run(pip(job, args), job.log).await?;
    job.check_disk().await?;
    Ok(site)
}

/// `name version` of each package of a lock.
pub fn packages(lock: &str) -> Vec<String> {
    lock.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|pin| pin.split_once("=="))
        .map(|(n, v)| format!("{n} {v}"))
        .collect()
}

/// The lock of the wheels in `dir`, from their file names and contents.
fn lock_of(dir: &Path) -> Result<String, BuildError> {
    let io = |e: std::io::Error| BuildError::Setup(format!("reading wheels: {e}"));
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)?.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".whl") else { continue };
        // {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
        let mut parts = stem.split('-');
        let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
            return Err(BuildError::PackageManager(format!("unexpected wheel name `{file}`")));
        };
        let bytes = std::fs::read(e.path()).map_err(io)?;
        let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let name = name.to_ascii_lowercase().replace(['_', '.'], "-");
        lines.push(format!("{name}=={version} --hash=sha256:{hash}"));
    }
    if lines.is_empty() {
        return Err(BuildError::PackageManager("pip downloaded nothing".into()));
    }
    lines.sort();
    let mut lock = lines.join("\n");
    lock.push('\n');
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_versions_and_hashes_each_wheel() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"), b"a").expect("w");
        std::fs::write(dir.path().join("humanize-4.17.0-py3-none-any.whl"), b"b").expect("w");
        std::fs::write(dir.path().join("notes.txt"), b"c").expect("w");
        let lock = lock_of(dir.path()).expect("lock");
        let lines: Vec<&str> = lock.lines().collect();
        assert_eq!(lines.len(), 2, "{lock}");
        assert!(lines[0].starts_with("humanize==4.17.0 --hash=sha256:3e23"), "{lock}");
        assert!(lines[1].starts_with("pyyaml==6.0.2 --hash=sha256:ca97"), "{lock}");
        assert_eq!(packages(&lock), vec!["humanize 4.17.0", "pyyaml 6.0.2"]);
    }

    #[test]
    fn targets_the_images_interpreter() {
        let p = PythonPlatform { version: "3.11".into(), glibc: (2, 36), arch: "x86_64".into() };
        let args = target_args(&p).join(" ");
        assert!(args.contains("--python-version 3.11"), "{args}");
        assert!(args.contains("--abi cp311"), "{args}");
        assert!(args.contains("--platform manylinux_2_36_x86_64"), "{args}");
        assert!(args.contains("--platform manylinux_2_17_x86_64"), "{args}");
        assert!(args.contains("--platform manylinux2014_x86_64"), "{args}");
        assert!(!args.contains("manylinux_2_37"), "{args}");
    }
}
