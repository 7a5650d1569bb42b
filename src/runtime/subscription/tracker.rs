//! The bookkeeping of one subscription, free of I/O: the queue of events taken in but not yet
//! delivered, the parked events being replayed, the events in flight per subscriber and per
//! partition (with when they were delivered, for the message timeout), retry counts, and the
//! checkpoint.
//!
//! Events enter the queue in increasing event number. The checkpoint is derived, never
//! counted: every event number up to `received` that is not outstanding (queued or in flight)
//! was acked, skipped or parked (or rejected by the selector, or a hole in `$all`), so the
//! checkpoint is the number just below the oldest outstanding event. It therefore only ever
//! covers a contiguous run of finished events, whatever order the acks come in.
//!
//! Replayed parked events travel in their own lane, delivered ahead of the queue. They were
//! finished once already (parked), so they never hold the checkpoint back.
//!
//! Who gets an event is the [`ConsumerStrategy`]'s choice (the pinned ones ask [`Pins`]), under
//! one rule for every strategy: an event with a key (a stream under `Pinned`, a `partition_by`
//! key, ...) never goes to one subscriber while an older event of its key is in flight at
//! another, so each key stays in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::pins::Pins;
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::subscription::ConsumerStrategy;

/// What a subscriber acks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acks {
    /// Exactly these event numbers.
    Events(Vec<u64>),
    /// This event number and every older one in flight for the subscriber.
    UpTo(u64),
}

/// An event that left the subscription for good (acked, skipped or parked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Its number.
    pub number: u64,
    /// It was a replayed parked event (its parked row can go).
    pub replay: bool,
    /// It had been retried (a stored retry count may exist).
    pub retried: bool,
}

struct Queued {
    event: RecordedEvent,
    partition: Option<u64>,
}

struct InFlight {
    consumer: u64,
    partition: Option<u64>,
    event: RecordedEvent,
    replay: bool,
    since: Instant,
}

/// Queue, replay lane, in-flight events, retry counts and checkpoint of one subscription.
pub struct Tracker {
    buffer_size: usize,
    strategy: ConsumerStrategy,
    /// The subscribers in connection order, and (pinned strategies) their buckets.
    pins: Pins,
    /// `DispatchToSingle`: the subscriber being filled.
    single: Option<u64>,
    queue: VecDeque<Queued>,
    replay: VecDeque<Queued>,
    in_flight: BTreeMap<u64, InFlight>,
    per_consumer: HashMap<u64, usize>,
    /// Subscribers that asked for fewer events in flight than `buffer_size`, and how many.
    own_buffers: HashMap<u64, usize>,
    /// Partition -> (subscriber it is in flight at, events in flight).
    partitions: HashMap<u64, (u64, usize)>,
    outstanding: BTreeSet<u64>,
    retries: HashMap<u64, u32>,
    received: u64,
    peak: usize,
    next_consumer: usize,
}

type Batches = Vec<(u64, Vec<RecordedEvent>)>;

impl Tracker {
    /// An empty tracker whose checkpoint is `checkpoint`, sharing events round robin until
    /// [`set_strategy`](Self::set_strategy) says otherwise.
    pub fn new(buffer_size: usize, checkpoint: u64) -> Self {
        Tracker {
            buffer_size,
            strategy: ConsumerStrategy::RoundRobin,
            pins: Pins::default(),
            single: None,
            queue: VecDeque::new(),
            replay: VecDeque::new(),
            in_flight: BTreeMap::new(),
            per_consumer: HashMap::new(),
            own_buffers: HashMap::new(),
            partitions: HashMap::new(),
            outstanding: BTreeSet::new(),
            retries: HashMap::new(),
            received: checkpoint,
            peak: 0,
            next_consumer: 0,
        }
    }

    /// The last event number taken in.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Events queued, not delivered (replayed parked events not included).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Replayed parked events waiting for delivery.
    pub fn replay_queued(&self) -> usize {
        self.replay.len()
    }

    /// Replayed parked events queued or in flight.
    pub fn replaying(&self) -> usize {
        self.replay.len() + self.in_flight.values().filter(|f| f.replay).count()
    }

    /// Whether event `n` is being replayed (queued in the replay lane or in flight as a replay).
    pub fn is_replaying(&self, n: u64) -> bool {
        self.in_flight.get(&n).is_some_and(|f| f.replay) || self.replay.iter().any(|q| q.event.event_number == n)
    }

    /// Most events ever queued at once.
    pub fn peak_queued(&self) -> usize {
        self.peak
    }

    /// Events delivered, not acked.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The event number of the oldest queued event.
    pub fn first_queued(&self) -> Option<u64> {
        self.queue.front().map(|q| q.event.event_number)
    }

    /// The checkpoint: every event up to it was finished or skipped.
    pub fn acked(&self) -> u64 {
        self.outstanding.first().map_or(self.received, |oldest| oldest - 1)
    }

    /// Times event `n` was retried.
    pub fn retries(&self, n: u64) -> u32 {
        self.retries.get(&n).copied().unwrap_or(0)
    }

    /// Sets event `n`'s retry count (as stored by a previous owner).
    pub fn set_retries(&mut self, n: u64, count: u32) {
        if count > 0 {
            self.retries.insert(n, count);
        }
    }

    /// Events retried before that are queued or in flight, oldest first, with their counts.
    pub fn retrying(&self) -> Vec<(u64, u32)> {
        let mut retried: Vec<(u64, u32)> = self
            .retries
            .iter()
            .filter(|(n, _)| self.outstanding.contains(n) || self.is_replaying(**n))
            .map(|(n, count)| (*n, *count))
            .collect();
        retried.sort_unstable();
        retried
    }

    /// Sets the most events in flight per subscriber (those already in flight stay).
    pub fn set_buffer_size(&mut self, buffer_size: usize) {
        self.buffer_size = buffer_size;
    }

    /// Shares events out by `strategy` from now on; the events not yet delivered take their
    /// keys from `key` (the new strategy's). Nothing in flight moves.
    pub fn set_strategy(&mut self, strategy: ConsumerStrategy, key: impl Fn(&RecordedEvent) -> Option<u64>) {
        if strategy == self.strategy {
            return;
        }
        self.strategy = strategy;
        self.pins.clear();
        self.single = None;
        for queued in self.queue.iter_mut().chain(self.replay.iter_mut()) {
            queued.partition = key(&queued.event);
        }
    }

    /// A subscriber connected (in this order). Under a pinned strategy it takes over its share
    /// of the pinned buckets, idle ones first; a bucket with events in flight elsewhere follows
    /// once they are acked.
    /// `buffer_size` is its own most events in flight, if it asked for one (never above the
    /// subscription's).
    pub fn join(&mut self, consumer: u64, buffer_size: Option<usize>) {
        if let Some(own) = buffer_size {
            self.own_buffers.insert(consumer, own);
        }
        let busy: HashSet<usize> = self.partitions.keys().map(|p| Pins::bucket(*p)).collect();
        self.pins.join(consumer, self.strategy.is_pinned(), |bucket| busy.contains(&bucket));
    }

    /// A subscriber left: its events in flight go back (see [`release`](Self::release)) and its
    /// pinned buckets are free for the others. `true` tells the caller to read again what the
    /// queue let go of.
    pub fn leave(&mut self, consumer: u64, max_size: usize) -> bool {
        self.pins.leave(consumer);
        self.own_buffers.remove(&consumer);
        if self.single == Some(consumer) {
            self.single = None;
        }
        self.release(consumer, max_size)
    }

    /// Lets go of the newest queued events past `max_size` (it was lowered); `true` tells the
    /// caller to read them from storage again.
    pub fn shrink(&mut self, max_size: usize) -> bool {
        self.truncate(max_size)
    }

    /// Queues an event (its number must be above `received`).
    pub fn push(&mut self, event: RecordedEvent, partition: Option<u64>) {
        debug_assert!(event.event_number > self.received);
        self.received = event.event_number;
        self.outstanding.insert(event.event_number);
        self.queue.push_back(Queued { event, partition });
        self.peak = self.peak.max(self.queue.len());
    }

    /// Queues a parked event for replay, ahead of the queue; `false` (and nothing queued) if it
    /// is already being replayed or is in flight.
    pub fn push_replay(&mut self, event: RecordedEvent, partition: Option<u64>) -> bool {
        let n = event.event_number;
        if self.in_flight.contains_key(&n) || self.replay.iter().any(|q| q.event.event_number == n) {
            return false;
        }
        let at = self.replay.partition_point(|q| q.event.event_number < n);
        self.replay.insert(at, Queued { event, partition });
        true
    }

    /// Takes the queued events `hidden` picks out of the queue, as if they had been skipped;
    /// how many. Replayed and in-flight events stay.
    pub fn drop_queued(&mut self, mut hidden: impl FnMut(&RecordedEvent) -> bool) -> usize {
        let before = self.queue.len();
        let outstanding = &mut self.outstanding;
        self.queue.retain(|q| {
            let drop = hidden(&q.event);
            if drop {
                outstanding.remove(&q.event.event_number);
            }
            !drop
        });
        before - self.queue.len()
    }

    /// Records that nothing up to `n` needs delivering beyond what is already queued (a
    /// selector-rejected event, a parked one, or positions of `$all` without events).
    pub fn skip_to(&mut self, n: u64) {
        self.received = self.received.max(n);
    }

    /// Hands replayed and queued events to `consumers` (those ready, in connection order) with
    /// room (`buffer_size` in flight each), in order, by the strategy:
    /// - `RoundRobin`: to the next subscriber with room in turn, so subscribers with room share
    ///   the queue and none idles while events wait;
    /// - `DispatchToSingle`: to the subscriber being filled while it has room, then to the next
    ///   one with room in connection order;
    /// - `Pinned`, `PinnedByCorrelation`: to the subscriber the key's bucket is pinned to (see
    ///   [`Pins`]), once no older event of the key is in flight at another; otherwise it waits,
    ///   in order, while other keys' events pass.
    ///
    /// Under the first two, a key (`partition_by`) with events in flight stays on the subscriber
    /// that has them. Returns the batches to send: each holds events of one source stream for
    /// one subscriber, in order.
    pub fn dispatch(&mut self, consumers: &[u64]) -> Batches {
        // A retried or replayed event goes out as soon as there is any room: its subscriber may
        // be waiting for it before it acks anything else.
        let eager = !self.replay.is_empty()
            || self.queue.front().is_some_and(|q| self.retries.contains_key(&q.event.event_number));
        let mut room: Vec<usize> = consumers
            .iter()
            .map(|c| if eager { self.buffer_of(*c).saturating_sub(self.in_flight_of(*c)) } else { self.room(*c) })
            .collect();
        let mut batches = Vec::new();
        let now = Instant::now();
        let replay = std::mem::take(&mut self.replay);
        self.replay = self.dispatch_lane(replay, true, consumers, &mut room, &mut batches, now);
        let queue = std::mem::take(&mut self.queue);
        self.queue = self.dispatch_lane(queue, false, consumers, &mut room, &mut batches, now);
        batches
    }

    /// Dispatches one lane; returns what stays queued in it.
    fn dispatch_lane(
        &mut self,
        mut lane: VecDeque<Queued>,
        replay: bool,
        consumers: &[u64],
        room: &mut [usize],
        batches: &mut Batches,
        now: Instant,
    ) -> VecDeque<Queued> {
        if lane.is_empty() || room.iter().all(|r| *r == 0) {
            return lane;
        }
        // Each subscriber's latest batch of this lane (batches never mix the lanes): an event of
        // the same stream joins it, so a subscriber gets few, long batches however the events
        // are shared out.
        let mut latest: HashMap<usize, usize> = HashMap::new();
        // Events passed over (their partition is busy elsewhere); they go back in front, in
        // order. Everything not looked at stays where it is: a dispatch costs what it hands
        // out, not the length of the queue.
        let mut kept = VecDeque::new();
        // Partitions with an older event still queued in this pass: a newer one must wait.
        let mut blocked = HashSet::new();
        while let Some(queued) = lane.pop_front() {
            if room.iter().all(|r| *r == 0) {
                lane.push_front(queued);
                break;
            }
            let with_room = |consumer: u64| consumers.iter().position(|c| *c == consumer).filter(|i| room[*i] > 0);
            let holder = queued.partition.and_then(|p| self.partitions.get(&p)).map(|(holder, _)| *holder);
            let target = match queued.partition {
                Some(p) if blocked.contains(&p) => None,
                Some(p) if self.strategy.is_pinned() => {
                    let owner = self.pins.owner(Pins::bucket(p), consumers);
                    // A key that moved waits until its old subscriber acked what it holds.
                    owner.filter(|o| holder.is_none_or(|h| h == *o)).and_then(with_room)
                }
                Some(_) if holder.is_some() => holder.and_then(with_room),
                _ => self.choose(consumers, room),
            };
            let Some(index) = target else {
                if let Some(p) = queued.partition {
                    blocked.insert(p);
                }
                kept.push_back(queued);
                continue;
            };
            room[index] -= 1;
            let consumer = consumers[index];
            *self.per_consumer.entry(consumer).or_default() += 1;
            if let Some(p) = queued.partition {
                self.partitions.entry(p).or_insert((consumer, 0)).1 += 1;
            }
            let event = queued.event;
            match latest.get(&index).map(|&at| &mut batches[at].1) {
                Some(batch) if batch.last().is_some_and(|last| last.stream_uuid == event.stream_uuid) => {
                    batch.push(event.clone())
                }
                _ => {
                    latest.insert(index, batches.len());
                    batches.push((consumer, vec![event.clone()]));
                }
            }
            let flight = InFlight { consumer, partition: queued.partition, event, replay, since: now };
            self.in_flight.insert(flight.event.event_number, flight);
        }
        while let Some(queued) = kept.pop_back() {
            lane.push_front(queued);
        }
        lane
    }

    /// The subscriber of an event that no key ties to one: by the strategy.
    fn choose(&mut self, consumers: &[u64], room: &[usize]) -> Option<usize> {
        match self.strategy {
            ConsumerStrategy::DispatchToSingle => self.single_with_room(consumers, room),
            _ => self.next_with_room(room),
        }
    }

    /// The subscriber being filled if it has room, else the next one with room in connection
    /// order, which is filled from now on.
    fn single_with_room(&mut self, consumers: &[u64], room: &[usize]) -> Option<usize> {
        let count = consumers.len();
        let start = self.single.and_then(|s| consumers.iter().position(|c| *c == s)).unwrap_or(0);
        let index = (0..count).map(|step| (start + step) % count).find(|&i| room[i] > 0)?;
        self.single = Some(consumers[index]);
        Some(index)
    }

    /// The next subscriber with room, in turn after the one that was handed the last event.
    fn next_with_room(&mut self, room: &[usize]) -> Option<usize> {
        let count = room.len();
        let index = (0..count).map(|step| (self.next_consumer + step) % count).find(|&i| room[i] > 0)?;
        self.next_consumer = (index + 1) % count;
        Some(index)
    }

    /// How many events `consumer` is handed now: none until it has nothing in flight or half
    /// its buffer free. Refilling every slot the moment an ack frees it would shrink batches to
    /// the size of each ack, one event at worst, and every batch costs a round trip.
    /// `DispatchToSingle` is the exception: it fills one subscriber until it is full, exactly.
    fn room(&self, consumer: u64) -> usize {
        let (in_flight, buffer) = (self.in_flight_of(consumer), self.buffer_of(consumer));
        let free = buffer.saturating_sub(in_flight);
        let exact = self.strategy == ConsumerStrategy::DispatchToSingle;
        if exact || in_flight == 0 || free * 2 >= buffer { free } else { 0 }
    }

    /// The most events `consumer` may have in flight: its own buffer size, within the
    /// subscription's.
    pub fn buffer_of(&self, consumer: u64) -> usize {
        self.own_buffers.get(&consumer).map_or(self.buffer_size, |&own| own.min(self.buffer_size))
    }

    /// Events in flight at `consumer`.
    pub fn in_flight_of(&self, consumer: u64) -> usize {
        self.per_consumer.get(&consumer).copied().unwrap_or(0)
    }

    /// Whether event `n` is in flight for `consumer`: [`Error::UnexpectedAck`] if not.
    pub fn check(&self, consumer: u64, n: u64) -> Result<()> {
        match self.in_flight.get(&n) {
            Some(flight) if flight.consumer == consumer => Ok(()),
            _ => Err(Error::UnexpectedAck),
        }
    }

    /// Acks events in flight for `consumer`. If any named event is not in flight for it,
    /// nothing is acked: [`Error::UnexpectedAck`].
    pub fn ack(&mut self, consumer: u64, acks: &Acks) -> Result<Vec<Finished>> {
        let numbers: Vec<u64> = match acks {
            Acks::Events(numbers) => {
                for n in numbers {
                    self.check(consumer, *n)?;
                }
                numbers.clone()
            }
            Acks::UpTo(n) => {
                self.check(consumer, *n)?;
                self.in_flight.range(..=n).filter(|(_, f)| f.consumer == consumer).map(|(n, _)| *n).collect()
            }
        };
        Ok(numbers.into_iter().filter_map(|n| self.finish(n)).collect())
    }

    /// Takes event `n` out of flight for good (acked, skipped or parked).
    pub fn finish(&mut self, n: u64) -> Option<Finished> {
        let flight = self.take_in_flight(n)?;
        if !flight.replay {
            self.outstanding.remove(&n);
        }
        let retried = self.retries.remove(&n).is_some();
        Some(Finished { number: n, replay: flight.replay, retried })
    }

    /// Puts event `n` back in its lane, in order, counting a retry. If that takes the queue past
    /// `max_size`, its newest events are let go: `true` tells the caller to read them again.
    pub fn retry(&mut self, n: u64, max_size: usize) -> bool {
        let Some(flight) = self.take_in_flight(n) else { return false };
        *self.retries.entry(n).or_default() += 1;
        self.requeue(vec![flight], max_size)
    }

    /// Event numbers in flight for longer than `timeout`.
    pub fn expired(&self, now: Instant, timeout: Duration) -> Vec<u64> {
        self.in_flight.iter().filter(|(_, f)| now.duration_since(f.since) >= timeout).map(|(n, _)| *n).collect()
    }

    /// When the longest-waiting event in flight was delivered.
    pub fn oldest_delivery(&self) -> Option<Instant> {
        self.in_flight.values().map(|f| f.since).min()
    }

    fn take_in_flight(&mut self, n: u64) -> Option<InFlight> {
        let flight = self.in_flight.remove(&n)?;
        if let Some(count) = self.per_consumer.get_mut(&flight.consumer) {
            *count -= 1;
            if *count == 0 {
                self.per_consumer.remove(&flight.consumer);
            }
        }
        if let Some(p) = flight.partition
            && let Some((_, count)) = self.partitions.get_mut(&p)
        {
            *count -= 1;
            if *count == 0 {
                self.partitions.remove(&p);
            }
        }
        Some(flight)
    }

    /// Puts the events in flight at `consumer` back in their lanes, in order, for the others
    /// (it left, or paused), without counting retries. If that takes the queue past `max_size`,
    /// its newest events are let go and `received` moves back before them: `true` tells the
    /// caller to read them from storage again.
    pub fn release(&mut self, consumer: u64, max_size: usize) -> bool {
        let numbers: Vec<u64> =
            self.in_flight.iter().filter(|(_, f)| f.consumer == consumer).map(|(n, _)| *n).collect();
        let flights: Vec<InFlight> = numbers.into_iter().filter_map(|n| self.take_in_flight(n)).collect();
        self.requeue(flights, max_size)
    }

    fn requeue(&mut self, flights: Vec<InFlight>, max_size: usize) -> bool {
        if flights.is_empty() {
            return false;
        }
        for flight in flights {
            let lane = if flight.replay { &mut self.replay } else { &mut self.queue };
            let n = flight.event.event_number;
            let at = lane.partition_point(|q| q.event.event_number < n);
            lane.insert(at, Queued { event: flight.event, partition: flight.partition });
        }
        let let_go = self.truncate(max_size);
        self.peak = self.peak.max(self.queue.len());
        let_go
    }

    /// Lets go of the newest queued events past `max_size` (only those above every event in
    /// flight, so nothing is read twice while in flight); whether any were let go.
    fn truncate(&mut self, max_size: usize) -> bool {
        let floor = self.in_flight.iter().filter(|(_, f)| !f.replay).map(|(n, _)| *n).next_back().unwrap_or(0);
        let mut let_go = false;
        while self.queue.len() > max_size && self.queue.back().is_some_and(|q| q.event.event_number > floor) {
            if let Some(q) = self.queue.pop_back() {
                self.outstanding.remove(&q.event.event_number);
                let_go = true;
            }
        }
        if let_go {
            self.received = self.queue.back().map_or(floor, |q| q.event.event_number.max(floor));
        }
        let_go
    }
}

#[cfg(test)]
mod tests;
