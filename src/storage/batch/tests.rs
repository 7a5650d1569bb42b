//! Deciding batches, one rule a test: parts of a request decided and undone together,
//! recreatable deletes, and the rows of a committed request split by its parts.

use super::*;
use crate::event::ExpectedVersion::{self, Any, Exact, NoStream, StreamExists};
use crate::storage::WriteProgress;

fn event() -> EventData {
    EventData::from_bytes("E", "application/json", b"{}".to_vec())
}

fn appending(stream: &str, expected: ExpectedVersion, events: Vec<EventData>) -> StreamWrite {
    StreamWrite { stream: stream.into(), expected, op: WriteOp::Append(events) }
}

fn one(stream: &str, expected: ExpectedVersion) -> StreamWrite {
    appending(stream, expected, vec![event()])
}

fn single(part: StreamWrite) -> Arc<WriteRequest> {
    Arc::new(WriteRequest { parts: vec![part], multi_stream: false, progress: WriteProgress::default() })
}

fn multi(parts: Vec<StreamWrite>) -> Arc<WriteRequest> {
    Arc::new(WriteRequest { parts, multi_stream: true, progress: WriteProgress::default() })
}

/// A stream's row as the batch reads it: (name, id, version, deleted version).
type Row<'a> = (&'a str, i64, i64, i64);

/// Decides `requests` against the streams of `rows` (any other stream has no row), with
/// `$all` at `head`, `taken` ids stored and `linkable` events to link.
fn plan<'a>(
    requests: &'a [Arc<WriteRequest>],
    rows: &[Row<'_>],
    head: i64,
    taken: &[Uuid],
    linkable: &HashMap<Uuid, (i64, i64)>,
) -> Plan<'a> {
    let slots = Slots::of(requests);
    let streams = slots
        .names()
        .iter()
        .map(|name| match rows.iter().find(|row| row.0 == *name) {
            Some(&(_, id, version, deleted_version)) => StreamState::read(id, version, false, deleted_version),
            None => StreamState::absent(),
        })
        .collect();
    decide(requests, &slots, streams, head, taken.iter().copied().collect(), linkable, HashSet::new())
}

fn result(stream_version: u64, first_position: u64, last_position: u64) -> AppendResult {
    AppendResult { stream_version, first_position, last_position }
}

/// The results of an accepted request.
fn accepted(outcome: &WriteOutcome) -> Vec<AppendResult> {
    match outcome {
        Ok(results) => results.clone(),
        Err(e) => panic!("expected the request to be accepted, got {e:?}"),
    }
}

/// The stream and reason of a refused multi-stream request.
fn failed(outcome: &WriteOutcome) -> (&str, &Error) {
    match outcome {
        Err(Error::AppendFailed { stream, source }) => (stream, source),
        other => panic!("expected AppendFailed, got {other:?}"),
    }
}

#[test]
fn a_refused_part_undoes_what_the_earlier_parts_of_its_request_did() {
    let reused = event();
    let requests = [
        multi(vec![appending("a", Exact(2), vec![reused.clone(), event()]), one("c", NoStream), one("b", Exact(4))]),
        single(appending("a", Exact(2), vec![reused])),
        single(one("c", NoStream)),
    ];
    let plan = plan(&requests, &[("a", 1, 2, 0), ("b", 2, 5, 0)], 10, &[], &HashMap::new());

    let (stream, source) = failed(&plan.outcomes[0]);
    assert_eq!(stream, "b");
    assert!(matches!(source, Error::WrongExpectedVersion { expected: 4, actual: 5 }), "{source:?}");
    // The others see the streams as the batch found them, the refused request's event ids
    // free again and its positions not taken.
    assert_eq!(accepted(&plan.outcomes[1]), [result(3, 11, 11)]);
    assert_eq!(accepted(&plan.outcomes[2]), [result(1, 12, 12)]);
    assert_eq!(plan.position, 12);
    assert_eq!(plan.events.position, [11, 12]);
    assert_eq!(plan.events.stream_version, [3, 1]);
    assert_eq!(plan.events.event_id.len(), 2);
    let touched: Vec<(i64, bool)> = plan.streams.iter().map(|s| (s.version, s.touched)).collect();
    // Slots in first-seen order: a, the index of type `E`, c, b. The index numbers only the
    // accepted requests' two events: the refused request's were taken back with them.
    assert_eq!(touched, [(3, true), (2, true), (1, true), (5, false)]);
    assert_eq!(plan.events.type_number, [1, 2]);
}

#[test]
fn a_refused_request_of_many_parts_leaves_untouched_the_streams_only_it_wrote() {
    let requests = [multi(vec![one("a", Any), one("new", NoStream), one("b", NoStream)])];
    let plan = plan(&requests, &[("a", 1, 2, 0), ("b", 2, 5, 0)], 10, &[], &HashMap::new());
    let (stream, source) = failed(&plan.outcomes[0]);
    assert_eq!(stream, "b");
    assert!(matches!(source, Error::StreamExists), "{source:?}");
    assert!(plan.streams.iter().all(|s| !s.touched), "nothing to write");
    assert_eq!((plan.streams[0].version, plan.streams[1].version), (2, 0));
    assert_eq!(plan.position, 10);
    assert!(plan.events.position.is_empty() && plan.events.data.is_empty());
}

#[test]
fn an_id_already_stored_refuses_the_whole_request_and_frees_the_ids_of_its_other_parts() {
    let (stored, mine) = (event(), event());
    let requests = [
        multi(vec![appending("a", Any, vec![mine.clone()]), appending("b", Any, vec![stored.clone()])]),
        single(appending("a", Any, vec![mine])),
    ];
    let plan = plan(&requests, &[], 0, &[stored.event_id], &HashMap::new());
    let (stream, source) = failed(&plan.outcomes[0]);
    assert_eq!(stream, "b");
    assert!(matches!(source, Error::DuplicateEvent(id) if *id == stored.event_id), "{source:?}");
    assert_eq!(accepted(&plan.outcomes[1]), [result(1, 1, 1)]);
}

#[test]
fn the_same_stream_twice_sees_the_version_its_earlier_part_produced() {
    let requests = [
        multi(vec![one("a", Exact(2)), appending("a", Exact(3), vec![event(), event()])]),
        multi(vec![one("a", Exact(5)), one("a", Exact(5))]),
    ];
    let plan = plan(&requests, &[("a", 1, 2, 0)], 10, &[], &HashMap::new());
    assert_eq!(accepted(&plan.outcomes[0]), [result(3, 11, 11), result(5, 12, 13)]);
    let (stream, source) = failed(&plan.outcomes[1]);
    assert_eq!(stream, "a");
    assert!(matches!(source, Error::WrongExpectedVersion { expected: 5, actual: 6 }), "{source:?}");
    assert_eq!((plan.streams[0].version, plan.position), (5, 13));
}

#[test]
fn only_multi_stream_requests_name_the_refused_stream() {
    let requests = [single(one("a", NoStream)), multi(vec![one("a", NoStream)])];
    let plan = plan(&requests, &[("a", 1, 2, 0)], 2, &[], &HashMap::new());
    assert!(matches!(plan.outcomes[0], Err(Error::StreamExists)), "{:?}", plan.outcomes[0]);
    let (stream, source) = failed(&plan.outcomes[1]);
    assert_eq!(stream, "a");
    assert!(matches!(source, Error::StreamExists), "{source:?}");
}

#[test]
fn a_recreatably_deleted_stream_is_absent_until_its_next_write_which_continues_its_numbering() {
    let requests = [
        single(one("a", StreamExists)),
        single(one("a", Exact(3))),
        single(one("a", NoStream)),
        single(one("a", StreamExists)),
        single(one("a", Exact(5))),
    ];
    let plan = plan(&requests, &[("a", 1, 3, 3)], 3, &[], &HashMap::new());
    assert!(matches!(plan.outcomes[0], Err(Error::StreamNotFound)), "{:?}", plan.outcomes[0]);
    assert!(
        matches!(plan.outcomes[1], Err(Error::WrongExpectedVersion { expected: 3, actual: 0 })),
        "{:?}",
        plan.outcomes[1]
    );
    assert_eq!(accepted(&plan.outcomes[2]), [result(4, 4, 4)]);
    assert_eq!(accepted(&plan.outcomes[3]), [result(5, 5, 5)]);
    assert_eq!(accepted(&plan.outcomes[4]), [result(6, 6, 6)]);
    assert!(!plan.streams[0].deleted_recreatably);
    assert_eq!(plan.streams[0].read_deleted_version, 3);
}

#[test]
fn a_stream_appended_to_after_its_recreatable_delete_is_present() {
    // Deleted at version 3, appended to since: a stream like any other.
    let requests = [single(one("a", NoStream)), single(one("a", Exact(4)))];
    let plan = plan(&requests, &[("a", 1, 4, 3)], 4, &[], &HashMap::new());
    assert!(matches!(plan.outcomes[0], Err(Error::StreamExists)), "{:?}", plan.outcomes[0]);
    assert_eq!(accepted(&plan.outcomes[1]), [result(5, 5, 5)]);
}

#[test]
fn a_refused_request_leaves_a_recreatably_deleted_stream_absent() {
    let requests = [
        multi(vec![one("a", NoStream), one("b", Exact(9))]),
        single(one("a", StreamExists)),
        single(one("a", Exact(0))),
    ];
    let plan = plan(&requests, &[("a", 1, 3, 3), ("b", 2, 1, 0)], 4, &[], &HashMap::new());
    assert_eq!(failed(&plan.outcomes[0]).0, "b");
    assert!(matches!(plan.outcomes[1], Err(Error::StreamNotFound)), "{:?}", plan.outcomes[1]);
    assert_eq!(accepted(&plan.outcomes[2]), [result(4, 5, 5)]);
}

#[test]
fn a_refused_part_undoes_the_links_of_the_earlier_parts() {
    let linked = Uuid::new_v4();
    let linkable = HashMap::from([(linked, (7, 99))]);
    let link = |stream: &str| StreamWrite { stream: stream.into(), expected: Any, op: WriteOp::Link(vec![linked]) };
    let requests = [multi(vec![link("t"), one("b", NoStream)]), single(link("t"))];
    let plan = plan(&requests, &[("t", 1, 2, 0), ("b", 2, 1, 0)], 9, &[], &linkable);
    assert_eq!(failed(&plan.outcomes[0]).0, "b");
    // The link is not taken by the refused request: linking it again is no duplicate.
    assert_eq!(accepted(&plan.outcomes[1]), [result(3, 7, 7)]);
    assert_eq!(plan.links.link_version, [3]);
    assert_eq!(plan.position, 9);
}

#[test]
fn the_rows_of_a_committed_request_are_split_by_its_parts() {
    let request = multi(vec![appending("a", Any, vec![event(), event()]), one("b", Any), one("a", Any)]);
    let rows = [(21, 4), (22, 5), (23, 1), (24, 6)];
    let results = appends_of(&request, &rows, 21).unwrap();
    assert_eq!(results, Some(vec![result(5, 21, 22), result(1, 23, 23), result(6, 24, 24)]));
    // Anywhere else, or missing one, it is not the request's.
    assert_eq!(appends_of(&request, &rows, 20).unwrap(), None);
    assert_eq!(appends_of(&request, &rows[..3], 21).unwrap(), None);
}

#[test]
fn appended_events_are_numbered_in_their_category_and_type_indexes() {
    let typed = |t: &str| EventData::from_bytes(t, "application/json", b"{}".to_vec());
    let requests = [
        single(appending("account-1", Any, vec![typed("Opened"), typed("Deposited")])),
        single(appending("account-2", NoStream, vec![typed("Deposited")])),
        single(appending("solo", Any, vec![typed("Deposited")])),
    ];
    let plan = plan(&requests, &[("$ce-account", 7, 4, 0), ("$et-Deposited", 8, 10, 0)], 20, &[], &HashMap::new());
    assert_eq!(plan.events.category, [Some("account"), Some("account"), Some("account"), None]);
    assert_eq!(plan.events.category_number, [Some(5), Some(6), Some(7), None], "after the index's head, 4");
    assert_eq!(plan.events.type_number, [1, 11, 12, 13], "a new type starts at 1");
    let names = Slots::of(&requests).names().iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(names, ["account-1", "$ce-account", "$et-Opened", "$et-Deposited", "account-2", "solo"]);
    let index: Vec<(i64, bool)> = plan.streams[1..4].iter().map(|s| (s.version, s.touched)).collect();
    assert_eq!(index, [(7, true), (1, true), (13, true)]);
}
