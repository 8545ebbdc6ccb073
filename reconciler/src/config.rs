//! What a pass does and how much of it, with named defaults validated at
//! construction (the shape of River's maintenance services).

use std::time::Duration;

use crate::error::{Error, Result};

/// Default look-back when a pass restarts the missing-event scan from the
/// previous run's cursor: covers a writer whose transaction began before the
/// previous pass and committed after it.
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(2 * 60);
/// Default age after which an unclaimed event counts as orphaned.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(60);
/// Default age past which processed events and their inbox rows are pruned.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// Default messages examined per page of the missing-event scan.
pub const DEFAULT_SCAN_PAGE: i64 = 1_000;
/// Default pages of the missing-event scan per pass (50,000 messages).
pub const DEFAULT_SCAN_PAGES: u32 = 50;
/// Default orphans re-fired per pass.
pub const DEFAULT_ORPHAN_LIMIT: i64 = 1_000;
/// Default watermark pages examined per pass (of `outbox::watermark::PAGE`).
pub const DEFAULT_WATERMARK_PAGES: u32 = 20;
/// Default rows deleted per prune page.
pub const DEFAULT_PRUNE_PAGE: i64 = 5_000;
/// Default prune pages per pass (100,000 events).
pub const DEFAULT_PRUNE_PAGES: u32 = 20;
pub use crate::listeners::DEFAULT_LISTENER_STALE_AFTER;

/// Settings of one repair pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassConfig {
    /// Who ran the pass, recorded in `reconciler_runs.instance`.
    pub instance: String,
    /// How far before the previous cursor a completed scan restarts.
    pub safety_margin: Duration,
    /// How old an unclaimed event must be before it is re-fired.
    pub orphan_grace: Duration,
    /// Processed events older than this are pruned; also how far back the
    /// very first scan for missing events looks.
    pub retention: Duration,
    /// Messages per page of the missing-event scan.
    pub scan_page: i64,
    /// Pages of the missing-event scan per pass; the next pass resumes.
    pub scan_pages: u32,
    /// Orphans re-fired per pass, at most.
    pub orphan_limit: i64,
    /// Watermark pages examined per pass.
    pub watermark_pages: u32,
    /// Rows per prune page.
    pub prune_page: i64,
    /// Prune pages per pass; the next pass continues.
    pub prune_pages: u32,
    /// A worker's LISTEN session that has not read its heartbeat back for
    /// longer than this no longer consumes notifications.
    pub listener_stale_after: Duration,
    /// End such sessions (their workers reconnect); otherwise only count them.
    pub end_stale_listeners: bool,
}

impl PassConfig {
    /// The defaults, for the named instance.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            safety_margin: DEFAULT_SAFETY_MARGIN,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            retention: DEFAULT_RETENTION,
            scan_page: DEFAULT_SCAN_PAGE,
            scan_pages: DEFAULT_SCAN_PAGES,
            orphan_limit: DEFAULT_ORPHAN_LIMIT,
            watermark_pages: DEFAULT_WATERMARK_PAGES,
            prune_page: DEFAULT_PRUNE_PAGE,
            prune_pages: DEFAULT_PRUNE_PAGES,
            listener_stale_after: DEFAULT_LISTENER_STALE_AFTER,
            end_stale_listeners: true,
        }
    }

    /// Checks every setting; a pass only runs with a validated config.
    pub fn validate(&self) -> Result<()> {
        let fail = |what: &str| Err(Error::Config(what.to_owned()));
        if self.instance.trim().is_empty() {
            return fail("the instance name is empty");
        }
        if self.scan_page < 1 || self.orphan_limit < 1 || self.prune_page < 1 {
            return fail("page sizes and the orphan limit must be at least 1");
        }
        if self.scan_pages < 1 || self.watermark_pages < 1 || self.prune_pages < 1 {
            return fail("page budgets must be at least 1");
        }
        if self.listener_stale_after < Duration::from_secs(1) {
            return fail("the listener stale bound must be at least 1 second");
        }
        if self.retention < Duration::from_secs(3600) {
            return fail("the retention must be at least 1 hour");
        }
        if self.retention <= self.safety_margin + self.orphan_grace {
            return fail(
                "the retention must be longer than the safety margin plus the orphan grace",
            );
        }
        Ok(())
    }
}

/// A name for this process: host name and process id.
pub fn default_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert!(PassConfig::new("test").validate().is_ok());
    }

    #[test]
    fn zero_budgets_and_a_short_retention_are_rejected() {
        let mut c = PassConfig::new("test");
        c.scan_pages = 0;
        assert!(c.validate().is_err());
        let mut c = PassConfig::new("test");
        c.retention = Duration::from_secs(60);
        assert!(c.validate().is_err());
        assert!(PassConfig::new(" ").validate().is_err());
    }
}
