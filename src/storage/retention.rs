//! What hides a stream's entries, free of I/O: a recreatable delete (`deleted_version`) and the
//! stream's metadata (`max_count`, `max_age`, `truncate_before`). Reads turn it into a
//! [`Window`] that their SQL applies; the live path and the subscriptions apply the same rule
//! to events in memory; a scavenge removes what it hides. One rule, written here once.

use chrono::{DateTime, TimeDelta, Utc};

/// The retention of a stream as stored: every field that hides entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Retention {
    /// Entries up to this version were removed by a recreatable delete (0: none).
    pub deleted_version: i64,
    /// Only the newest `max_count` entries are readable.
    pub max_count: Option<i64>,
    /// Entries older than this many milliseconds are not readable.
    pub max_age_ms: Option<i64>,
    /// Versions below this one are not readable.
    pub truncate_before: Option<i64>,
}

/// The readable part of a stream at one moment: versions from `floor` on, committed at or after
/// `cutoff` (if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The lowest readable version (at least 1).
    pub floor: i64,
    /// Entries committed before this are not readable.
    pub cutoff: Option<DateTime<Utc>>,
}

impl Window {
    /// Whether an entry of this version, committed at `created_at`, is readable.
    pub(crate) fn shows(&self, version: i64, created_at: DateTime<Utc>) -> bool {
        version >= self.floor && self.cutoff.is_none_or(|cutoff| created_at >= cutoff)
    }
}

impl Retention {
    /// Whether anything can be hidden at all (a stream without metadata and never deleted
    /// recreatably shows everything).
    pub(crate) fn hides_anything(&self) -> bool {
        self.deleted_version > 0
            || self.max_count.is_some()
            || self.max_age_ms.is_some()
            || self.truncate_before > Some(1)
    }

    /// Whether the stream, at `version`, reads as not found: a recreatable delete removed every
    /// entry it has.
    pub(crate) fn reads_as_absent(&self, version: i64) -> bool {
        self.deleted_version > 0 && version <= self.deleted_version
    }

    /// The readable window of the stream when it is at `version`, at time `now`.
    pub(crate) fn window(&self, version: i64, now: DateTime<Utc>) -> Window {
        let by_count = self.max_count.map_or(1, |count| version.saturating_sub(count).saturating_add(1));
        let floor = [1, self.deleted_version.saturating_add(1), self.truncate_before.unwrap_or(1), by_count]
            .into_iter()
            .max()
            .unwrap_or(1);
        let cutoff = self.max_age_ms.map(|ms| now - TimeDelta::milliseconds(ms));
        Window { floor, cutoff }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap_or_default()
    }

    #[test]
    fn without_rules_everything_is_readable() {
        let none = Retention::default();
        assert!(!none.hides_anything());
        assert_eq!(none.window(50, at(1_000)), Window { floor: 1, cutoff: None });
        assert!(!none.reads_as_absent(50));
    }

    #[test]
    fn the_strictest_rule_sets_the_floor() {
        let r = Retention { deleted_version: 3, max_count: Some(10), max_age_ms: None, truncate_before: Some(5) };
        assert_eq!(r.window(8, at(0)).floor, 5, "truncate_before beats the delete and a count not reached");
        assert_eq!(r.window(30, at(0)).floor, 21, "the newest 10 of 30");
        let deleted = Retention { deleted_version: 7, ..Retention::default() };
        assert_eq!(deleted.window(9, at(0)).floor, 8);
    }

    #[test]
    fn max_age_hides_what_was_committed_before_the_cutoff() {
        let r = Retention { max_age_ms: Some(60_000), ..Retention::default() };
        let window = r.window(4, at(1_000));
        assert_eq!(window.cutoff, Some(at(940)));
        assert!(window.shows(1, at(940)));
        assert!(!window.shows(1, at(939)));
    }

    #[test]
    fn a_recreatably_deleted_stream_reads_as_absent_until_its_next_append() {
        let r = Retention { deleted_version: 4, ..Retention::default() };
        assert!(r.reads_as_absent(4));
        assert!(!r.reads_as_absent(5));
        assert!(r.hides_anything());
    }
}
