//! [`EventFilter`]: which events of `$all` a filtered read, subscription or live listener
//! wants, by stream or by event type, with prefixes or a regular expression. A plain value:
//! the database applies it to reads (only matching rows leave it), the store applies it to live
//! events in memory, the same way.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::RecordedEvent;

/// Which events of `$all` to keep: those whose stream (or event type) matches one of some
/// prefixes or a regular expression, or, with [`exclude`](Self::exclude), those that do not.
///
/// Constructors never fail: a regular expression that does not compile is
/// [`Error::InvalidArgument`] naming it, from the call that uses the filter. Patterns are
/// matched anywhere in the name (anchor them with `^` and `$`); use the syntax the backends
/// share: literals, `.`, character classes (`[a-z]`, `\d`, `\w`, `\s`), `*`, `+`, `?`,
/// `{m,n}`, `|`, groups, `^` and `$` (PostgreSQL evaluates them with its own engine, SQLite and
/// live events with Rust's `regex`).
///
/// ```
/// use chronik::EventFilter;
///
/// let accounts_and_orders = EventFilter::stream_prefix(["account-", "order-"]);
/// let no_deposits = EventFilter::event_type_regex("^Deposit").exclude();
/// let business = EventFilter::exclude_system_events();
/// assert_ne!(accounts_and_orders, business);
/// ```
///
/// In settings (a `[[subscriptions]]` entry's `filter`) and JSON, a filter is one of its
/// constructors' names with its argument, and `exclude`:
///
/// ```
/// # use chronik::EventFilter;
/// let read: EventFilter = toml::from_str(r#"stream_prefix = ["account-", "order-"]"#).unwrap();
/// assert_eq!(read, EventFilter::stream_prefix(["account-", "order-"]));
/// let read: EventFilter = toml::from_str("event_type_regex = \"^Deposit\"\nexclude = true").unwrap();
/// assert_eq!(read, EventFilter::event_type_regex("^Deposit").exclude());
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "FilterSpec", into = "FilterSpec")]
pub struct EventFilter {
    /// What is matched: the stream id or the event type.
    on: FilterOn,
    /// How.
    matcher: Matcher,
    /// Keep the events that do not match instead.
    exclude: bool,
    /// The regular expression, compiled on first use.
    compiled: OnceLock<std::result::Result<regex::Regex, String>>,
}

/// How settings write an [`EventFilter`]: exactly one of the four kinds, and `exclude`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream_prefix: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream_regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_type_prefix: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_type_regex: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    exclude: bool,
}

impl TryFrom<FilterSpec> for EventFilter {
    type Error = String;
    fn try_from(spec: FilterSpec) -> std::result::Result<Self, String> {
        let filter = match (spec.stream_prefix, spec.stream_regex, spec.event_type_prefix, spec.event_type_regex) {
            (Some(prefixes), None, None, None) => EventFilter::stream_prefix(prefixes),
            (None, Some(pattern), None, None) => EventFilter::stream_regex(pattern),
            (None, None, Some(prefixes), None) => EventFilter::event_type_prefix(prefixes),
            (None, None, None, Some(pattern)) => EventFilter::event_type_regex(pattern),
            _ => {
                return Err("a filter needs exactly one of stream_prefix, stream_regex, event_type_prefix, \
                            event_type_regex"
                    .into());
            }
        };
        Ok(if spec.exclude { filter.exclude() } else { filter })
    }
}

impl From<EventFilter> for FilterSpec {
    fn from(filter: EventFilter) -> FilterSpec {
        let mut spec = FilterSpec {
            stream_prefix: None,
            stream_regex: None,
            event_type_prefix: None,
            event_type_regex: None,
            exclude: filter.exclude,
        };
        match (filter.on, filter.matcher) {
            (FilterOn::Stream, Matcher::Prefixes(p)) => spec.stream_prefix = Some(p),
            (FilterOn::Stream, Matcher::Regex(r)) => spec.stream_regex = Some(r),
            (FilterOn::EventType, Matcher::Prefixes(p)) => spec.event_type_prefix = Some(p),
            (FilterOn::EventType, Matcher::Regex(r)) => spec.event_type_regex = Some(r),
        }
        spec
    }
}

/// What an [`EventFilter`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterOn {
    /// The stream id (the original stream's, `stream_uuid`).
    Stream,
    /// The event type.
    EventType,
}

/// How an [`EventFilter`] matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// Starts with any of these.
    Prefixes(Vec<String>),
    /// Matches this regular expression somewhere.
    Regex(String),
}

impl EventFilter {
    fn new(on: FilterOn, matcher: Matcher) -> EventFilter {
        EventFilter { on, matcher, exclude: false, compiled: OnceLock::new() }
    }

    /// Events of streams whose id starts with any of `prefixes`.
    pub fn stream_prefix<I, S>(prefixes: I) -> EventFilter
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(FilterOn::Stream, Matcher::Prefixes(prefixes.into_iter().map(Into::into).collect()))
    }

    /// Events of streams whose id matches `pattern`.
    pub fn stream_regex(pattern: impl Into<String>) -> EventFilter {
        Self::new(FilterOn::Stream, Matcher::Regex(pattern.into()))
    }

    /// Events whose type starts with any of `prefixes`.
    pub fn event_type_prefix<I, S>(prefixes: I) -> EventFilter
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(FilterOn::EventType, Matcher::Prefixes(prefixes.into_iter().map(Into::into).collect()))
    }

    /// Events whose type matches `pattern`.
    pub fn event_type_regex(pattern: impl Into<String>) -> EventFilter {
        Self::new(FilterOn::EventType, Matcher::Regex(pattern.into()))
    }

    /// Every event but the system events (those whose type starts with `$`).
    pub fn exclude_system_events() -> EventFilter {
        Self::event_type_prefix(["$"]).exclude()
    }

    /// Keeps the events this filter does not match, and leaves out those it does.
    #[must_use]
    pub fn exclude(mut self) -> EventFilter {
        self.exclude = !self.exclude;
        self
    }

    /// Checks that the filter can work: its regular expression compiles.
    pub(crate) fn check(&self) -> Result<()> {
        match (&self.matcher, self.regex()) {
            (Matcher::Regex(pattern), Some(Err(e))) => {
                Err(Error::invalid(format!("event filter: the regular expression `{pattern}` does not compile: {e}")))
            }
            _ => Ok(()),
        }
    }

    /// Whether `event` passes the filter (a filter whose expression does not compile passes
    /// nothing; [`check`](Self::check) is what reports it).
    pub(crate) fn admits(&self, event: &RecordedEvent) -> bool {
        let name = match self.on {
            FilterOn::Stream => event.stream_uuid.as_str(),
            FilterOn::EventType => event.event_type.as_str(),
        };
        let matched = match (&self.matcher, self.regex()) {
            (Matcher::Prefixes(prefixes), _) => prefixes.iter().any(|p| name.starts_with(p.as_str())),
            (Matcher::Regex(_), Some(Ok(regex))) => regex.is_match(name),
            (Matcher::Regex(_), _) => return false,
        };
        matched != self.exclude
    }

    /// The compiled expression of a regex filter.
    fn regex(&self) -> Option<&std::result::Result<regex::Regex, String>> {
        let Matcher::Regex(pattern) = &self.matcher else { return None };
        Some(self.compiled.get_or_init(|| regex::Regex::new(pattern).map_err(|e| e.to_string())))
    }

    /// What the filter looks at, how, and whether it excludes (for the SQL that applies it).
    pub(crate) fn parts(&self) -> (FilterOn, &Matcher, bool) {
        (self.on, &self.matcher, self.exclude)
    }
}

impl PartialEq for EventFilter {
    fn eq(&self, other: &Self) -> bool {
        self.on == other.on && self.matcher == other.matcher && self.exclude == other.exclude
    }
}

impl Eq for EventFilter {}

impl fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFilter")
            .field("on", &self.on)
            .field("matcher", &self.matcher)
            .field("exclude", &self.exclude)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stream: &str, event_type: &str) -> RecordedEvent {
        crate::event::test_event(stream, event_type)
    }

    #[test]
    fn each_kind_matches_what_it_says_and_exclude_inverts_it() {
        let accounts = EventFilter::stream_prefix(["account-", "order-"]);
        assert!(accounts.admits(&event("account-1", "E")));
        assert!(accounts.admits(&event("order-9", "E")));
        assert!(!accounts.admits(&event("Account-1", "E")), "case matters");
        assert!(!accounts.clone().exclude().admits(&event("account-1", "E")));
        assert!(accounts.clone().exclude().exclude().admits(&event("account-1", "E")));
        assert!(EventFilter::stream_regex(r"-\d+$").admits(&event("x-12", "E")));
        assert!(!EventFilter::stream_regex(r"^\d").admits(&event("x-12", "E")));
        assert!(EventFilter::event_type_prefix(["Dep"]).admits(&event("s", "Deposited")));
        assert!(EventFilter::event_type_regex("sit").admits(&event("s", "Deposited")), "anywhere in the name");
        let business = EventFilter::exclude_system_events();
        assert!(business.admits(&event("s", "Deposited")));
        assert!(!business.admits(&event("s", "$metadata")));
        assert!(!EventFilter::stream_prefix(Vec::<String>::new()).admits(&event("s", "E")), "no prefix, no match");
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_named_by_check() {
        let broken = EventFilter::stream_regex("acc(");
        match broken.check() {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("`acc(`"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(!broken.admits(&event("acc(", "E")));
        assert!(EventFilter::stream_prefix(["("]).check().is_ok(), "prefixes are literal");
    }

    #[test]
    fn filters_round_trip_through_serde() -> serde_json::Result<()> {
        let filter = EventFilter::event_type_regex("^A|B$").exclude();
        let text = serde_json::to_string(&filter)?;
        assert_eq!(text, r#"{"event_type_regex":"^A|B$","exclude":true}"#);
        assert_eq!(serde_json::from_str::<EventFilter>(&text)?, filter);
        let two = serde_json::from_str::<EventFilter>(r#"{"stream_prefix":["a"],"stream_regex":"b"}"#);
        assert!(two.unwrap_err().to_string().contains("exactly one"));
        Ok(())
    }
}
