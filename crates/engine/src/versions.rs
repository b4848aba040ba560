//! A function's versions (list, read, roll back, invoke one by number) and its saved test
//! events.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use fnbox_core::version::validate_test_event_name;
use fnbox_core::{
    BuildStatus, Execution, Function, FunctionPatch, RawJson, TestEvent, TestEventSaved, Trigger, VersionSummary, MAX_TEST_EVENTS,
};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::engine::Attempt;
use crate::{Engine, EngineError};

/// The pool identity of function `id`'s versions when called by number. Their sandboxes are
/// keyed by this and the version, apart from the current version's (keyed by `id`): retiring
/// the versions an update replaced must not stop a call of an old version, and a sandbox
/// loaded with one version's code never serves another's. Derived, so nothing is stored, and
/// never a real function's id (the version nibble of a UUIDv7 is flipped from 7 to 8).
pub(crate) fn pinned_pool_id(id: Uuid) -> Uuid {
    Uuid::from_u128(id.as_u128() ^ (0xf << 76))
}

impl Engine {
    /// Retires every sandbox of function `id`, those of versions called by number included
    /// (it was deleted or replaced by another function of the same name).
    pub(crate) fn retire_function(&self, id: Uuid) {
        self.inner.pools.retire(id, u32::MAX);
        self.inner.pools.retire(pinned_pool_id(id), u32::MAX);
    }

    /// The versions kept of `name`, newest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>, EngineError> {
        self.resolve_function(name).await?;
        Ok(self.store().list_versions(name).await?)
    }

    /// The snapshot of version `version` of `name` (its environment values included: for the
    /// engine only; the API shows their names).
    pub async fn version(&self, name: &str, version: u32) -> Result<Function, EngineError> {
        let current = self.resolve_function(name).await?;
        self.store()
            .get_version(name, version)
            .await?
            .filter(|v| v.id == current.id)
            .ok_or_else(|| EngineError::VersionNotFound { name: name.to_owned(), version })
    }

    /// Makes a new version whose code and version settings (language, runtime, code, timeout,
    /// memory, environment, dependencies) are those of `version`. What is not part of a
    /// version (description, concurrency, retries, sample input, function URL) stays as it is.
    /// History is never rewritten: the new version is the current one plus one.
    pub async fn rollback(&self, name: &str, version: u32, if_match: Option<&str>) -> Result<Arc<Function>, EngineError> {
        let target = self.version(name, version).await?;
        self.update_function_with(name, if_match, true, |current| {
            if current.id != target.id {
                // Deleted and created again since the snapshot was read.
                return Err(EngineError::VersionNotFound { name: name.to_owned(), version });
            }
            let mut env: BTreeMap<String, Option<String>> = current.env.keys().map(|k| (k.clone(), None)).collect();
            env.extend(target.env.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
            Ok(FunctionPatch {
                language: Some(target.language),
                runtime: Some(target.runtime),
                code: Some(target.code.clone()),
                timeout_ms: Some(target.timeout_ms),
                memory_mb: Some(target.memory_mb),
                env: Some(env),
                dependencies: Some(target.dependencies.clone()),
                ..FunctionPatch::default()
            })
        })
        .await
    }

    /// Invokes version `version` of `name`. The version that runs now is called as by
    /// [`Engine::invoke_by`]; an older one runs its own snapshot (code, settings, environment
    /// and dependency image) in sandboxes of its own, on this node, and its record says its
    /// version. A version whose dependencies never finished building cannot run (409).
    pub async fn invoke_version(
        &self,
        name: &str,
        version: u32,
        event: Box<RawValue>,
        trigger: Trigger,
    ) -> Result<Execution, EngineError> {
        self.inner.store.available()?;
        let current = self.resolve_function(name).await?;
        let limit = self.inner.config.limits.max_input_bytes;
        if event.get().len() > limit {
            return Err(EngineError::InputTooLarge { size: event.get().len(), limit });
        }
        if version == current.version {
            // Its build may be running or have failed: then it cannot run (a call without a
            // version would run the one serving meanwhile, which is not what was asked for).
            let f = self.runnable_now(current).await?;
            if f.version != version {
                return Err(EngineError::VersionNotRunnable {
                    name: name.to_owned(),
                    version,
                    reason: "its dependencies are not built (yet); the version serving meanwhile runs calls without `version`".into(),
                });
            }
            return self.route(f, event, trigger).await;
        }
        if let Some(serving) = current.serving.as_ref().filter(|s| s.version == version) {
            return self.route(Arc::new((**serving).clone()), event, trigger).await;
        }
        let snapshot = self.version(name, version).await?;
        if let Some(b) = snapshot.build.as_ref().filter(|b| b.status != BuildStatus::Ready) {
            let reason = match b.status {
                BuildStatus::Failed => format!("its dependencies failed to build: {}", b.error.as_deref().unwrap_or("no message")),
                _ => "it was replaced before its dependencies were built".to_owned(),
            };
            return Err(EngineError::VersionNotRunnable { name: name.to_owned(), version, reason });
        }
        let pinned = Function { id: pinned_pool_id(snapshot.id), serving: None, ..snapshot };
        let attempt = Attempt { pinned: true, ..Attempt::fresh() };
        self.invoke_attempt(Arc::new(pinned), event, trigger, attempt).await
    }

    /// The test events saved with `name`, by name.
    pub async fn test_events(&self, name: &str) -> Result<Vec<TestEvent>, EngineError> {
        self.resolve_function(name).await?;
        Ok(self.store().list_test_events(name).await?)
    }

    /// Saves (creates or replaces) test event `event_name` of `name`; true when it is new.
    pub async fn save_test_event(&self, name: &str, event_name: &str, event: Box<RawValue>) -> Result<(TestEvent, bool), EngineError> {
        validate_test_event_name(event_name)?;
        let limit = self.inner.config.limits.max_input_bytes;
        if event.get().len() > limit {
            return Err(EngineError::InputTooLarge { size: event.get().len(), limit });
        }
        self.resolve_function(name).await?;
        let saved = TestEvent { name: event_name.to_owned(), event: RawJson::from(event), updated_at: Utc::now() };
        match self.store().put_test_event(name, &saved, MAX_TEST_EVENTS).await? {
            TestEventSaved::Created => Ok((saved, true)),
            TestEventSaved::Replaced => Ok((saved, false)),
            TestEventSaved::Full => Err(EngineError::TooManyTestEvents { name: name.to_owned(), max: MAX_TEST_EVENTS }),
        }
    }

    pub async fn delete_test_event(&self, name: &str, event_name: &str) -> Result<(), EngineError> {
        self.resolve_function(name).await?;
        if self.store().delete_test_event(name, event_name).await? {
            Ok(())
        } else {
            Err(EngineError::TestEventNotFound { name: name.to_owned(), event: event_name.to_owned() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pinned_pool_id;

    #[test]
    fn a_pinned_pool_id_is_no_function_id_and_stays_the_same() {
        let id = uuid::Uuid::now_v7();
        let pinned = pinned_pool_id(id);
        assert_ne!(pinned, id);
        assert_eq!(pinned.get_version_num(), 8);
        assert_eq!(pinned, pinned_pool_id(id), "derived, the same every time");
        assert_eq!(pinned_pool_id(pinned), id);
    }
}
