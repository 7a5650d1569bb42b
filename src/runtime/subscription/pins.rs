//! Which subscriber each key is pinned to, for the pinned consumer strategies
//! ([`ConsumerStrategy::Pinned`](crate::ConsumerStrategy::Pinned) and `PinnedByCorrelation`),
//! free of I/O. The [`Tracker`](super::Tracker) asks it where an event goes and keeps each key
//! in order on top of it.
//!
//! Keys (streams, correlation ids, `partition_by` keys) fall into [`BUCKETS`] hash buckets, as
//! in KurrentDB: the memory it needs is bounded however many streams there are, and moving a
//! subscriber's share is moving buckets. A bucket is pinned, when its first event comes, to the
//! ready subscriber with the fewest buckets (the first connected among equals); a subscriber
//! that leaves unpins its buckets, which are pinned again as their next events come, so they
//! spread over the remaining subscribers; a subscriber that joins takes buckets over from those
//! above the fair share (`ceil(pinned / subscribers)`), the ones with nothing in flight first.

use std::collections::HashMap;

/// How many buckets keys are hashed into.
pub const BUCKETS: usize = 1_024;

/// The subscribers in connection order, and the bucket each is pinned to.
#[derive(Debug, Default)]
pub struct Pins {
    /// Bucket -> subscriber; empty until the first bucket is pinned.
    owners: Vec<Option<u64>>,
    /// The connected subscribers, in connection order.
    members: Vec<u64>,
    /// Subscriber -> how many buckets are pinned to it.
    counts: HashMap<u64, usize>,
}

impl Pins {
    /// The bucket of `key`.
    pub fn bucket(key: u64) -> usize {
        (key % BUCKETS as u64) as usize
    }

    /// A subscriber connected. With `rebalance`, it takes over buckets from the subscribers
    /// above the fair share, those for which `busy` is false first.
    pub fn join(&mut self, consumer: u64, rebalance: bool, busy: impl Fn(usize) -> bool) {
        if self.members.contains(&consumer) {
            return;
        }
        self.members.push(consumer);
        let pinned: usize = self.counts.values().sum();
        if !rebalance || pinned == 0 {
            return;
        }
        let fair = pinned.div_ceil(self.members.len());
        let mut moving = Vec::new();
        for member in &self.members {
            let excess = self.assigned(*member).saturating_sub(fair);
            if excess == 0 {
                continue;
            }
            let mut buckets: Vec<usize> = (0..self.owners.len()).filter(|b| self.owners[*b] == Some(*member)).collect();
            // Idle buckets first: they move without making anything wait.
            buckets.sort_by_key(|b| busy(*b));
            moving.extend(buckets.into_iter().take(excess));
        }
        for bucket in moving {
            self.pin(bucket, consumer);
        }
    }

    /// A subscriber left: its buckets are free, to be pinned again as their events come.
    pub fn leave(&mut self, consumer: u64) {
        self.members.retain(|m| *m != consumer);
        if self.counts.remove(&consumer).is_some() {
            for owner in &mut self.owners {
                if *owner == Some(consumer) {
                    *owner = None;
                }
            }
        }
    }

    /// Unpins every bucket (the strategy changed); the subscribers stay.
    pub fn clear(&mut self) {
        self.owners.clear();
        self.counts.clear();
    }

    /// The subscriber `bucket` is pinned to; a bucket not pinned yet is pinned to the subscriber
    /// of `ready` with the fewest buckets (`None` if none is ready).
    pub fn owner(&mut self, bucket: usize, ready: &[u64]) -> Option<u64> {
        if let Some(owner) = self.owners.get(bucket).copied().flatten() {
            return Some(owner);
        }
        let chosen = self.members.iter().filter(|m| ready.contains(m)).min_by_key(|m| self.assigned(**m)).copied()?;
        self.pin(bucket, chosen);
        Some(chosen)
    }

    /// How many buckets are pinned to `consumer`.
    pub fn assigned(&self, consumer: u64) -> usize {
        self.counts.get(&consumer).copied().unwrap_or(0)
    }

    fn pin(&mut self, bucket: usize, consumer: u64) {
        if self.owners.is_empty() {
            self.owners = vec![None; BUCKETS];
        }
        if let Some(previous) = self.owners[bucket].replace(consumer)
            && let Some(count) = self.counts.get_mut(&previous)
        {
            *count -= 1;
        }
        *self.counts.entry(consumer).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_pinned_to_the_ready_subscriber_with_the_fewest() {
        let mut pins = Pins::default();
        for c in [1, 2, 3] {
            pins.join(c, true, |_| false);
        }
        assert_eq!((pins.owner(10, &[1, 2, 3]), pins.owner(11, &[1, 2, 3])), (Some(1), Some(2)));
        assert_eq!(pins.owner(12, &[1, 2]), Some(1), "3 is not ready: 1 and 2 tie, 1 connected first");
        assert_eq!(pins.owner(10, &[2, 3]), Some(1), "pinned stays pinned, ready or not");
        assert_eq!(pins.owner(13, &[]), None);
    }

    #[test]
    fn a_leaving_subscribers_buckets_spread_over_the_others() {
        let mut pins = Pins::default();
        for c in [1, 2, 3] {
            pins.join(c, true, |_| false);
        }
        for bucket in 0..6 {
            pins.owner(bucket, &[1, 2, 3]);
        }
        pins.leave(1);
        let again: Vec<Option<u64>> = [0, 3].iter().map(|b| pins.owner(*b, &[2, 3])).collect();
        assert_eq!(again, vec![Some(2), Some(3)]);
        assert_eq!((pins.assigned(1), pins.assigned(2), pins.assigned(3)), (0, 3, 3));
    }

    #[test]
    fn a_joining_subscriber_takes_over_the_excess_idle_buckets_first() {
        let mut pins = Pins::default();
        pins.join(1, true, |_| false);
        for bucket in 0..4 {
            pins.owner(bucket, &[1]);
        }
        pins.join(2, true, |b| b < 2);
        assert_eq!((pins.assigned(1), pins.assigned(2)), (2, 2));
        assert_eq!(pins.owner(2, &[1, 2]), Some(2), "an idle bucket moved");
        assert_eq!(pins.owner(0, &[1, 2]), Some(1), "a busy one stayed");
    }
}
