//! Builds a function's dependencies into an image layer on top of its runtime image.
//!
//! Two steps, and neither the build nor the sandbox ever has network:
//! 1. **Resolve** on the host with the host's pip or npm (so the registries this machine is
//!    configured for), as an unprivileged user, for the image's interpreter and platform (asked
//!    of the image): wheels only for Python, `--ignore-scripts` for npm, so no package code
//!    runs on the host. The result is a **lock** (exact versions and hashes).
//! 2. **Install** from the lock into a tree and build it into `fnbox-deps-<lang>:<digest>`
//!    with `docker build --network none` (Python byte-compiles there). The digest is the
//!    lock's content address: functions with the same lock share one image, and any node
//!    builds the same bytes from the same lock.
//!
//! Builds run at most `max_builds` at a time, each within a deadline and a disk budget; images
//! that no function uses are removed after a grace period ([`Builder::collect`]).

pub mod command;
pub mod image;
pub mod node;
pub mod platform;
pub mod python;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use fnbox_core::build::image_digest;
use fnbox_core::{Dependencies, Language};
use fnbox_sandbox::DepsImage;
use parking_lot::Mutex;

pub use command::{BuildLog, RunAs};
use command::{give, Step};
use platform::{NodePlatform, PythonPlatform};

#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildError {
    /// pip or npm refused (the message is theirs and names the package).
    #[error("{0}")]
    PackageManager(String),
    #[error("the build took longer than its time limit")]
    Timeout,
    #[error("the build used more than its disk budget of {limit_mb} MB ({used_mb} MB)")]
    DiskBudget { used_mb: u64, limit_mb: u64 },
    #[error("the dependency image cache is full: {used_mb} MB of {limit_mb} MB, all of it in use")]
    CacheFull { used_mb: u64, limit_mb: u64 },
    #[error("docker: {0}")]
    Docker(String),
    #[error("{0}")]
    Setup(String),
}

#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// Where builds work (one directory per build, removed after it) and pip's and npm's
    /// download caches live.
    pub work_dir: PathBuf,
    pub max_builds: usize,
    pub timeout: Duration,
    /// Downloads plus installed tree, per build.
    pub max_build_bytes: u64,
    /// All dependency images together.
    pub max_cache_bytes: u64,
    /// How long an image no function uses is kept (a function put back soon is instant).
    pub gc_grace: Duration,
    pub python_image: String,
    pub node_image: String,
    /// The Python whose pip resolves (Debian's `/usr/bin/python3` by default: one that an
    /// unprivileged user can run).
    pub pip_python: PathBuf,
    pub npm: PathBuf,
    /// Who pip and npm run as (`nobody` when fnbox runs as root).
    pub run_as: Option<RunAs>,
    /// Memory for the `docker build` step (byte-compiling).
    pub build_memory_bytes: i32,
    /// This fnbox's instance id (its images' tags and label; see [`DepsImage::image_tag`]).
    pub instance: String,
}

impl BuilderConfig {
    pub fn new(work_dir: PathBuf) -> BuilderConfig {
        let root = command::current_uid() == Some(0);
        BuilderConfig {
            work_dir,
            max_builds: 2,
            timeout: Duration::from_secs(600),
            max_build_bytes: 2 << 30,
            max_cache_bytes: 20 << 30,
            gc_grace: Duration::from_secs(3600),
            python_image: "fnbox-python:latest".into(),
            node_image: "fnbox-node:latest".into(),
            pip_python: PathBuf::from("/usr/bin/python3"),
            npm: which("npm").unwrap_or_else(|| PathBuf::from("/usr/bin/npm")),
            run_as: root.then_some(RunAs { uid: 65534, gid: 65534 }),
            build_memory_bytes: 1 << 30,
            instance: "default".into(),
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(&p).ok().map(|_| p))
}

/// What resolving a function's dependencies produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub lock: String,
    /// The image's content address (see [`fnbox_core::Build::image`]).
    pub image: String,
    pub packages: Vec<String>,
    pub size_bytes: u64,
}

/// One build's working state, handed to the package-manager steps.
pub struct Job<'a> {
    pub(crate) config: &'a BuilderConfig,
    pub(crate) dir: PathBuf,
    pub(crate) log: &'a BuildLog,
    deadline: Instant,
    cache: PathBuf,
}

impl Job<'_> {
    pub(crate) fn step(&self, program: PathBuf, args: Vec<String>) -> Step {
        let home = self.cache.join("home");
        Step {
            program,
            args,
            dir: self.dir.clone(),
            env: vec![
                ("HOME".into(), home.display().to_string()),
                ("PIP_CACHE_DIR".into(), self.cache.join("pip").display().to_string()),
                ("npm_config_cache".into(), self.cache.join("npm").display().to_string()),
                // --target installs are not the system's packages (Debian's pip asks).
                ("PIP_BREAK_SYSTEM_PACKAGES".into(), "1".into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ],
            run_as: self.config.run_as,
            deadline: self.deadline,
        }
    }

    pub(crate) fn mkdir(&self, p: &Path) -> Result<(), BuildError> {
        std::fs::create_dir_all(p).map_err(|e| BuildError::Setup(format!("mkdir {}: {e}", p.display())))?;
        give(p, self.config.run_as)
    }

    pub(crate) fn write(&self, p: &Path, text: &str) -> Result<(), BuildError> {
        std::fs::write(p, text).map_err(|e| BuildError::Setup(format!("write {}: {e}", p.display())))?;
        give(p, self.config.run_as)
    }

    /// Walks the job's tree on the blocking pool (thousands of files in a node_modules).
    pub(crate) async fn check_disk(&self) -> Result<(), BuildError> {
        let used = tree_size(self.dir.clone()).await;
        if used > self.config.max_build_bytes {
            return Err(BuildError::DiskBudget { used_mb: used >> 20, limit_mb: self.config.max_build_bytes >> 20 });
        }
        Ok(())
    }
}

type Once<T> = Arc<tokio::sync::Mutex<Option<Result<T, BuildError>>>>;

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Builds dependency images; one per node. Cheap to share (`Arc`).
pub struct Builder {
    docker: Docker,
    config: BuilderConfig,
    slots: tokio::sync::Semaphore,
    /// One resolve per dependencies hash at a time; later askers get its result.
    resolving: Mutex<HashMap<String, Once<Resolved>>>,
    /// One image build per digest at a time.
    building: Mutex<HashMap<String, Once<()>>>,
    /// Digests whose image is here, built on the current runtime image.
    present: Mutex<HashSet<String>>,
    /// Builds from a lock that failed lately: calls meanwhile get the failure at once instead
    /// of each queueing a build bound to fail again (a registry down, a full disk).
    failed: Mutex<HashMap<String, (Instant, BuildError)>>,
    python: tokio::sync::OnceCell<(String, PythonPlatform)>,
    node: tokio::sync::OnceCell<(String, NodePlatform)>,
    /// When each image was first seen unused.
    unused_since: Mutex<HashMap<String, Instant>>,
    /// When images were built here: a fresh one is not collected before the function that
    /// waits for it has recorded it.
    built_at: Mutex<HashMap<String, Instant>>,
}

/// How long a failed build from a lock is not tried again.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);

/// Youngest image age that collection considers.
const MIN_AGE_FOR_COLLECTION: Duration = Duration::from_secs(30);

impl Builder {
    pub fn new(mut config: BuilderConfig) -> Result<Arc<Builder>, BuildError> {
        if config.run_as.is_some() && !others_can_enter(&config.work_dir) {
            // The package managers run as `nobody`, which cannot reach a data dir under a
            // private directory (a clone in /root): builds work in a root-owned place instead.
            let moved = PathBuf::from("/var/lib/fnbox/builds").join(&config.instance);
            tracing::info!(from = %config.work_dir.display(), to = %moved.display(), "dependency builds work outside the data dir (it is private)");
            config.work_dir = moved;
        }
        let docker = Docker::connect_with_local_defaults().map_err(|e| BuildError::Docker(e.to_string()))?;
        std::fs::create_dir_all(config.work_dir.join("cache/home"))
            .map_err(|e| BuildError::Setup(format!("{}: {e}", config.work_dir.display())))?;
        give(&config.work_dir.join("cache"), config.run_as)?;
        // Work directories of builds cut short by a restart.
        if let Ok(entries) = std::fs::read_dir(&config.work_dir) {
            for e in entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("job-")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(Arc::new(Builder {
            docker,
            slots: tokio::sync::Semaphore::new(config.max_builds.max(1)),
            config,
            resolving: Mutex::default(),
            building: Mutex::default(),
            present: Mutex::default(),
            failed: Mutex::default(),
            python: tokio::sync::OnceCell::new(),
            node: tokio::sync::OnceCell::new(),
            unused_since: Mutex::default(),
            built_at: Mutex::default(),
        }))
    }

    pub fn config(&self) -> &BuilderConfig {
        &self.config
    }

    async fn python_platform(&self) -> Result<&(String, PythonPlatform), BuildError> {
        self.python
            .get_or_try_init(|| async {
                let id = self.base_id(Language::Python).await?;
                Ok((id.clone(), platform::python(&self.docker, &id).await?))
            })
            .await
    }

    async fn node_platform(&self) -> Result<&(String, NodePlatform), BuildError> {
        self.node
            .get_or_try_init(|| async {
                let id = self.base_id(Language::Javascript).await?;
                Ok((id.clone(), platform::node(&self.docker, &id).await?))
            })
            .await
    }

    async fn base_id(&self, language: Language) -> Result<String, BuildError> {
        let name = match language {
            Language::Python => &self.config.python_image,
            Language::Javascript => &self.config.node_image,
        };
        image::image_id(&self.docker, name)
            .await?
            .ok_or_else(|| BuildError::Setup(format!("the runtime image {name} is missing (run `make setup`)")))
    }

    /// Resolves `deps` to a lock and builds its image here. Two calls for the same
    /// dependencies at once share one build.
    pub async fn resolve(&self, deps: &Dependencies, log: &BuildLog) -> Result<Resolved, BuildError> {
        let once = self.resolving.lock().entry(deps.hash()).or_default().clone();
        let mut slot = once.lock().await;
        if let Some(done) = slot.as_ref() {
            return done.clone();
        }
        let result = self.resolve_now(deps, log).await;
        *slot = Some(result.clone());
        drop(slot);
        self.resolving.lock().remove(&deps.hash());
        result
    }

    async fn resolve_now(&self, deps: &Dependencies, log: &BuildLog) -> Result<Resolved, BuildError> {
        let _slot = self.slots.acquire().await.map_err(|_| BuildError::Setup("the builder is shutting down".into()))?;
        let started = Instant::now();
        let job = self.job(log)?;
        let result = async {
            let lock = match deps.language {
                Language::Python => {
                    let (_, p) = self.python_platform().await?;
                    log.line(&format!("[fnbox] resolving for Python {} on {} (glibc {}.{}), wheels only", p.version, p.arch, p.glibc.0, p.glibc.1));
                    python::resolve(&job, p, &deps.requirements_txt()).await?
                }
                Language::Javascript => {
                    let (_, p) = self.node_platform().await?;
                    log.line(&format!("[fnbox] resolving for Node {} with install scripts off", p.version));
                    node::resolve(&job, p, &deps.package_json()).await?
                }
            };
            let (image, size_bytes) = self.install_and_build(&job, deps.language, &lock, false).await?;
            let packages = match deps.language {
                Language::Python => python::packages(&lock),
                Language::Javascript => node::packages(&lock),
            };
            log.line(&format!("[fnbox] built {} ({} packages, {} MB) in {:.1} s", image, packages.len(), size_bytes >> 20, started.elapsed().as_secs_f64()));
            Ok(Resolved { image: image_digest(deps.language, &lock), lock, packages, size_bytes })
        }
        .await;
        remove_tree(job.dir.clone()).await;
        result
    }

    /// Makes sure the image of `lock` is here (built on the current runtime image), building
    /// it from the lock when not: what a node that did not resolve the build, or that got a
    /// new runtime image, does before running the function.
    /// `digest` is the lock's content address ([`fnbox_core::Build::image`]), passed in so
    /// the check for an image already here hashes nothing.
    pub async fn ensure(&self, language: Language, digest: &str, lock: &str, log: &BuildLog) -> Result<(), BuildError> {
        if self.present.lock().contains(digest) {
            return Ok(());
        }
        if let Some(e) = self.recent_failure(digest) {
            return Err(e);
        }
        let digest = digest.to_owned();
        let once = self.building.lock().entry(digest.clone()).or_default().clone();
        let mut slot = once.lock().await;
        match slot.as_ref() {
            Some(Ok(())) => return Ok(()),
            // Those who waited for a build that just failed share its failure.
            Some(Err(e)) => return Err(e.clone()),
            None => {}
        }
        let result = self.ensure_now(language, lock, &digest, log).await;
        match &result {
            Ok(()) => {
                self.failed.lock().remove(&digest);
            }
            Err(e) => {
                self.failed.lock().insert(digest.clone(), (Instant::now(), e.clone()));
            }
        }
        *slot = Some(result.clone());
        drop(slot);
        self.building.lock().remove(&digest);
        result
    }

    async fn ensure_now(&self, language: Language, lock: &str, digest: &str, log: &BuildLog) -> Result<(), BuildError> {
        let tag = self.tag(language, digest)?;
        let base = match language {
            Language::Python => self.python_platform().await?.0.clone(),
            Language::Javascript => self.node_platform().await?.0.clone(),
        };
        if image::built_on(&self.docker, &tag).await?.as_deref() == Some(image::base_label(&base).as_str()) {
            self.present.lock().insert(digest.to_owned());
            return Ok(());
        }
        let _slot = self.slots.acquire().await.map_err(|_| BuildError::Setup("the builder is shutting down".into()))?;
        log.line(&format!("[fnbox] building {tag} from its lock"));
        let job = self.job(log)?;
        let result = async {
            if language == Language::Python {
                let (_, p) = self.python_platform().await?;
                python::fetch(&job, p, lock).await?;
            }
            self.install_and_build(&job, language, lock, true).await.map(|_| ())
        }
        .await;
        remove_tree(job.dir.clone()).await;
        result
    }

    /// Digests of the images known to be here (built or checked by this process), sorted.
    pub fn present(&self) -> Vec<String> {
        let mut all: Vec<String> = self.present.lock().iter().cloned().collect();
        all.sort();
        all
    }

    fn recent_failure(&self, digest: &str) -> Option<BuildError> {
        let mut failed = self.failed.lock();
        match failed.get(digest) {
            Some((at, e)) if at.elapsed() < RETRY_FAILED_AFTER => Some(e.clone()),
            Some(_) => {
                failed.remove(digest);
                None
            }
            None => None,
        }
    }

    fn tag(&self, language: Language, digest: &str) -> Result<String, BuildError> {
        DepsImage::parse(digest)
            .map(|d| d.image_tag(language, &self.config.instance))
            .ok_or_else(|| BuildError::Setup(format!("`{digest}` is not an image digest")))
    }

    fn job<'a>(&'a self, log: &'a BuildLog) -> Result<Job<'a>, BuildError> {
        let id = format!("job-{}", uuid_like());
        let job = Job {
            config: &self.config,
            dir: self.config.work_dir.join(id),
            log,
            deadline: Instant::now() + self.config.timeout,
            cache: self.config.work_dir.join("cache"),
        };
        job.mkdir(&job.dir)?;
        Ok(job)
    }

    /// Installs `lock` (already downloaded for Python) into a tree and builds its image.
    /// Returns the tag and the tree's size.
    async fn install_and_build(&self, job: &Job<'_>, language: Language, lock: &str, from_lock: bool) -> Result<(String, u64), BuildError> {
        let (base, tree) = match language {
            Language::Python => {
                let (base, p) = self.python_platform().await?;
                let site = python::install(job, p, lock).await?;
                (base.clone(), site)
            }
            Language::Javascript => {
                let (base, p) = self.node_platform().await?;
                let app = if from_lock {
                    node::install(job, p, lock).await?
                } else {
                    job.dir.join("app")
                };
                (base.clone(), app)
            }
        };
        let tree = if language == Language::Javascript {
            // Only node_modules goes into the image (the package.json and lock stay here).
            let nm = tree.join("node_modules");
            let wrap = job.dir.join("layer");
            job.mkdir(&wrap)?;
            std::fs::rename(&nm, wrap.join("node_modules")).map_err(|e| BuildError::Setup(format!("node_modules: {e}")))?;
            wrap
        } else {
            tree
        };
        let size = tree_size(tree.clone()).await;
        self.make_room(size).await?;
        let digest = image_digest(language, lock);
        let tag = self.tag(language, &digest)?;
        let context = job.dir.join("context.tar");
        let dockerfile = image::dockerfile(language, &base);
        {
            let (tree, context) = (tree.clone(), context.clone());
            tokio::task::spawn_blocking(move || image::context_tar(&dockerfile, &tree, &context))
                .await
                .map_err(|e| BuildError::Setup(format!("build context: {e}")))??;
        }
        let labels = HashMap::from([
            (image::LABEL_DEPS.to_string(), digest.clone()),
            (image::LABEL_BASE.to_string(), image::base_label(&base)),
            ("fnbox.deps.language".to_string(), language.as_str().to_string()),
            (image::LABEL_INSTANCE.to_string(), self.config.instance.clone()),
            (image::LABEL_SIZE.to_string(), size.to_string()),
        ]);
        let remaining = job.deadline.saturating_duration_since(Instant::now());
        let built = tokio::time::timeout(
            remaining,
            image::build(&self.docker, &context, &tag, labels, self.config.build_memory_bytes, job.log),
        )
        .await
        .map_err(|_| BuildError::Timeout)?;
        built?;
        self.built_at.lock().insert(digest.clone(), Instant::now());
        self.present.lock().insert(digest);
        Ok((tag, size))
    }

    /// Before adding `bytes` of images: unused ones go (grace or not) when the cache would
    /// pass its budget; if it still would, the build fails.
    async fn make_room(&self, bytes: u64) -> Result<(), BuildError> {
        let images = image::list(&self.docker, &self.config.instance).await?;
        let used: u64 = images.iter().map(|(_, _, s)| s).sum();
        if used + bytes <= self.config.max_cache_bytes {
            return Ok(());
        }
        let unused: Vec<String> = self.unused_since.lock().keys().cloned().collect();
        let mut freed = 0;
        for (tag, digest, size) in &images {
            if unused.contains(digest) && image::remove(&self.docker, tag).await.is_ok() {
                freed += size;
                self.forget(digest);
            }
        }
        let used = used - freed;
        if used + bytes > self.config.max_cache_bytes {
            return Err(BuildError::CacheFull { used_mb: (used + bytes) >> 20, limit_mb: self.config.max_cache_bytes >> 20 });
        }
        Ok(())
    }

    fn forget(&self, digest: &str) {
        self.present.lock().remove(digest);
        self.unused_since.lock().remove(digest);
    }

    /// Removes dependency images whose digest is not in `in_use` and has not been for the
    /// grace period. Returns the tags removed. An image a sandbox still runs from stays
    /// (Docker refuses) and goes at a later round.
    pub async fn collect(&self, in_use: &HashSet<String>) -> Result<Vec<String>, BuildError> {
        let images = image::list(&self.docker, &self.config.instance).await?;
        let now = Instant::now();
        let mut removed = Vec::new();
        for (tag, digest, _) in images {
            let fresh = self.built_at.lock().get(&digest).is_some_and(|t| t.elapsed() < MIN_AGE_FOR_COLLECTION);
            if in_use.contains(&digest) || fresh {
                self.unused_since.lock().remove(&digest);
                continue;
            }
            let since = *self.unused_since.lock().entry(digest.clone()).or_insert(now);
            if now.duration_since(since) < self.config.gc_grace {
                continue;
            }
            match image::remove(&self.docker, &tag).await {
                Ok(()) => {
                    tracing::info!(image = %tag, "unused dependency image removed");
                    self.forget(&digest);
                    removed.push(tag);
                }
                Err(e) => tracing::debug!(image = %tag, error = %e, "dependency image not removed yet"),
            }
        }
        Ok(removed)
    }
}

/// Removes a finished job's directory on the blocking pool: a node_modules tree is thousands of
/// files, and removing it on a runtime worker stalls every timer and socket of the server.
async fn remove_tree(dir: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
}

/// The size of a tree, measured on the blocking pool.
async fn tree_size(dir: PathBuf) -> u64 {
    tokio::task::spawn_blocking(move || command::disk_usage(&dir)).await.unwrap_or(u64::MAX)
}

/// Whether a user other than the owner can traverse every directory down to `dir`.
fn others_can_enter(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(abs) = std::path::absolute(dir) else { return false };
    abs.ancestors().filter(|p| p.exists()).all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// A unique enough directory name (time and a counter) without another dependency.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{t:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}
