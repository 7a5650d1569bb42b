//! The dashboard's stream count, shared by every open dashboard.
//!
//! Counting streams scans them all: about 0.2 s for a million streams on PostgreSQL here, and
//! each open dashboard asks for the overview every second. So a count is kept and handed out
//! again until it is 50 times as old as it took to make: counting then takes at most about 2% of
//! one database connection's time, however big the store and however many dashboards are open.
//! A store that counts in under 10 ms is counted afresh each time.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::{EventStore, Result};

/// A count that took less than this is never kept.
const CHEAP: Duration = Duration::from_millis(10);
/// A kept count is handed out until it is this many times as old as it took to make.
const KEEP_FOR: u32 = 50;

/// The last count: when it was made, how long it took, and what it found.
#[derive(Default)]
pub(crate) struct StreamCount {
    last: Mutex<Option<(Instant, Duration, u64)>>,
}

impl StreamCount {
    /// The store's stream count, perhaps as kept from an earlier call (see the module's text).
    /// Callers that arrive while a count runs wait for it instead of counting too.
    pub(crate) async fn get(&self, store: &EventStore) -> Result<u64> {
        let mut last = self.last.lock().await;
        if let Some((at, took, streams)) = *last
            && still_good(took, at.elapsed())
        {
            return Ok(streams);
        }
        let started = Instant::now();
        let streams = store.stream_count().await?;
        *last = Some((started, started.elapsed(), streams));
        Ok(streams)
    }
}

/// Whether a count that took `took` may be handed out again at `age`.
fn still_good(took: Duration, age: Duration) -> bool {
    took >= CHEAP && age < took * KEEP_FOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_counts_are_made_afresh_and_dear_ones_kept_fifty_times_as_long_as_they_took() {
        let ms = Duration::from_millis;
        assert!(!still_good(ms(2), ms(0)), "a count under 10 ms is never kept");
        assert!(!still_good(ms(9), ms(1)));
        assert!(still_good(ms(10), ms(499)));
        assert!(!still_good(ms(10), ms(500)));
        assert!(still_good(ms(200), ms(9_999)), "a 0.2 s count serves for 10 s");
        assert!(!still_good(ms(200), ms(10_000)));
    }
}
