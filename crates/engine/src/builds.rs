//! The build lifecycle of function versions with dependencies: planned at create and update,
//! run in the background, recorded on the function, waited for by the API, and the image
//! made present before a call runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fnbox_builder::{BuildError, BuildLog, Resolved};
use fnbox_core::build::{tail_logs, MAX_BUILD_LOG_BYTES};
use fnbox_core::{Build, BuildReport, BuildStatus, Dependencies, Function, NotRunnable, ValidationErrors};

use crate::{Engine, EngineError};

/// How often a waiting `GET …/build?wait=` looks at the function again.
const WAIT_POLL: Duration = Duration::from_millis(200);
/// Attempts at writing a finished build over concurrent writes (another node's, in a cluster).
const FINISH_ATTEMPTS: usize = 6;

/// The version of `f` that runs now (see [`Function::runnable`]).
pub(crate) fn runnable_version(f: &Function) -> u32 {
    f.runnable().map(|r| r.version).unwrap_or(f.version)
}

impl Engine {
    /// The dependencies `f` asks for (`None`: no build needed).
    pub(crate) fn dependencies_of(&self, f: &Function) -> Result<Option<Dependencies>, EngineError> {
        let Some(text) = f.dependencies.as_deref() else { return Ok(None) };
        let deps = Dependencies::parse(f.language, text)?;
        if deps.is_some() && self.inner.config.builder.is_none() {
            return Err(EngineError::Invalid(ValidationErrors::single(
                "dependencies",
                "this fnbox runs without a dependency builder, so functions cannot have dependencies",
            )));
        }
        Ok(deps)
    }

    /// A build for a version with `deps`: a copy of a ready build of the same dependencies
    /// when a function has one (no work at all), else a new one to run.
    pub(crate) fn plan_build(&self, deps: &Dependencies, version: u32) -> Build {
        let hash = deps.hash();
        let now = Utc::now();
        let shared = self.inner.functions.read().values().find_map(|g| {
            [g.build.as_ref(), g.serving.as_ref().and_then(|s| s.build.as_ref())]
                .into_iter()
                .flatten()
                .find(|b| b.deps_hash == hash && b.status == BuildStatus::Ready && b.lock.is_some())
                .map(|b| (g.name.clone(), b.clone()))
        });
        match shared {
            Some((from, b)) => Build {
                version,
                logs: format!("[fnbox] the same dependencies as `{from}`: its build (image {}) is shared\n", b.image.as_deref().unwrap_or("?")),
                started_at: now,
                finished_at: Some(now),
                duration_ms: Some(0),
                ..b
            },
            None => Build::started(hash, version, self.node_id().map(str::to_owned), now),
        }
    }

    /// Sets `f.serving`: the version calls run while `f`'s own build is not ready, taken from
    /// `previous` (the function before this write).
    pub(crate) fn plan_serving(f: &mut Function, previous: Option<&Function>) {
        let own_ready = f.build.as_ref().is_none_or(|b| b.status == BuildStatus::Ready);
        f.serving = if own_ready {
            None
        } else {
            previous.and_then(|p| p.runnable().ok()).map(|r| Box::new(Function { serving: None, ..r.clone() }))
        };
    }

    /// After a write: a version still to build gets its build started; a ready one gets its
    /// image made present here in the background.
    pub(crate) fn after_write(&self, f: &Function) {
        let Some(b) = &f.build else { return };
        match b.status {
            BuildStatus::Building => match self.dependencies_of(f) {
                Ok(Some(deps)) => self.spawn_build(deps),
                Ok(None) | Err(_) => {}
            },
            BuildStatus::Ready => self.prefetch(f),
            _ => {}
        }
    }

    /// Makes the image of `f`'s ready build (and of the version serving) present here, in the
    /// background: the first call then does not wait for it.
    pub(crate) fn prefetch(&self, f: &Function) {
        let Some(builder) = self.inner.config.builder.clone() else { return };
        for v in [Some(f), f.serving.as_deref()].into_iter().flatten() {
            let Some(b) = v.build.as_ref().filter(|b| b.status == BuildStatus::Ready) else { continue };
            let (Some(image), Some(lock)) = (b.image.clone(), b.lock.clone()) else { continue };
            let (builder, language, name) = (builder.clone(), v.language, v.name.clone());
            tokio::spawn(async move {
                if let Err(e) = builder.ensure(language, &image, &lock, &BuildLog::default()).await {
                    tracing::warn!(function = %name, error = %e, "dependency image not prepared; the first call will try again");
                }
            });
        }
    }

    fn spawn_build(&self, deps: Dependencies) {
        let Some(builder) = self.inner.config.builder.clone() else { return };
        let hash = deps.hash();
        let log = self.inner.build_logs.lock().entry(hash.clone()).or_default().clone();
        let this = self.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            tracing::info!(deps = %hash, packages = ?deps.packages, "dependency build started");
            let result = builder.resolve(&deps, &log).await;
            match &result {
                Ok(r) => tracing::info!(deps = %hash, image = %r.image, seconds = t0.elapsed().as_secs_f64(), "dependency build ready"),
                Err(e) => tracing::warn!(deps = %hash, error = %e, "dependency build failed"),
            }
            this.finish_build(&hash, &result, &log, t0.elapsed()).await;
            this.inner.build_logs.lock().remove(&hash);
        });
    }

    /// Writes a finished build onto every function version that waits for it.
    async fn finish_build(&self, hash: &str, result: &Result<Resolved, BuildError>, log: &BuildLog, took: Duration) {
        let _writing = self.inner.writes.lock().await;
        let waiting = |f: &Function| f.build.as_ref().is_some_and(|b| b.deps_hash == hash && b.status == BuildStatus::Building);
        let names: Vec<String> = self.inner.functions.read().values().filter(|f| waiting(f)).map(|f| f.name.clone()).collect();
        for name in names {
            for _ in 0..FINISH_ATTEMPTS {
                let current = if self.inner.cluster.get().is_some() {
                    match self.refresh_function(&name).await {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(function = %name, error = %e, "cannot record a finished build yet");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    }
                } else {
                    match self.get_function(&name) {
                        Ok(f) => f,
                        Err(_) => break,
                    }
                };
                if !waiting(&current) {
                    break;
                }
                let mut f = (*current).clone();
                let now = Utc::now();
                if let Some(b) = f.build.as_mut() {
                    b.finished_at = Some(now);
                    b.duration_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
                    b.logs = tail_logs(&log.text(), MAX_BUILD_LOG_BYTES);
                    match result {
                        Ok(r) => {
                            b.status = BuildStatus::Ready;
                            b.lock = Some(r.lock.clone());
                            b.image = Some(r.image.clone());
                            b.packages = r.packages.clone();
                            b.size_bytes = Some(r.size_bytes);
                        }
                        Err(e) => {
                            b.status = BuildStatus::Failed;
                            b.error = Some(e.to_string());
                        }
                    }
                }
                if result.is_ok() {
                    f.serving = None;
                }
                f.updated_at = now.max(current.updated_at + chrono::Duration::microseconds(1));
                match self.inner.store.update_function(&f, current.updated_at).await {
                    Ok(()) => {
                        let f = Arc::new(f);
                        self.inner.functions.write().insert(name.clone(), f.clone());
                        self.announce_function(&f);
                        if result.is_ok() {
                            // The version that served meanwhile finishes its calls and goes.
                            self.inner.pools.retire(f.id, f.version);
                        }
                        break;
                    }
                    Err(fnbox_core::StoreError::Stale(_)) => continue,
                    Err(e) => {
                        tracing::warn!(function = %name, error = %e, "cannot record a finished build yet");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }

    /// Builds that a restart cut short start again (those this node started, in a cluster).
    pub(crate) fn resume_builds(&self) {
        let me = self.node_id().map(str::to_owned);
        let all = self.list_functions();
        let mut started = HashSet::new();
        for f in &all {
            match f.build.as_ref() {
                Some(b) if b.status == BuildStatus::Building && b.node == me => {
                    if started.insert(b.deps_hash.clone()) {
                        if let Ok(Some(deps)) = self.dependencies_of(f) {
                            tracing::info!(function = %f.name, "dependency build resumed after a restart");
                            self.spawn_build(deps);
                        }
                    }
                }
                _ => self.prefetch(f),
            }
        }
    }

    /// Builds that no live node runs: started by a node that died (and has not come back), or
    /// by this node when its start was missed. The first live node by id takes them over;
    /// should two build at once, the first to finish is recorded and the other changes nothing.
    /// Another node's builds are judged only once this node has been in the cluster for a
    /// liveness window: before, a live owner may simply not have been heard from yet.
    pub(crate) fn adopt_lost_builds(&self) {
        let Some(m) = self.inner.cluster.get() else { return };
        let me = m.cluster.node_id().to_owned();
        let live: HashSet<String> = m.cluster.view().live().iter().map(|n| n.info.id.clone()).chain([me.clone()]).collect();
        let heard_everyone = (Utc::now() - m.started_at).to_std().is_ok_and(|t| t >= fnbox_cluster::LIVE_WINDOW);
        let first = heard_everyone && live.iter().min().is_some_and(|n| *n == me);
        let mut started = HashSet::new();
        for f in self.list_functions() {
            let Some(b) = f.build.as_ref().filter(|b| b.status == BuildStatus::Building) else { continue };
            if self.inner.build_logs.lock().contains_key(&b.deps_hash) || started.contains(&b.deps_hash) {
                continue;
            }
            let owner_alive = b.node.as_ref().is_some_and(|n| live.contains(n));
            let mine = b.node.as_deref() == Some(me.as_str());
            if mine || (!owner_alive && first) {
                if let Ok(Some(deps)) = self.dependencies_of(&f) {
                    tracing::info!(function = %f.name, owner = ?b.node, "dependency build that no live node runs: building it here");
                    started.insert(b.deps_hash.clone());
                    self.spawn_build(deps);
                }
            }
        }
    }

    /// The current version's build with its logs (live while it runs).
    pub fn build_report(&self, f: &Function) -> BuildReport {
        let mut build = f.build.clone();
        if let Some(b) = build.as_mut().filter(|b| b.status == BuildStatus::Building) {
            if let Some(log) = self.inner.build_logs.lock().get(&b.deps_hash) {
                b.logs = tail_logs(&log.text(), MAX_BUILD_LOG_BYTES);
            }
        }
        BuildReport {
            function: f.name.clone(),
            version: f.version,
            status: build.as_ref().map_or(BuildStatus::None, |b| b.status),
            serving_version: f.serving.as_ref().map(|s| s.version),
            build,
        }
    }

    /// The build of `name`, once it is no longer running or `wait` has passed.
    pub async fn wait_build(&self, name: &str, wait: Duration) -> Result<BuildReport, EngineError> {
        let deadline = Instant::now() + wait;
        loop {
            let f = self.resolve_function(name).await?;
            let building = f.build.as_ref().is_some_and(|b| b.status == BuildStatus::Building);
            if !building || Instant::now() >= deadline {
                return Ok(self.build_report(&f));
            }
            tokio::time::sleep(WAIT_POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// The version of `f` that runs now, or why none can.
    pub(crate) fn runnable_of(&self, f: Arc<Function>) -> Result<Arc<Function>, EngineError> {
        match f.runnable() {
            Ok(r) if std::ptr::eq(r, f.as_ref()) => Ok(f),
            Ok(r) => Ok(Arc::new(r.clone())),
            Err(NotRunnable::Pending) => Err(EngineError::BuildPending(f.name.clone())),
            Err(NotRunnable::Failed(message)) => Err(EngineError::BuildFailed { name: f.name.clone(), message }),
        }
    }

    /// [`Engine::runnable_of`], but in a cluster a version that looks pending or failed here is
    /// read again first: the notice that its build ended on another node may still be on its way.
    pub(crate) async fn runnable_now(&self, f: Arc<Function>) -> Result<Arc<Function>, EngineError> {
        match self.runnable_of(f.clone()) {
            Err(EngineError::BuildPending(_) | EngineError::BuildFailed { .. }) if self.inner.cluster.get().is_some() => {
                let fresh = self.refresh_function(&f.name).await?.ok_or_else(|| EngineError::FunctionNotFound(f.name.clone()))?;
                self.runnable_of(fresh)
            }
            other => other,
        }
    }

    /// Before a call of `f` (a runnable version): its dependency image is here. Free when it
    /// is known to be (the usual case); a build from the lock when not.
    pub(crate) async fn ensure_image(&self, f: &Function) -> Result<(), EngineError> {
        let Some(b) = f.build.as_ref() else { return Ok(()) };
        let (Some(image), Some(lock)) = (b.image.as_deref(), b.lock.as_deref()) else { return Ok(()) };
        let Some(builder) = self.inner.config.builder.as_ref() else {
            return Err(EngineError::Unavailable("this fnbox has no dependency builder".into()));
        };
        builder
            .ensure(f.language, image, lock, &BuildLog::default())
            .await
            .map_err(|e| EngineError::Unavailable(format!("the dependency image of `{}` cannot be prepared: {e}", f.name)))
    }

    /// Digests of the dependency images ready on this node.
    pub fn dependency_images(&self) -> Vec<String> {
        self.inner.config.builder.as_ref().map(|b| b.present()).unwrap_or_default()
    }

    /// Removes dependency images that no function version uses (after the builder's grace).
    pub(crate) fn spawn_image_collector(&self, every: Duration) {
        let Some(builder) = self.inner.config.builder.clone() else { return };
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let in_use: HashSet<String> = inner
                    .functions
                    .read()
                    .values()
                    .flat_map(|f| [f.build.as_ref(), f.serving.as_ref().and_then(|s| s.build.as_ref())])
                    .flatten()
                    .filter_map(|b| b.image.clone())
                    .collect();
                drop(inner);
                if let Err(e) = builder.collect(&in_use).await {
                    tracing::debug!(error = %e, "dependency image collection skipped");
                }
            }
        });
    }
}
