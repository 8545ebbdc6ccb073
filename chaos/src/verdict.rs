//! Checks and their outcome: what a scenario promised, and whether it held.

use serde::Serialize;

/// What kind of promise a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Nothing lost, nothing applied twice: must hold whatever happens.
    Safety,
    /// Everything is eventually done.
    Liveness,
    /// Done within a time bound (scaled by the run's timing factor).
    Timing,
    /// The fault really happened and really forced a redelivery; without
    /// it the scenario proved nothing.
    Proof,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Safety => "safety",
            Kind::Liveness => "liveness",
            Kind::Timing => "timing",
            Kind::Proof => "proof",
        }
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name (`I0 no loss`, `redelivery happened`, ...).
    pub name: String,
    /// What kind of promise.
    pub kind: Kind,
    /// Whether it held.
    pub passed: bool,
    /// The evidence, in words.
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:<8} {}: {}",
            if self.passed { "ok  " } else { "FAIL" },
            self.kind.label(),
            self.name,
            self.detail
        )
    }
}

/// The checks of one scenario.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Checks(pub Vec<Check>);

impl Checks {
    /// Adds a check.
    pub fn add(&mut self, kind: Kind, name: &str, passed: bool, detail: impl Into<String>) {
        self.0.push(Check {
            name: name.to_owned(),
            kind,
            passed,
            detail: detail.into(),
        });
    }

    /// True when every check held.
    pub fn all_passed(&self) -> bool {
        self.0.iter().all(|c| c.passed)
    }
}
