//! Checked sandboxes: the one that compiled a version's code is kept for that version's first
//! cold start and for nothing else.

use std::time::Instant;

use fnbox_core::{ErrorInfo, Function};

use super::Pools;
use crate::backend::{SandboxError, SandboxKey};
use crate::sandbox::Sandbox;

impl Pools {
    /// Compiles a function version's code without running it, in a sandbox of its own
    /// language, runtime and memory size. That sandbox has held the code from then on, so it
    /// never goes back to the generic pool: when the code compiles it is kept for this
    /// version's first cold start, else destroyed. `Ok(None)` means the code compiles.
    pub async fn check(&self, f: &Function) -> Result<Option<ErrorInfo>, SandboxError> {
        // A version whose dependency image is not built yet compiles in the plain image, and
        // that sandbox (without its packages) is not kept for its calls.
        let key = SandboxKey::for_function(f);
        let keep = key.deps.is_some() || f.dependencies.is_none();
        // A new version is the surest sign of calls to come: count it as demand, so that a
        // burst of new functions finds the generic pool grown for their checks and first calls.
        self.note_demand(key);
        let mut sb = match self.take_prestarted(key).await {
            Some(sb) => sb,
            None => self.launch(key, Some(f)).await?,
        };
        self.refill(key);
        let result = sb.check(&f.code, self.inner.config.check_timeout).await;
        let retired = self.is_retired_version(f);
        if matches!(result, Ok(None)) && !retired && keep {
            sb.last_used = Instant::now();
            if let Some(old) = self.inner.checked.lock().insert((f.id, f.version), sb) {
                self.discard(old);
            }
        } else {
            self.discard(sb);
        }
        result
    }

    /// Destroys the sandbox kept from checking a version that was then not stored.
    pub fn forget_checked(&self, f: &Function) {
        let sb = self.inner.checked.lock().remove(&(f.id, f.version));
        if let Some(sb) = sb {
            self.discard(sb);
        }
    }

    /// The sandbox that checked this version's code, if it is still alive.
    pub(super) fn take_checked(&self, f: &Function) -> Option<Sandbox> {
        let sb = self.inner.checked.lock().remove(&(f.id, f.version))?;
        if sb.is_alive() {
            Some(sb)
        } else {
            self.discard(sb);
            None
        }
    }
}

