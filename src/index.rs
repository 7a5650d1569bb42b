//! The streams chronik indexes by itself: `$ce-<category>` (every event of the streams of one
//! category) and `$et-<type>` (every event of one type). They are read and subscribed to like
//! streams, but only the store writes them: an append numbers each of its events in its
//! category's and its type's index, 1, 2, 3, … in `$all` order, in the append's own
//! transaction.

/// The prefix of a category stream: `$ce-account` holds the events of `account-1`, `account-2`, ….
pub const CATEGORY_PREFIX: &str = "$ce-";

/// The prefix of an event-type stream: `$et-Deposited` holds every `Deposited` event.
pub const EVENT_TYPE_PREFIX: &str = "$et-";

/// The category of a stream: its id up to the first `-` (`"account-1"` → `"account"`). A
/// stream whose id has no `-`, or starts with one, has none.
///
/// ```
/// assert_eq!(chronik::category_of("account-1"), Some("account"));
/// assert_eq!(chronik::category_of("order-7-lines"), Some("order"));
/// assert_eq!(chronik::category_of("singleton"), None);
/// ```
pub fn category_of(stream: &str) -> Option<&str> {
    stream.split_once('-').map(|(category, _)| category).filter(|category| !category.is_empty())
}

/// What an index stream indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Indexed<'a> {
    /// The events of the streams of this category.
    Category(&'a str),
    /// The events of this type.
    EventType(&'a str),
}

impl<'a> Indexed<'a> {
    /// The index a stream name names (`$ce-…` or `$et-…` with something after the prefix), if
    /// it names one.
    pub(crate) fn of(stream: &'a str) -> Option<Indexed<'a>> {
        let category = stream.strip_prefix(CATEGORY_PREFIX).map(Indexed::Category);
        let event_type = || stream.strip_prefix(EVENT_TYPE_PREFIX).map(Indexed::EventType);
        category.or_else(event_type).filter(|indexed| !indexed.key().is_empty())
    }

    /// The category or the event type.
    pub(crate) fn key(self) -> &'a str {
        match self {
            Indexed::Category(key) | Indexed::EventType(key) => key,
        }
    }

    /// The index stream's name.
    pub(crate) fn stream(self) -> String {
        match self {
            Indexed::Category(category) => format!("{CATEGORY_PREFIX}{category}"),
            Indexed::EventType(event_type) => format!("{EVENT_TYPE_PREFIX}{event_type}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_streams_name_what_they_index() {
        assert_eq!(Indexed::of("$ce-account"), Some(Indexed::Category("account")));
        assert_eq!(Indexed::of("$et-Deposited"), Some(Indexed::EventType("Deposited")));
        assert_eq!(Indexed::of("$ce-"), None);
        assert_eq!(Indexed::of("account-1"), None);
        assert_eq!(Indexed::of("$all"), None);
        assert_eq!(Indexed::Category("account").stream(), "$ce-account");
        assert_eq!(Indexed::EventType("Deposited").stream(), "$et-Deposited");
    }

    #[test]
    fn a_category_is_the_id_up_to_the_first_dash() {
        assert_eq!(category_of("account-1"), Some("account"));
        assert_eq!(category_of("a-b-c"), Some("a"));
        assert_eq!(category_of("-x"), None);
        assert_eq!(category_of("x-"), Some("x"));
        assert_eq!(category_of("nodash"), None);
    }
}
