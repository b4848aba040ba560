//! The Docker side of a build: what the base image runs (its interpreter's version and
//! platform), turning an installed package tree into an image layer, and listing and removing
//! those layers.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, ListImagesOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, WaitContainerOptions,
};
use bollard::Docker;
use fnbox_core::Language;
use futures_util::StreamExt;

use crate::command::BuildLog;
use crate::BuildError;

/// Label on every dependency image: its content address.
pub const LABEL_DEPS: &str = "fnbox.deps";
/// Label: the base image id it was built on and the recipe (a rebuilt runtime image, or a
/// change to [`dockerfile`], means a rebuild from the lock).
pub const LABEL_BASE: &str = "fnbox.deps.base";
/// Bumped whenever [`dockerfile`] changes what an image holds.
pub const RECIPE: u32 = 2;

/// What [`LABEL_BASE`] says of an image built now on `base`.
pub fn base_label(base: &str) -> String {
    format!("{base}+recipe{RECIPE}")
}
/// Label: bytes of packages the layer adds.
pub const LABEL_SIZE: &str = "fnbox.deps.size";
/// Label: the fnbox instance that built it (and may remove it).
pub const LABEL_INSTANCE: &str = "fnbox.instance";
/// Where the packages are inside the image.
pub const DEPS_DIR: &str = "/opt/fnbox/deps";

fn docker_err(e: bollard::errors::Error) -> BuildError {
    BuildError::Docker(e.to_string())
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// The image id of `image`, or `None` when it is not there.
pub async fn image_id(docker: &Docker, image: &str) -> Result<Option<String>, BuildError> {
    match docker.inspect_image(image).await {
        Ok(i) => Ok(i.id),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(docker_err(e)),
    }
}

/// The base id label of a dependency image, when the image exists.
pub async fn built_on(docker: &Docker, tag: &str) -> Result<Option<String>, BuildError> {
    match docker.inspect_image(tag).await {
        Ok(i) => Ok(Some(i.config.and_then(|c| c.labels).and_then(|l| l.get(LABEL_BASE).cloned()).unwrap_or_default())),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(docker_err(e)),
    }
}

/// Runs `cmd` in a throwaway container of `image` with no network and returns its stdout.
pub async fn probe(docker: &Docker, image: &str, cmd: &[&str]) -> Result<String, BuildError> {
    let body = ContainerCreateBody {
        image: Some(image.into()),
        entrypoint: Some(cmd.iter().map(|s| s.to_string()).collect()),
        cmd: Some(vec![]),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            memory: Some(256 * 1024 * 1024),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        labels: Some(HashMap::from([("fnbox.probe".to_string(), "1".to_string())])),
        ..Default::default()
    };
    let id = docker.create_container(None::<CreateContainerOptions>, body).await.map_err(docker_err)?.id;
    let result = async {
        docker.start_container(&id, None).await.map_err(docker_err)?;
        let mut wait = docker.wait_container(&id, None::<WaitContainerOptions>);
        let code = match tokio::time::timeout(std::time::Duration::from_secs(60), wait.next()).await {
            Ok(Some(Ok(w))) => w.status_code,
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => code,
            Ok(Some(Err(e))) => return Err(docker_err(e)),
            Ok(None) => -1,
            Err(_) => return Err(BuildError::Docker(format!("probing {image} took over 60 s"))),
        };
        let opts = LogsOptions { stdout: true, stderr: true, ..Default::default() };
        let mut logs = docker.logs(&id, Some(opts));
        let mut out = String::new();
        while let Some(chunk) = logs.next().await {
            match chunk {
                Ok(bollard::container::LogOutput::StdOut { message }) => out.push_str(&String::from_utf8_lossy(&message)),
                Ok(_) => {}
                Err(e) => return Err(docker_err(e)),
            }
        }
        if code != 0 {
            return Err(BuildError::Docker(format!("probing {image} exited with {code}")));
        }
        Ok(out)
    }
    .await;
    let _ = docker.remove_container(&id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
    result
}

/// Tar of the build context: the Dockerfile plus `deps/` (the installed tree), owned by
/// root and read-only for everyone (the sandbox's user can read it and change nothing).
pub fn context_tar(dockerfile: &str, tree: &Path, into: &Path) -> Result<(), BuildError> {
    let io = |e: std::io::Error| BuildError::Setup(format!("build context: {e}"));
    let file = std::fs::File::create(into).map_err(io)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o444);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).map_err(io)?;
    let mut stack = vec![(tree.to_owned(), std::path::PathBuf::from("deps"))];
    while let Some((dir, name)) = stack.pop() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o555);
        h.set_size(0);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, &name, std::io::empty()).map_err(io)?;
        let mut entries: Vec<_> = std::fs::read_dir(&dir).map_err(io)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let child = name.join(e.file_name());
            let meta = std::fs::symlink_metadata(&path).map_err(io)?;
            let ft = meta.file_type();
            if ft.is_dir() {
                stack.push((path, child));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io)?;
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                h.set_cksum();
                tar.append_link(&mut h, &child, &target).map_err(io)?;
            } else if ft.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let exec = meta.permissions().mode() & 0o111 != 0;
                let mut h = tar::Header::new_gnu();
                h.set_size(meta.len());
                h.set_mode(if exec { 0o555 } else { 0o444 });
                // Kept: Python checks a .pyc against its source's mtime.
                h.set_mtime(meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs()));
                h.set_cksum();
                let f = std::fs::File::open(&path).map_err(io)?;
                tar.append_data(&mut h, &child, f).map_err(io)?;
            }
        }
    }
    tar.into_inner().map_err(io)?;
    Ok(())
}

/// The Dockerfile of a dependency layer on `base` (an image id).
pub fn dockerfile(language: Language, base: &str) -> String {
    match language {
        // Compiled once here (the sandbox's root is read-only, so an import could not cache
        // bytecode and would compile every package at every cold start). Numeric libraries get one
        // thread: a sandbox has one CPU, and a BLAS thread pool started at import is a thread the
        // host would find after every call (and discard the sandbox for).
        Language::Python => format!(
            "FROM {base}\nUSER 0:0\nCOPY deps {DEPS_DIR}/python\n\
             RUN python3 -m compileall -q -j 0 {DEPS_DIR}/python >/dev/null 2>&1 || true\n\
             ENV PYTHONPATH={DEPS_DIR}/python OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1\n\
             USER 65534:65534\n"
        ),
        Language::Javascript => {
            format!("FROM {base}\nCOPY deps {DEPS_DIR}/node\nENV NODE_PATH={DEPS_DIR}/node/node_modules\n")
        }
    }
}

/// Builds the context at `tar_path` into `tag`, with no network for its steps.
pub async fn build(
    docker: &Docker,
    tar_path: &Path,
    tag: &str,
    labels: HashMap<String, String>,
    memory_bytes: i32,
    log: &BuildLog,
) -> Result<(), BuildError> {
    let opts = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.into()),
        rm: true,
        forcerm: true,
        networkmode: Some("none".into()),
        memory: Some(memory_bytes),
        memswap: Some(memory_bytes),
        labels: Some(labels),
        pull: None,
        ..Default::default()
    };
    let file = tokio::fs::File::open(tar_path).await.map_err(|e| BuildError::Setup(format!("build context: {e}")))?;
    let body = bollard::body_try_stream(tokio_util_free_stream(file));
    let mut stream = docker.build_image(opts, None, Some(body));
    while let Some(item) = stream.next().await {
        let info = item.map_err(docker_err)?;
        if let Some(s) = info.stream.as_deref() {
            for line in s.lines().filter(|l| !l.trim().is_empty()) {
                log.line(line);
            }
        }
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(BuildError::Docker(e));
        }
    }
    Ok(())
}

/// A file as a stream of chunks (what bollard's body wants), read 256 KiB at a time.
fn tokio_util_free_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// Every dependency image of `instance`: (tag, content address, size in bytes).
pub async fn list(docker: &Docker, instance: &str) -> Result<Vec<(String, String, u64)>, BuildError> {
    let opts = ListImagesOptions {
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![LABEL_DEPS.to_string(), format!("{LABEL_INSTANCE}={instance}")],
        )])),
        ..Default::default()
    };
    let images = docker.list_images(Some(opts)).await.map_err(docker_err)?;
    Ok(images
        .into_iter()
        .filter_map(|i| {
            let digest = i.labels.get(LABEL_DEPS)?.clone();
            let tag = i.repo_tags.first().cloned().unwrap_or_else(|| i.id.clone());
            // The layer's own size (the image's includes the runtime image it shares).
            let size = i.labels.get(LABEL_SIZE).and_then(|s| s.parse().ok()).unwrap_or(0);
            Some((tag, digest, size))
        })
        .collect())
}

pub async fn remove(docker: &Docker, tag: &str) -> Result<(), BuildError> {
    match docker.remove_image(tag, Some(RemoveImageOptions { force: false, noprune: false, ..Default::default() }), None).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(docker_err(e)),
    }
}
