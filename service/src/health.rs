//! Named readiness checks that the service's tasks update as they go.
//!
//! `/readyz` is ready only when every registered check is; each check carries
//! a short detail in plain words ("gateway connected", "database unreachable:
//! ...") that the endpoint returns as JSON.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

/// One check's state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Whether this part of the service is ready.
    pub ready: bool,
    /// A short explanation.
    pub detail: String,
}

/// Shared, cheaply cloned set of checks.
#[derive(Debug, Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<BTreeMap<String, Check>>>,
}

impl Health {
    /// An empty set: ready until a check is registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or registers) a check.
    pub fn set(&self, name: &str, ready: bool, detail: impl Into<String>) {
        let detail = detail.into();
        let mut checks = self.checks.write().unwrap_or_else(|p| p.into_inner());
        let changed = checks
            .get(name)
            .is_none_or(|c| c.ready != ready || c.detail != detail);
        if changed {
            checks.insert(name.to_owned(), Check { ready, detail });
        }
    }

    /// True when every check is ready.
    pub fn is_ready(&self) -> bool {
        self.snapshot().values().all(|c| c.ready)
    }

    /// A copy of every check.
    pub fn snapshot(&self) -> BTreeMap<String, Check> {
        // A poisoned lock only means a writer panicked mid-insert of a plain
        // value; the map is still consistent.
        self.checks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The state of one check.
    pub fn get(&self, name: &str) -> Option<Check> {
        self.snapshot().get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_ready_only_when_every_check_is() {
        let health = Health::new();
        assert!(health.is_ready());
        health.set("database", true, "answering");
        health.set("gateway", false, "connecting");
        assert!(!health.is_ready());
        health.set("gateway", true, "connected");
        assert!(health.is_ready());
    }
}
