//! Discord-style snowflake ids.
//!
//! A Discord snowflake is `(milliseconds since 2015-01-01T00:00:00Z) << 22` plus 22 low bits
//! that keep ids made in the same millisecond apart. Ids made here follow that layout so that
//! they sort by creation time, exactly like real ones, and a test can turn any id back into its
//! timestamp. The low 22 bits are a process-wide counter (real Discord splits them into worker,
//! process and increment fields; nothing downstream looks at that split).

use std::sync::Mutex;
use std::sync::PoisonError;

use chrono::{DateTime, TimeZone, Utc};

/// Milliseconds from the Unix epoch to the Discord epoch (2015-01-01T00:00:00Z).
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Number of low bits below the timestamp in a snowflake.
const TIMESTAMP_SHIFT: u32 = 22;

/// Mask of the low, non-timestamp bits.
const LOW_BITS_MASK: u64 = (1 << TIMESTAMP_SHIFT) - 1;

/// Returns the creation time encoded in a snowflake.
///
/// Ids whose timestamp does not fit chrono's range (only possible for ids near `u64::MAX`)
/// map to the Unix epoch rather than panicking, since such ids come from tests that feed
/// deliberately absurd values.
#[must_use]
pub fn timestamp_of(id: u64) -> DateTime<Utc> {
    let ms = (id >> TIMESTAMP_SHIFT).saturating_add(DISCORD_EPOCH_MS);
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// Returns the smallest snowflake whose timestamp is `at` (low bits zero).
///
/// Useful as an `after`/`before` bound when paging history by time. Times before the Discord
/// epoch map to 0.
#[must_use]
pub fn floor_of(at: DateTime<Utc>) -> u64 {
    millis_since_discord_epoch(at) << TIMESTAMP_SHIFT
}

/// Milliseconds between the Discord epoch and `at`, clamped at zero.
fn millis_since_discord_epoch(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis())
        .unwrap_or(0)
        .saturating_sub(DISCORD_EPOCH_MS)
}

/// Makes unique, time-ordered snowflakes.
///
/// Ids from [`SnowflakeGenerator::next_now`] strictly increase, even when the wall clock
/// stalls or steps back, so "newer message, bigger id" always holds for live posts. Ids for an
/// explicit past time ([`SnowflakeGenerator::at`]) carry that time and are still unique, but are
/// naturally smaller than ids already handed out for later times.
#[derive(Debug, Default)]
pub struct SnowflakeGenerator {
    inner: Mutex<GeneratorState>,
}

#[derive(Debug, Default)]
struct GeneratorState {
    /// Last id returned by `next_now`, to keep live ids strictly increasing.
    last_live: u64,
    /// Counter for the low bits; wraps at 2^22, which only matters for ids of the same
    /// millisecond and is caught by the `last_live` guard for live ids.
    counter: u64,
}

impl SnowflakeGenerator {
    /// Creates a generator.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns a new id for "now", strictly greater than every id this generator returned
    /// before from this method.
    pub fn next_now(&self) -> u64 {
        // A poisoned lock only means another thread panicked while holding it; the state is two
        // integers and is always consistent, so keep going.
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let candidate = Self::compose(&mut state, Utc::now());
        let id = candidate.max(state.last_live + 1);
        state.last_live = id;
        id
    }

    /// Returns a new id carrying the timestamp `at` (for messages "posted" in the past).
    pub fn at(&self, at: DateTime<Utc>) -> u64 {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Self::compose(&mut state, at)
    }

    /// Records an id chosen by a caller so that later live ids stay above it when it lies in
    /// the future of the wall clock (tests sometimes pick large explicit ids).
    pub fn observe(&self, id: u64) {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now_floor = floor_of(Utc::now());
        if id >= now_floor && id > state.last_live {
            state.last_live = id;
        }
    }

    fn compose(state: &mut GeneratorState, at: DateTime<Utc>) -> u64 {
        state.counter = (state.counter + 1) & LOW_BITS_MASK;
        (millis_since_discord_epoch(at) << TIMESTAMP_SHIFT) | state.counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_ids_strictly_increase_and_decode_to_now() {
        let generator = SnowflakeGenerator::new();
        let before = Utc::now();
        let ids: Vec<u64> = (0..10_000).map(|_| generator.next_now()).collect();
        let after = Utc::now();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        let first = timestamp_of(ids[0]);
        assert!(first >= before - chrono::Duration::milliseconds(1));
        assert!(timestamp_of(ids[ids.len() - 1]) <= after + chrono::Duration::seconds(1));
    }

    #[test]
    fn a_known_real_id_decodes_to_its_discord_timestamp() {
        // Fixture A01: id 1372565715109941359 was posted at 2025-05-15T13:26:07.520Z.
        let at = timestamp_of(1_372_565_715_109_941_359);
        assert_eq!(at.to_rfc3339(), "2025-05-15T13:26:07.520+00:00");
    }

    #[test]
    fn ids_for_a_past_time_carry_that_time() {
        let generator = SnowflakeGenerator::new();
        let at = Utc
            .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
            .single()
            .expect("valid date");
        let id = generator.at(at);
        assert_eq!(timestamp_of(id), at);
        assert!(id >= floor_of(at));
    }

    #[test]
    fn observed_future_ids_keep_live_ids_above_them() {
        let generator = SnowflakeGenerator::new();
        let future = floor_of(Utc::now() + chrono::Duration::days(1));
        generator.observe(future);
        assert!(generator.next_now() > future);
    }

    #[test]
    fn absurd_ids_do_not_panic() {
        let _ = timestamp_of(u64::MAX);
    }
}
