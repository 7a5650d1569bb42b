//! The tracker's rules, one test each.

use super::*;

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
