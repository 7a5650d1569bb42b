//! The settings a subscription runs with, and what it reports about itself.
//!
//! Stored settings win: the actor adopts the settings stored with its row when it takes the
//! subscription and whenever it hears they changed (`Reload`, after `update_subscription` here
//! or a notification from another node), keeping the functions (`partition_by`, `selector`) it
//! was started with, and tells the registry, which checks later subscribers against them and
//! starts a restarted actor with them. A change applies at once to what is not yet delivered:
//! events in flight stay where they are (a smaller `buffer_size` delivers nothing more to a
//! subscriber until it is under it; a smaller `max_size` lets the newest queued events go, to be
//! read again), and the timers are armed again with the new durations.

use std::time::Instant;

use ractor::ActorRef;

use super::{SubscriptionMsg, SubscriptionState};
use crate::error::Result;
use crate::runtime::registry::RegistryMsg;
use crate::subscription::{ConsumerStatistics, RetriedEvent, SubscriptionOptions, SubscriptionStatistics};

impl SubscriptionState {
    /// Runs with the `stored` settings from now on (with this node's functions), if they differ
    /// from the current ones, and tells the registry.
    pub(super) fn adopt(&mut self, myself: &ActorRef<SubscriptionMsg>, stored: SubscriptionOptions) {
        let options = stored.with_functions_of(&self.options);
        if options == self.options {
            return;
        }
        tracing::info!(subscription = %self.key, settings = ?options.settings(), "running with the stored settings");
        self.options = options;
        let options = &self.options;
        self.tracker.set_buffer_size(options.buffer_size);
        self.tracker.set_strategy(options.consumer_strategy, |e| options.partition_of(e));
        if self.tracker.shrink(options.max_size) {
            self.fall_behind(myself, 0);
        }
        // Timers armed with the old durations still fire; each only checks (flushes, sweeps).
        self.sweep_scheduled = false;
        self.flush_scheduled = false;
        let (key, actor, options) = (self.key.clone(), myself.get_id(), self.options.clone());
        let _ = self.registry.cast(RegistryMsg::Settings { key, actor, options });
    }

    /// The stored settings of row `id` changed: if it is this subscription's, reads and adopts
    /// them (owned or waiting to be).
    pub(super) async fn reload(&mut self, myself: &ActorRef<SubscriptionMsg>, id: i32) -> Result<()> {
        if self.row != Some(id) {
            return Ok(());
        }
        let row = self.ctx.storage.find_subscription(&self.key.stream, &self.key.name).await?;
        if let Some(settings) = row.filter(|row| row.id == id).and_then(|row| row.settings) {
            self.adopt(myself, settings);
        }
        Ok(())
    }

    /// What it is doing, if this node owns it.
    pub(super) fn statistics(&self) -> Option<SubscriptionStatistics> {
        if !self.phase.is_owned() {
            return None;
        }
        let now = Instant::now();
        let consumers = self
            .consumers
            .iter()
            .map(|c| ConsumerStatistics {
                id: c.id,
                in_flight: self.tracker.in_flight_of(c.id),
                buffer_size: self.tracker.buffer_of(c.id),
                paused: self.paused.contains(&c.id),
            })
            .collect();
        Some(SubscriptionStatistics {
            settings: self.options.clone(),
            status: self.status(),
            consumers,
            retrying: self.tracker.retrying().into_iter().map(|(n, count)| RetriedEvent::new(n, count)).collect(),
            delivered_recently: self.rates.delivered_recently(now),
            acked_recently: self.rates.acked_recently(now),
            rate_window: self.rates.window(now),
            since_last_ack: self.rates.since_last_ack(now),
        })
    }
}
