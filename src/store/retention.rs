//! The facade's stream metadata: retention rules and custom JSON per stream, and the scavenge
//! that removes what retention hides.

use super::EventStore;
use crate::error::{Error, Result};
use crate::event::{ALL, ExpectedVersion};
use crate::metadata::StreamMetadata;
use crate::scavenge::{ScavengeOptions, ScavengeReport};
use crate::validate;

impl EventStore {
    /// Sets the metadata of `stream` (its retention rules and custom JSON), replacing what was
    /// set before, if the metadata's own version is at `expected` (the rules of an append,
    /// where a stream without metadata is "no stream"); returns the new metadata version, 1 for
    /// the first. It may be set before the stream exists. Stream reads, stream subscriptions and
    /// `stream_info` honour it at once; `$all` keeps showing the events it hides until a
    /// [`scavenge`](Self::scavenge) removes them.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use chronik::{EventStore, ExpectedVersion, StreamMetadata};
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// let v = store
    ///     .set_stream_metadata("session-9", ExpectedVersion::NoStream, StreamMetadata::default().max_age(Duration::from_secs(3_600)))
    ///     .await?;
    /// assert_eq!(v, 1);
    /// let (version, meta) = store.stream_metadata("session-9").await?.expect("just set");
    /// assert_eq!((version, meta.max_age), (1, Some(Duration::from_secs(3_600))));
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: [`Error::WrongExpectedVersion`], [`Error::StreamExists`] or
    /// [`Error::StreamNotFound`] when `expected` does not hold; [`Error::StreamDeleted`] for a
    /// soft-deleted stream (a tombstone); [`Error::InvalidArgument`] for `$all` or a value the
    /// store cannot hold (a `max_count` of 0, `custom` that is not a JSON object, ...).
    pub async fn set_stream_metadata(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        metadata: StreamMetadata,
    ) -> Result<u64> {
        self.ensure_writable("set stream metadata")?;
        if stream == ALL {
            return Err(Error::invalid("$all has no metadata: set it on the streams whose events it holds"));
        }
        validate::stream_id(stream)?;
        metadata.validate(self.inner.config.max_event_size)?;
        self.inner.storage.set_stream_metadata(stream, expected, &metadata).await
    }

    /// The latest metadata of `stream` and its version; `None` if none was set (also for a
    /// stream that does not exist).
    pub async fn stream_metadata(&self, stream: &str) -> Result<Option<(u64, StreamMetadata)>> {
        self.ensure_open()?;
        if stream == ALL {
            return Ok(None);
        }
        validate::stream_id(stream)?;
        self.inner.storage.stream_metadata(stream).await
    }

    /// Removes from the database what stream retention hides (entries below a stream's
    /// `truncate_before`, past its `max_count`, older than its `max_age`, or before a
    /// recreatable delete), with the links that pointed at them; see
    /// [`scavenge_with`](Self::scavenge_with).
    pub async fn scavenge(&self) -> Result<ScavengeReport> {
        self.scavenge_with(ScavengeOptions::default()).await
    }

    /// A scavenge as `options` say: for real or as a dry run, in batches of `batch_size` events
    /// per transaction, reporting progress.
    ///
    /// It is safe beside writers and subscriptions: it never takes the lock appends take, and
    /// only removes what is hidden at the moment of its transaction (a metadata write that would
    /// show events again waits for the batch at hand). It keeps no state: one that was stopped
    /// half-way (its process killed, its connection lost) left each finished batch done, and
    /// the next scavenge removes the rest. Positions and versions are never reused. Only one
    /// scavenge of a store runs at a time: another is [`Error::Unavailable`]. Soft-deleted
    /// streams (tombstones) keep their events unless their metadata hides them.
    ///
    /// ```no_run
    /// use chronik::{EventStore, ScavengeOptions};
    /// # async fn demo(store: EventStore) -> chronik::Result<()> {
    /// let planned = store.scavenge_with(ScavengeOptions::default().dry_run(true)).await?;
    /// let done = store.scavenge().await?;
    /// println!("removed {} of {} events ({} bytes)", done.events_removed, planned.events_removed, done.bytes_removed);
    /// # Ok(()) }
    /// ```
    pub async fn scavenge_with(&self, options: ScavengeOptions) -> Result<ScavengeReport> {
        if options.dry_run {
            self.ensure_open()?;
        } else {
            self.ensure_writable("scavenge")?;
        }
        self.inner.runtime.scavenge(&self.inner.storage, options).await
    }
}
