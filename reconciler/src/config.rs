//! What a pass does and how much of it, with named defaults validated at
//! construction (the shape of River's maintenance services).

use std::time::Duration;

use crate::error::{Error, Result};

/// Every default of the reconciler, written once: the binary's flags
/// (`default_value = defaults::X` / `default_value_t = defaults::Y`) and the
/// constructors ([`PassConfig::new`], `Thresholds::default`,
/// `AuditOptions::default`) read them from here. Durations are written as the
/// flags read them (`60s`, `30d`) and turned into a [`Duration`] by
/// [`defaults::duration`] at compile time.
pub mod defaults {
    use std::time::Duration;

    /// Age after which an unclaimed event counts as orphaned (also the
    /// grace of `diagnose`, `audit` and `recover`).
    pub const ORPHAN_GRACE: &str = "60s";
    /// Age past which processed events and their inbox rows are pruned.
    pub const RETENTION: &str = "30d";
    /// Look-back when a pass restarts the missing-event scan from the
    /// previous run's cursor: covers a writer whose transaction began before
    /// the previous pass and committed after it.
    pub const SAFETY_MARGIN: &str = "2m";
    /// A worker's LISTEN session that has not read its heartbeat back for
    /// this long is stale. A live worker hears its heartbeat every 2 s and
    /// replaces a connection that stays silent for 6 s, so a listener silent
    /// this long is not coming back by itself.
    pub const LISTENER_STALE_AFTER: &str = "30s";
    /// Messages examined per page of the missing-event scan.
    pub const SCAN_PAGE: i64 = 1_000;
    /// Pages of the missing-event scan per pass (50,000 messages).
    pub const SCAN_PAGES: u32 = 50;
    /// Orphans re-fired per pass.
    pub const ORPHAN_LIMIT: i64 = 1_000;
    /// Watermark pages examined per pass (of `outbox::watermark::PAGE`).
    pub const WATERMARK_PAGES: u32 = 20;
    /// Rows deleted per prune page.
    pub const PRUNE_PAGE: i64 = 5_000;
    /// Prune pages per pass (100,000 events).
    pub const PRUNE_PAGES: u32 = 20;
    /// End stale LISTEN sessions (their workers reconnect) rather than only
    /// count them.
    pub const END_STALE_LISTENERS: bool = true;
    /// When passes run: every 30 seconds.
    pub const SCHEDULE: &str = "*/30 * * * * *";
    /// Where the service serves its dashboard and health endpoints.
    pub const HTTP_LISTEN: &str = "127.0.0.1:9103";
    /// `audit`: the window of events audited.
    pub const AUDIT_SINCE: &str = "24h";
    /// `audit`: error groups and orphans listed, at most.
    pub const AUDIT_TOP: i64 = 10;
    /// `recover`: events re-fired or replayed, at most.
    pub const RECOVER_LIMIT: i64 = 1_000;
    /// `relisten`: how long to watch the workers reconnect.
    pub const RELISTEN_WAIT: &str = "10s";

    /// A default duration: a whole number followed by `s`, `m`, `h` or `d`
    /// (the subset of `service::config::parse_duration` the defaults use).
    /// Evaluated in constant context, so a malformed default does not
    /// compile.
    pub const fn duration(text: &str) -> Duration {
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut n: u64 = 0;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            n = n * 10 + (bytes[i] - b'0') as u64;
            i += 1;
        }
        assert!(i > 0 && i + 1 == bytes.len(), "a default is <number><unit>");
        let unit = match bytes[i] {
            b's' => 1,
            b'm' => 60,
            b'h' => 3_600,
            b'd' => 86_400,
            _ => panic!("a default's unit is s, m, h or d"),
        };
        Duration::from_secs(n * unit)
    }
}

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
            safety_margin: defaults::duration(defaults::SAFETY_MARGIN),
            orphan_grace: defaults::duration(defaults::ORPHAN_GRACE),
            retention: defaults::duration(defaults::RETENTION),
            scan_page: defaults::SCAN_PAGE,
            scan_pages: defaults::SCAN_PAGES,
            orphan_limit: defaults::ORPHAN_LIMIT,
            watermark_pages: defaults::WATERMARK_PAGES,
            prune_page: defaults::PRUNE_PAGE,
            prune_pages: defaults::PRUNE_PAGES,
            listener_stale_after: defaults::duration(defaults::LISTENER_STALE_AFTER),
            end_stale_listeners: defaults::END_STALE_LISTENERS,
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
    fn every_default_duration_reads_as_the_flags_read_it() {
        for text in [
            defaults::ORPHAN_GRACE,
            defaults::RETENTION,
            defaults::SAFETY_MARGIN,
            defaults::LISTENER_STALE_AFTER,
            defaults::AUDIT_SINCE,
            defaults::RELISTEN_WAIT,
        ] {
            assert_eq!(
                Ok(defaults::duration(text)),
                service::config::parse_duration(text),
                "{text}"
            );
        }
        assert!(crate::Schedule::parse(defaults::SCHEDULE).is_ok());
        assert!(
            defaults::HTTP_LISTEN
                .parse::<std::net::SocketAddr>()
                .is_ok()
        );
    }

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
