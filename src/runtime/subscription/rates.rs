//! Events delivered and acked over the last minute, free of I/O: sixty one-second slots, the
//! current second and the 59 before it, counted from when this node took the subscription.

use std::time::{Duration, Instant};

/// How many one-second slots the rates cover.
const SLOTS: usize = 60;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Whole seconds since the count started; `u64::MAX` for a slot never used.
    second: u64,
    delivered: u64,
    acked: u64,
}

/// Deliveries and acks of the last minute.
#[derive(Debug)]
pub struct Rates {
    started: Instant,
    /// The last ack, else the start.
    last_ack: Instant,
    slots: [Slot; SLOTS],
}

impl Rates {
    /// A count starting at `now`.
    pub fn new(now: Instant) -> Self {
        Rates { started: now, last_ack: now, slots: [Slot { second: u64::MAX, delivered: 0, acked: 0 }; SLOTS] }
    }

    /// `events` were handed to subscribers at `now`.
    pub fn delivered(&mut self, now: Instant, events: usize) {
        self.slot(now).delivered += events as u64;
    }

    /// `events` were acked at `now`.
    pub fn acked(&mut self, now: Instant, events: usize) {
        self.slot(now).acked += events as u64;
        self.last_ack = self.last_ack.max(now);
    }

    /// How long before `now` the last ack came (since the count started, if none came).
    pub fn since_last_ack(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_ack)
    }

    /// Events delivered within [`window`](Self::window) of `now`.
    pub fn delivered_recently(&self, now: Instant) -> u64 {
        self.recent(now).map(|s| s.delivered).sum()
    }

    /// Events acked within [`window`](Self::window) of `now`.
    pub fn acked_recently(&self, now: Instant) -> u64 {
        self.recent(now).map(|s| s.acked).sum()
    }

    /// The time the counts cover at `now`: a minute, or since the count started.
    pub fn window(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started).min(Duration::from_secs(SLOTS as u64))
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs()
    }

    fn slot(&mut self, now: Instant) -> &mut Slot {
        let second = self.second(now);
        let slot = &mut self.slots[(second % SLOTS as u64) as usize];
        if slot.second != second {
            *slot = Slot { second, delivered: 0, acked: 0 };
        }
        slot
    }

    fn recent(&self, now: Instant) -> impl Iterator<Item = &Slot> {
        let second = self.second(now);
        self.slots.iter().filter(move |s| s.second <= second && second - s.second < SLOTS as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cover_the_last_sixty_seconds() {
        let start = Instant::now();
        let mut rates = Rates::new(start);
        rates.delivered(start, 10);
        rates.acked(start + Duration::from_millis(500), 4);
        rates.delivered(start + Duration::from_secs(30), 5);
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!((rates.delivered_recently(at(30)), rates.acked_recently(at(30))), (15, 4));
        assert_eq!(rates.since_last_ack(at(30)), Duration::from_millis(29_500));
        assert_eq!(rates.window(at(30)), Duration::from_secs(30));
        assert_eq!((rates.delivered_recently(at(60)), rates.acked_recently(at(60))), (5, 0), "second 0 has passed");
        assert_eq!(rates.window(at(600)), Duration::from_secs(60));
        rates.delivered(at(90), 1);
        assert_eq!(rates.delivered_recently(at(90)), 1, "the slot of second 30 was reused");
    }
}
