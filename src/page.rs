//! Paging through the list of streams: [`PageRequest`] in, [`Page`] out.

use serde::Serialize;

/// Which column orders a page of streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SortBy {
    /// Internal stream id, i.e. creation order (default).
    #[default]
    StreamId,
    /// Stream name.
    StreamUuid,
    /// Version (number of events).
    StreamVersion,
    /// Creation time.
    CreatedAt,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SortDirection {
    /// Smallest first (default).
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}

/// Which page of streams to return.
///
/// ```
/// use chronik::{PageRequest, SortBy, SortDirection};
/// let request = PageRequest::default().search("acc").page(2).page_size(50)
///     .sort_by(SortBy::CreatedAt).sort_direction(SortDirection::Descending);
/// assert_eq!(request.page, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PageRequest {
    /// Only streams whose name contains this text (case-insensitive).
    pub search: Option<String>,
    /// Page number, from 1. Default 1.
    pub page: u64,
    /// Streams per page, 1 to 1,000. Default 50.
    pub page_size: u64,
    /// Ordering column.
    pub sort_by: SortBy,
    /// Ordering direction.
    pub sort_direction: SortDirection,
    /// Include deleted streams: soft-deleted ones, and those a recreatable delete emptied.
    /// Default true.
    pub include_deleted: bool,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            search: None,
            page: 1,
            page_size: 50,
            sort_by: SortBy::StreamId,
            sort_direction: SortDirection::Ascending,
            include_deleted: true,
        }
    }
}

impl PageRequest {
    /// Filters by a substring of the stream name.
    #[must_use]
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }
    /// Selects the page (from 1).
    #[must_use]
    pub fn page(mut self, page: u64) -> Self {
        self.page = page;
        self
    }
    /// Sets the page size.
    #[must_use]
    pub fn page_size(mut self, size: u64) -> Self {
        self.page_size = size;
        self
    }
    /// Sets the ordering column.
    #[must_use]
    pub fn sort_by(mut self, sort_by: SortBy) -> Self {
        self.sort_by = sort_by;
        self
    }
    /// Sets the ordering direction.
    #[must_use]
    pub fn sort_direction(mut self, direction: SortDirection) -> Self {
        self.sort_direction = direction;
        self
    }
    /// Whether soft-deleted streams are listed.
    #[must_use]
    pub fn include_deleted(mut self, include: bool) -> Self {
        self.include_deleted = include;
        self
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The entries of this page.
    pub entries: Vec<T>,
    /// This page's number (from 1).
    pub page_number: u64,
    /// The requested page size.
    pub page_size: u64,
    /// Entries matching the request, over all pages.
    pub total_entries: u64,
    /// Pages in all.
    pub total_pages: u64,
}

impl<T> Page<T> {
    /// The page `request` asked for, holding `entries`, of `total_entries` matches in all.
    pub(crate) fn of(request: &PageRequest, entries: Vec<T>, total_entries: u64) -> Page<T> {
        Page {
            entries,
            page_number: request.page,
            page_size: request.page_size,
            total_entries,
            total_pages: total_entries.div_ceil(request.page_size),
        }
    }
}

impl PageRequest {
    /// The ORDER BY of the request, stream id breaking ties. Only the two enums are spliced into
    /// SQL text; user input (the search) is always bound.
    pub(crate) fn order_by(&self) -> String {
        let column = match self.sort_by {
            SortBy::StreamId => "stream_id",
            SortBy::StreamUuid => "stream_uuid",
            SortBy::StreamVersion => "stream_version",
            SortBy::CreatedAt => "created_at",
        };
        let direction = match self.sort_direction {
            SortDirection::Ascending => "ASC",
            SortDirection::Descending => "DESC",
        };
        format!("s.{column} {direction}, s.stream_id {direction}")
    }

    /// Entries before the requested page.
    pub(crate) fn offset(&self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.page_size)
    }
}
