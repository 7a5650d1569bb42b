//! The tracker's rules, one test each.

use super::*;
use crate::subscription::ConsumerStrategy;

fn event(stream: &str, n: u64) -> RecordedEvent {
    RecordedEvent {
        event_number: n,
        event_id: uuid::Uuid::new_v4(),
        stream_uuid: stream.into(),
        stream_version: n,
        global_position: n,
        event_type: "T".into(),
        correlation_id: None,
        causation_id: None,
        data: Vec::new(),
        metadata: None,
        content_type: "application/json".into(),
        created_at: chrono::Utc::now(),
    }
}

fn numbers(batch: &[RecordedEvent]) -> Vec<u64> {
    batch.iter().map(|e| e.event_number).collect()
}

#[test]
fn checkpoint_moves_only_over_a_contiguous_run_of_acks() -> Result<()> {
    let mut t = Tracker::new(10, 0);
    for n in 1..=4 {
        t.push(event("a", n), None);
    }
    let batches = t.dispatch(&[1]);
    assert_eq!(numbers(&batches[0].1), vec![1, 2, 3, 4]);
    t.ack(1, &Acks::Events(vec![2, 3]))?;
    assert_eq!(t.acked(), 0, "1 is not acked yet");
    t.ack(1, &Acks::Events(vec![1]))?;
    assert_eq!(t.acked(), 3);
    t.skip_to(9);
    assert_eq!(t.acked(), 3, "4 is still in flight");
    t.ack(1, &Acks::UpTo(4))?;
    assert_eq!(t.acked(), 9, "skipped numbers count as acked");
    Ok(())
}

#[test]
fn unknown_or_foreign_acks_are_rejected_without_acking_anything() -> Result<()> {
    let mut t = Tracker::new(1, 0);
    t.push(event("a", 1), None);
    t.push(event("a", 2), None);
    t.dispatch(&[1, 2]);
    assert!(matches!(t.ack(1, &Acks::Events(vec![1, 2])), Err(Error::UnexpectedAck)));
    assert!(matches!(t.ack(1, &Acks::UpTo(7)), Err(Error::UnexpectedAck)));
    assert_eq!(t.in_flight(), 2);
    assert_eq!(t.ack(2, &Acks::UpTo(2))?.len(), 1);
    Ok(())
}

#[test]
fn batches_hold_one_stream_and_at_most_buffer_size() {
    let mut t = Tracker::new(3, 0);
    for (n, s) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "b"), (6, "b")] {
        t.push(event(s, n), None);
    }
    let batches = t.dispatch(&[1]);
    let shapes: Vec<Vec<u64>> = batches.iter().map(|(_, b)| numbers(b)).collect();
    assert_eq!(shapes, vec![vec![1, 2], vec![3]]);
    assert_eq!(t.queued(), 3);
}

#[test]
fn a_partition_stays_on_its_subscriber_while_in_flight() -> Result<()> {
    let mut t = Tracker::new(10, 0);
    for n in 1..=4 {
        t.push(event(if n % 2 == 1 { "x" } else { "y" }, n), Some(n % 2));
    }
    let first = t.dispatch(&[1, 2]);
    let owner_of = |n: u64| first.iter().find(|(_, b)| numbers(b).contains(&n)).map_or(0, |(c, _)| *c);
    assert_eq!(owner_of(1), owner_of(3));
    assert_eq!(owner_of(2), owner_of(4));
    assert_ne!(owner_of(1), owner_of(2));
    // A new event of partition 1 while 1 and 3 are in flight goes to the same subscriber.
    t.push(event("x", 5), Some(1));
    let second = t.dispatch(&[1, 2]);
    assert_eq!(second, vec![(owner_of(1), second[0].1.clone())]);
    assert_eq!(numbers(&second[0].1), vec![5]);
    Ok(())
}

#[test]
fn a_subscriber_with_its_own_buffer_size_gets_no_more_than_it_within_the_subscriptions() {
    let mut t = Tracker::new(4, 0);
    t.join(1, Some(2));
    t.join(2, None);
    t.join(3, Some(100));
    for n in 1..=12 {
        t.push(event("a", n), None);
    }
    let batches = t.dispatch(&[1, 2, 3]);
    let in_flight: Vec<usize> = [1, 2, 3].iter().map(|c| t.in_flight_of(*c)).collect();
    assert_eq!(in_flight, vec![2, 4, 4], "its own 2; the subscription's 4; 100 capped at 4: {batches:?}");
    assert_eq!((t.buffer_of(1), t.buffer_of(2), t.buffer_of(3)), (2, 4, 4));
    // Gone and back without one: the subscription's again.
    t.leave(1, 100);
    t.join(1, None);
    assert_eq!(t.buffer_of(1), 4);
}

#[test]
fn subscribers_with_room_share_the_queue_in_turn() {
    let mut t = Tracker::new(10, 0);
    for n in 1..=10 {
        t.push(event("a", n), None);
    }
    let batches = t.dispatch(&[1, 2]);
    let shapes: Vec<(u64, Vec<u64>)> = batches.iter().map(|(c, b)| (*c, numbers(b))).collect();
    assert_eq!(shapes, vec![(1, vec![1, 3, 5, 7, 9]), (2, vec![2, 4, 6, 8, 10])]);
    // The turn goes on where it stopped, and takes in a subscriber that joined.
    for n in 11..=13 {
        t.push(event("a", n), None);
    }
    let shapes: Vec<(u64, Vec<u64>)> = t.dispatch(&[1, 2, 3]).iter().map(|(c, b)| (*c, numbers(b))).collect();
    assert_eq!(shapes, vec![(1, vec![11]), (2, vec![12]), (3, vec![13])]);
}

#[test]
fn partitions_spread_over_subscribers_with_room_and_stay_where_they_are_in_flight() {
    let mut t = Tracker::new(3, 0);
    for n in 1..=6 {
        t.push(event("a", n), Some(n % 2));
    }
    let batches = t.dispatch(&[1, 2, 3]);
    let shapes: Vec<(u64, Vec<u64>)> = batches.iter().map(|(c, b)| (*c, numbers(b))).collect();
    assert_eq!(shapes, vec![(1, vec![1, 3, 5]), (2, vec![2, 4, 6])], "two partitions, two busy subscribers");
    assert_eq!(t.queued(), 0, "nothing waits while a partition's subscriber has room");
}

#[test]
fn a_blocked_partition_waits_in_order_while_others_pass() {
    let mut t = Tracker::new(1, 0);
    t.push(event("x", 1), Some(7));
    t.dispatch(&[1, 2]);
    // Subscriber 1 holds partition 7 and is full; 2 and 3 (partition 7) must wait, 4 passes.
    t.push(event("x", 2), Some(7));
    t.push(event("x", 3), Some(7));
    t.push(event("z", 4), Some(9));
    let batches = t.dispatch(&[1, 2]);
    assert_eq!(batches.len(), 1);
    assert_eq!(numbers(&batches[0].1), vec![4]);
    assert_eq!(t.first_queued(), Some(2));
}

#[test]
fn a_disconnected_subscribers_events_go_back_in_order() {
    let mut t = Tracker::new(2, 0);
    for n in 1..=5 {
        t.push(event("a", n), None);
    }
    t.dispatch(&[1]);
    assert_eq!(t.first_queued(), Some(3));
    assert!(!t.release(1, 10));
    assert_eq!(t.in_flight(), 0);
    let again = t.dispatch(&[2]);
    assert_eq!(numbers(&again[0].1), vec![1, 2]);
    assert_eq!(t.acked(), 0);
}

#[test]
fn events_coming_back_never_push_the_queue_past_max_size() {
    let mut t = Tracker::new(10, 0);
    for n in 1..=10 {
        t.push(event("a", n), None);
    }
    t.dispatch(&[1]);
    for n in 11..=30 {
        t.push(event("a", n), None);
    }
    assert!(t.release(1, 20), "the newest queued events are let go");
    assert_eq!((t.queued(), t.peak_queued(), t.first_queued(), t.received()), (20, 20, Some(1), 20));
    assert_eq!(t.acked(), 0);
}

#[test]
fn a_retried_event_goes_back_in_order_with_its_count() -> Result<()> {
    let mut t = Tracker::new(10, 0);
    for n in 1..=3 {
        t.push(event("a", n), None);
    }
    t.dispatch(&[1]);
    assert!(!t.retry(2, 10));
    assert_eq!((t.retries(2), t.in_flight(), t.first_queued()), (1, 2, Some(2)));
    assert_eq!(t.acked(), 0);
    t.ack(1, &Acks::Events(vec![1, 3]))?;
    assert_eq!(t.acked(), 1, "2 still holds the checkpoint back");
    let again = t.dispatch(&[1]);
    assert_eq!(numbers(&again[0].1), vec![2]);
    let done = t.finish(2).expect("2 is in flight");
    assert_eq!(done, Finished { number: 2, replay: false, retried: true });
    assert_eq!((t.acked(), t.retries(2)), (3, 0));
    Ok(())
}

#[test]
fn replayed_events_go_first_and_never_hold_the_checkpoint() -> Result<()> {
    let mut t = Tracker::new(10, 5);
    t.push(event("a", 6), None);
    assert!(t.push_replay(event("a", 2), None));
    assert!(!t.push_replay(event("a", 2), None), "a replay is queued once");
    let batches = t.dispatch(&[1]);
    assert_eq!(batches.iter().map(|(_, b)| numbers(b)).collect::<Vec<_>>(), vec![vec![2], vec![6]]);
    assert!(t.is_replaying(2));
    let done = t.ack(1, &Acks::Events(vec![2]))?;
    assert_eq!(done, vec![Finished { number: 2, replay: true, retried: false }]);
    assert_eq!(t.acked(), 5, "6 is in flight; the replayed 2 did not count");
    t.ack(1, &Acks::UpTo(6))?;
    assert_eq!(t.acked(), 6);
    Ok(())
}

#[test]
fn a_subscriber_is_refilled_once_half_its_buffer_is_free() -> Result<()> {
    let mut t = Tracker::new(4, 0);
    for n in 1..=10 {
        t.push(event("a", n), None);
    }
    assert_eq!(numbers(&t.dispatch(&[1])[0].1), vec![1, 2, 3, 4]);
    t.ack(1, &Acks::Events(vec![1]))?;
    assert!(t.dispatch(&[1]).is_empty(), "one free slot of four: wait for more acks");
    t.ack(1, &Acks::Events(vec![2]))?;
    assert_eq!(numbers(&t.dispatch(&[1])[0].1), vec![5, 6], "half free: refilled in one batch");
    Ok(())
}

#[test]
fn events_in_flight_too_long_are_reported() -> Result<()> {
    let mut t = Tracker::new(10, 0);
    t.push(event("a", 1), None);
    t.dispatch(&[1]);
    let delivered = t.oldest_delivery().expect("1 is in flight");
    assert!(t.expired(delivered, Duration::from_secs(1)).is_empty());
    assert_eq!(t.expired(delivered + Duration::from_secs(1), Duration::from_secs(1)), vec![1]);
    Ok(())
}

#[test]
fn dropped_queued_events_count_as_skipped_and_in_flight_ones_stay() -> Result<()> {
    let mut t = Tracker::new(1, 0);
    for n in 1..=5 {
        t.push(event("a", n), None);
    }
    assert_eq!(numbers(&t.dispatch(&[1])[0].1), vec![1]);
    assert_eq!(t.drop_queued(|e| e.event_number < 4), 2, "2 and 3 were queued; 1 is in flight");
    assert_eq!((t.queued(), t.first_queued()), (2, Some(4)));
    t.ack(1, &Acks::Events(vec![1]))?;
    assert_eq!(t.acked(), 3, "the checkpoint moves past the dropped events");
    assert_eq!(numbers(&t.dispatch(&[1])[0].1), vec![4]);
    Ok(())
}

fn shapes(batches: &[(u64, Vec<RecordedEvent>)]) -> Vec<(u64, Vec<u64>)> {
    batches.iter().map(|(c, b)| (*c, numbers(b))).collect()
}

/// A tracker of `strategy` with subscribers `consumers` joined in this order.
fn tracker(buffer_size: usize, strategy: ConsumerStrategy, consumers: &[u64]) -> Tracker {
    let mut t = Tracker::new(buffer_size, 0);
    t.set_strategy(strategy, |_| None);
    for c in consumers {
        t.join(*c, None);
    }
    t
}

#[test]
fn dispatch_to_single_fills_one_subscriber_then_the_next_in_connection_order() -> Result<()> {
    let mut t = tracker(3, ConsumerStrategy::DispatchToSingle, &[1, 2, 3]);
    for n in 1..=8 {
        t.push(event("a", n), None);
    }
    assert_eq!(shapes(&t.dispatch(&[1, 2, 3])), vec![(1, vec![1, 2, 3]), (2, vec![4, 5, 6]), (3, vec![7, 8])]);
    // 3 still has room, so it stays the one being filled.
    t.push(event("a", 9), None);
    t.ack(3, &Acks::UpTo(8))?;
    assert_eq!(shapes(&t.dispatch(&[1, 2, 3])), vec![(3, vec![9])]);
    // Full again: the turn wraps round to the first in connection order with room.
    t.ack(1, &Acks::UpTo(3))?;
    for n in 10..=12 {
        t.push(event("a", n), None);
    }
    assert_eq!(shapes(&t.dispatch(&[1, 2, 3])), vec![(3, vec![10, 11]), (1, vec![12])]);
    Ok(())
}

#[test]
fn pinned_keeps_a_key_on_its_subscriber_while_it_is_connected_not_only_while_in_flight() -> Result<()> {
    let mut t = tracker(10, ConsumerStrategy::Pinned, &[1, 2]);
    for (n, key) in [(1, 7), (2, 8), (3, 9)] {
        t.push(event("s", n), Some(key));
    }
    let first = t.dispatch(&[1, 2]);
    assert_eq!(shapes(&first), vec![(1, vec![1, 3]), (2, vec![2])], "fewest buckets first");
    t.ack(1, &Acks::UpTo(3))?;
    t.ack(2, &Acks::UpTo(2))?;
    // Nothing in flight now: round robin would move the keys; pinned keeps them.
    for (n, key) in [(4, 9), (5, 8), (6, 7)] {
        t.push(event("s", n), Some(key));
    }
    assert_eq!(shapes(&t.dispatch(&[1, 2])), vec![(1, vec![4, 6]), (2, vec![5])]);
    Ok(())
}

#[test]
fn a_pinned_keys_events_wait_in_order_for_their_full_subscriber_while_others_pass() -> Result<()> {
    let mut t = tracker(1, ConsumerStrategy::Pinned, &[1, 2]);
    t.push(event("a", 1), Some(1));
    t.push(event("a", 2), Some(1));
    t.push(event("b", 3), Some(2));
    t.push(event("a", 4), Some(1));
    assert_eq!(shapes(&t.dispatch(&[1, 2])), vec![(1, vec![1]), (2, vec![3])], "2 and 4 wait for subscriber 1");
    t.ack(2, &Acks::UpTo(3))?;
    assert!(t.dispatch(&[1, 2]).is_empty(), "subscriber 2 has room, but a's events are not its own");
    t.ack(1, &Acks::UpTo(1))?;
    assert_eq!(shapes(&t.dispatch(&[1, 2])), vec![(1, vec![2])]);
    t.ack(1, &Acks::UpTo(2))?;
    assert_eq!(shapes(&t.dispatch(&[1, 2])), vec![(1, vec![4])]);
    Ok(())
}

#[test]
fn a_leaving_subscribers_keys_are_spread_over_the_others_in_order() {
    let mut t = tracker(10, ConsumerStrategy::Pinned, &[1, 2, 3]);
    for key in 1..=6 {
        t.push(event(&format!("s{key}"), key), Some(key));
    }
    let owners = shapes(&t.dispatch(&[1, 2, 3]));
    assert_eq!(owners.iter().filter(|(c, _)| *c == 2).map(|(_, n)| n[0]).collect::<Vec<_>>(), vec![2, 5]);
    // Subscriber 2 leaves holding 2 and 5: they go back in order and to the others, one each.
    assert!(!t.leave(2, 100));
    t.push(event("s2", 7), Some(2));
    let again = shapes(&t.dispatch(&[1, 3]));
    assert_eq!(again, vec![(1, vec![2, 7]), (3, vec![5])]);
}

#[test]
fn a_joining_subscriber_takes_its_share_and_a_moved_key_waits_for_its_old_subscribers_acks() -> Result<()> {
    let mut t = tracker(10, ConsumerStrategy::Pinned, &[1]);
    for key in 1..=4 {
        t.push(event(&format!("s{key}"), key), Some(key));
    }
    t.dispatch(&[1]);
    t.ack(1, &Acks::Events(vec![2, 3, 4]))?;
    // Subscriber 2 takes two of the four buckets, idle ones first: keys 2 and 3.
    t.join(2, None);
    for (n, key) in [(5, 1), (6, 2), (7, 3), (8, 4)] {
        t.push(event(&format!("s{key}"), n), Some(key));
    }
    let shares = shapes(&t.dispatch(&[1, 2]));
    assert_eq!(shares, vec![(1, vec![5]), (2, vec![6]), (2, vec![7]), (1, vec![8])]);

    // Every bucket busy: one moves anyway, and its next event waits for the old subscriber.
    let mut t = tracker(10, ConsumerStrategy::Pinned, &[1]);
    t.push(event("x", 1), Some(1));
    t.push(event("y", 2), Some(2));
    t.dispatch(&[1]);
    t.join(2, None);
    t.push(event("x", 3), Some(1));
    t.push(event("y", 4), Some(2));
    assert_eq!(shapes(&t.dispatch(&[1, 2])), vec![(1, vec![4])], "x moved to 2 but 1 still holds x's event 1");
    t.ack(1, &Acks::Events(vec![1]))?;
    assert_eq!(shapes(&t.dispatch(&[1, 2])), vec![(2, vec![3])]);
    Ok(())
}

#[test]
fn a_new_strategy_rekeys_what_is_not_yet_delivered() {
    let mut t = tracker(10, ConsumerStrategy::RoundRobin, &[1, 2]);
    for n in 1..=4 {
        t.push(event("a", n), None);
    }
    t.set_strategy(ConsumerStrategy::Pinned, |e| Some(u64::from(e.stream_uuid == "a")));
    assert_eq!(shapes(&t.dispatch(&[1, 2])), vec![(1, vec![1, 2, 3, 4])], "one stream, one subscriber");
}

#[test]
fn a_smaller_buffer_holds_back_deliveries_until_the_subscriber_is_under_it() -> Result<()> {
    let mut t = Tracker::new(4, 0);
    for n in 1..=8 {
        t.push(event("a", n), None);
    }
    assert_eq!(numbers(&t.dispatch(&[1])[0].1), vec![1, 2, 3, 4]);
    t.set_buffer_size(2);
    t.ack(1, &Acks::UpTo(2))?;
    assert!(t.dispatch(&[1]).is_empty(), "two in flight, buffer of two");
    t.ack(1, &Acks::UpTo(4))?;
    assert_eq!(numbers(&t.dispatch(&[1])[0].1), vec![5, 6]);
    assert!(t.shrink(1), "the queue lets go of what is past the new max_size");
    assert_eq!((t.queued(), t.received()), (1, 7));
    Ok(())
}

#[test]
fn retried_events_are_reported_while_queued_or_in_flight() {
    let mut t = Tracker::new(10, 0);
    for n in 1..=3 {
        t.push(event("a", n), None);
    }
    t.dispatch(&[1]);
    t.retry(2, 10);
    t.retry(3, 10);
    t.dispatch(&[1]);
    t.retry(3, 10);
    assert_eq!(t.retrying(), vec![(2, 1), (3, 2)]);
    t.finish(2);
    assert_eq!(t.retrying(), vec![(3, 2)]);
}
