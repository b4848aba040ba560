//! What a runtime image runs: its interpreter's version and platform, asked of the image
//! itself (in a container with no network), so downloaded wheels and packages match it and
//! not the host.

use bollard::Docker;

use crate::image::probe;
use crate::BuildError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonPlatform {
    /// `major.minor`, e.g. `3.11`.
    pub version: String,
    /// The image's glibc (major, minor): manylinux wheels up to it run there.
    pub glibc: (u32, u32),
    /// `x86_64`, `aarch64`, …
    pub arch: String,
}

impl PythonPlatform {
    /// The wheel platform tags this image can run, newest first (PEP 600 plus the legacy
    /// manylinux aliases).
    pub fn platform_tags(&self) -> Vec<String> {
        let a = &self.arch;
        let mut tags = Vec::new();
        if self.glibc.0 == 2 {
            for minor in (5..=self.glibc.1).rev() {
                tags.push(format!("manylinux_2_{minor}_{a}"));
                match minor {
                    17 => tags.push(format!("manylinux2014_{a}")),
                    12 => tags.push(format!("manylinux2010_{a}")),
                    5 => tags.push(format!("manylinux1_{a}")),
                    _ => {}
                }
            }
        }
        tags
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlatform {
    /// e.g. `18.20.4`.
    pub version: String,
}

pub async fn python(docker: &Docker, image: &str) -> Result<PythonPlatform, BuildError> {
    let out = probe(
        docker,
        image,
        &["python3", "-c", "import os,platform,sys;print('%d.%d'%sys.version_info[:2], os.confstr('CS_GNU_LIBC_VERSION'), platform.machine())"],
    )
    .await?;
    parse_python(&out).ok_or_else(|| BuildError::Docker(format!("unexpected answer from {image}'s python3: {out:?}")))
}

fn parse_python(out: &str) -> Option<PythonPlatform> {
    // "3.11 glibc 2.36 x86_64"
    let mut w = out.split_whitespace();
    let version = w.next()?.to_owned();
    let _glibc = w.next()?;
    let (maj, min) = w.next()?.split_once('.')?;
    let arch = w.next()?.to_owned();
    Some(PythonPlatform { version, glibc: (maj.parse().ok()?, min.parse().ok()?), arch })
}

pub async fn node(docker: &Docker, image: &str) -> Result<NodePlatform, BuildError> {
    let out = probe(docker, image, &["node", "-p", "process.versions.node"]).await?;
    let version = out.trim().to_owned();
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(BuildError::Docker(format!("unexpected answer from {image}'s node: {out:?}")));
    }
    Ok(NodePlatform { version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_probe() {
        let p = parse_python("3.11 glibc 2.36 x86_64\n").expect("parsed");
        assert_eq!(p, PythonPlatform { version: "3.11".into(), glibc: (2, 36), arch: "x86_64".into() });
        assert_eq!(p.platform_tags().first().map(String::as_str), Some("manylinux_2_36_x86_64"));
        assert!(p.platform_tags().contains(&"manylinux1_x86_64".to_string()));
        assert!(parse_python("garbage").is_none());
    }
}
