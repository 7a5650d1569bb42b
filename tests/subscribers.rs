//! Subscriber actors: handlers run as supervised actors; failures back off and retry from the
//! checkpoint, an event that keeps failing is parked, and pause/resume/stop control delivery.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chronik::{ALL, ExpectedVersion, HandlerError, RecordedEvent, Subscriber, SubscriptionOptions};
use common::{WAIT, events, quick_store, stored_checkpoint};
use tokio::sync::mpsc;

/// Every event number a handler was given, in order (including failed attempts).
type Seen = Arc<Mutex<Vec<u64>>>;

/// Panics whenever it is given event `poison`; reports the events it handled successfully.
struct PanicsOn {
    poison: u64,
    seen: Seen,
    handled: mpsc::UnboundedSender<u64>,
}

impl Subscriber for PanicsOn {
    async fn handle(&mut self, events: &[RecordedEvent]) -> Result<(), HandlerError> {
        for event in events {
            self.seen.lock().unwrap().push(event.event_number);
            assert!(event.event_number != self.poison, "cannot handle event {}", self.poison);
        }
        for event in events {
            let _ = self.handled.send(event.event_number);
        }
        Ok(())
    }
}

async fn handled_until(rx: &mut mpsc::UnboundedReceiver<u64>, last: u64) -> Vec<u64> {
    let mut handled = Vec::new();
    while handled.last() != Some(&last) {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(n)) => handled.push(n),
            other => panic!("handled so far {handled:?}, then {other:?}"),
        }
    }
    handled
}

#[tokio::test]
async fn a_handler_that_panics_on_an_event_sees_it_again_until_it_is_parked_and_the_rest_arrive() {
    let store = quick_store().await;
    store.append_to_stream("acc-1", ExpectedVersion::NoStream, events("E", 1, 10)).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = Seen::default();
    let options = SubscriptionOptions::default().max_retry_count(2);
    let subscriber = PanicsOn { poison: 5, seen: Arc::clone(&seen), handled: tx };
    let handle = store.start_subscriber(ALL, "projector", options, subscriber).await.unwrap();

    let handled = handled_until(&mut rx, 10).await;
    assert_eq!(handled, vec![1, 2, 3, 4, 6, 7, 8, 9, 10], "each event handled once, 5 never");
    let attempts_on_5 = seen.lock().unwrap().iter().filter(|n| **n == 5).count();
    assert_eq!(attempts_on_5, 1 + 1 + 2, "once in the batch, once alone, then max_retry_count retries");
    let parked = store.parked_events(ALL, "projector").await.unwrap();
    assert_eq!(parked.iter().map(|p| (p.event_number, p.retry_count)).collect::<Vec<_>>(), vec![(5, 2)]);
    assert!(parked[0].reason.contains("cannot handle event 5"), "{}", parked[0].reason);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stored_checkpoint(&store, ALL, "projector").await, 10, "the parked event does not hold it back");
    handle.stop().await.unwrap();
    assert!(!handle.is_running());
}
