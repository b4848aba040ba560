//! JavaScript packages with the host's npm: `--ignore-scripts`, so no package's install script
//! runs on the host; packages that need one (native addons built by node-gyp) are not
//! supported, which the docs say.

use std::path::PathBuf;

use crate::command::{run, Step};
use crate::platform::NodePlatform;
use crate::{BuildError, Job};

fn npm(job: &Job<'_>, _node: &NodePlatform, mut args: Vec<String>) -> Step {
    args.extend([
        "--ignore-scripts".to_string(),
        "--omit=dev".into(),
        "--no-bin-links".into(),
        "--no-audit".into(),
        "--no-fund".into(),
        "--update-notifier=false".into(),
        "--loglevel=warn".into(),
    ]);
    job.step(job.config.npm.clone(), args)
}

/// Resolves and installs `package_json`'s dependencies; returns the package-lock.json (the
/// lock) and leaves `node_modules/` in the job's directory.
pub async fn resolve(job: &Job<'_>, p: &NodePlatform, package_json: &str) -> Result<String, BuildError> {
    let dir = job.dir.join("app");
    job.mkdir(&dir)?;
    job.write(&dir.join("package.json"), package_json)?;
    let mut step = npm(job, p, vec!["install".into(), "--package-lock=true".into()]);
    step.dir = dir.clone();
    run(step, job.log).await?;
    job.check_disk().await?;
    std::fs::read_to_string(dir.join("package-lock.json"))
        .map_err(|e| BuildError::PackageManager(format!("npm wrote no package-lock.json: {e}")))
}

/// Installs exactly `lock` (`npm ci`: integrity hashes checked) and returns the directory that
/// holds `node_modules/`. Used by a node that did not resolve the build.
pub async fn install(job: &Job<'_>, p: &NodePlatform, lock: &str) -> Result<PathBuf, BuildError> {
    let dir = job.dir.join("app");
    job.mkdir(&dir)?;
    job.write(&dir.join("package.json"), &package_json_of(lock)?)?;
    job.write(&dir.join("package-lock.json"), lock)?;
    let mut step = npm(job, p, vec!["ci".into()]);
    step.dir = dir.clone();
    run(step, job.log).await?;
    job.check_disk().await?;
    Ok(dir)
}

/// The package.json a lock was made from (its root entry keeps the dependencies).
fn package_json_of(lock: &str) -> Result<String, BuildError> {
    let doc: serde_json::Value =
        serde_json::from_str(lock).map_err(|e| BuildError::PackageManager(format!("the lock is not JSON: {e}")))?;
    let root = &doc["packages"][""];
    let pj = serde_json::json!({
        "name": doc["name"].as_str().unwrap_or("fnbox-function"),
        "version": root["version"].as_str().unwrap_or("1.0.0"),
        "private": true,
        "dependencies": root["dependencies"].clone(),
    });
    Ok(pj.to_string())
}

/// `name version` of every installed package of a lock.
pub fn packages(lock: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(lock) else { return Vec::new() };
    let Some(pkgs) = doc["packages"].as_object() else { return Vec::new() };
    let mut out: Vec<String> = pkgs
        .iter()
        .filter_map(|(path, p)| {
            let name = path.rsplit_once("node_modules/").map(|(_, n)| n)?;
            Some(format!("{name} {}", p["version"].as_str().unwrap_or("?")))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"{"name":"fnbox-function","version":"1.0.0","lockfileVersion":3,"requires":true,
        "packages":{"":{"name":"fnbox-function","version":"1.0.0","dependencies":{"dayjs":"^1.11.0"}},
        "node_modules/dayjs":{"version":"1.11.13","resolved":"https://registry.npmjs.org/dayjs/-/dayjs-1.11.13.tgz","integrity":"sha512-x"},
        "node_modules/@scope/x":{"version":"2.0.0"}}}"#;

    #[test]
    fn the_lock_gives_back_its_package_json_and_packages() {
        let pj: serde_json::Value = serde_json::from_str(&package_json_of(LOCK).expect("pj")).expect("json");
        assert_eq!(pj["dependencies"]["dayjs"], "^1.11.0");
        assert_eq!(pj["name"], "fnbox-function");
        assert_eq!(packages(LOCK), vec!["@scope/x 2.0.0", "dayjs 1.11.13"]);
    }
}
