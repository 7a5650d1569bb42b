"""The official KurrentDB Python client (kurrentdbclient, from PyPI) against `chronik serve`.

`scripts/test-clients` starts the server (on SQLite, then on PostgreSQL) and runs these tests
with CHRONIK_SERVER=host:port. Each test works on streams and groups of its own names.
"""

import json
import os
import time
import uuid

import pytest
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.events import CaughtUp
from kurrentdbclient.exceptions import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    StreamIsDeletedError,
    WrongCurrentVersionError,
)

SERVER = os.environ.get("CHRONIK_SERVER", "127.0.0.1:2113")


@pytest.fixture(scope="module")
def client():
    client = KurrentDBClient(uri=f"kurrentdb://{SERVER}?Tls=false")
    yield client
    client.close()


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def event(event_type, n, metadata=b""):
    return NewEvent(type=event_type, data=json.dumps({"n": n}).encode(), metadata=metadata)


def ns(events):
    return [json.loads(e.data)["n"] for e in events]


def test_appends_read_back_with_their_types_data_metadata_and_positions(client):
    stream = name("account")
    metadata = json.dumps({"user": "ana"}).encode()
    first = event("Opened", 0, metadata)
    position = client.append_to_stream(stream, events=[first, event("Deposited", 1)], current_version=StreamState.NO_STREAM)
    read = client.get_stream(stream)
    assert ns(read) == [0, 1]
    assert [e.stream_position for e in read] == [0, 1]
    assert read[0].id == first.id
    assert (read[0].type, read[0].metadata, read[0].content_type) == ("Opened", metadata, "application/json")
    assert read[1].commit_position == position
    assert client.get_current_version(stream) == 1


def test_expected_versions_are_checked(client):
    stream = name("order")
    client.append_to_stream(stream, events=event("Placed", 0), current_version=StreamState.NO_STREAM)
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream(stream, events=event("Placed", 1), current_version=StreamState.NO_STREAM)
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream(stream, events=event("Placed", 1), current_version=5)
    client.append_to_stream(stream, events=event("Paid", 1), current_version=0)
    client.append_to_stream(stream, events=event("Shipped", 2), current_version=StreamState.EXISTS)
    client.append_to_stream(stream, events=event("Closed", 3), current_version=StreamState.ANY)
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream(name("absent"), events=event("E", 0), current_version=StreamState.EXISTS)
    assert ns(client.get_stream(stream)) == [0, 1, 2, 3]


def test_reads_go_both_ways_and_from_a_position(client):
    stream = name("counter")
    client.append_to_stream(stream, events=[event("E", n) for n in range(10)], current_version=StreamState.ANY)
    assert ns(client.get_stream(stream, stream_position=7)) == [7, 8, 9]
    assert ns(client.get_stream(stream, backwards=True, limit=3)) == [9, 8, 7]
    assert ns(client.get_stream(stream, limit=2)) == [0, 1]
    everything = list(client.read_all())
    mine = [e for e in everything if e.stream_name == stream]
    assert ns(mine) == list(range(10))
    positions = [e.commit_position for e in everything]
    assert positions == sorted(positions)


def test_a_missing_stream_is_not_found(client):
    with pytest.raises(NotFoundError):
        client.get_stream(name("nobody"))


def test_delete_then_write_again_and_tombstone(client):
    stream = name("cart")
    client.append_to_stream(stream, events=[event("E", 0), event("E", 1)], current_version=StreamState.NO_STREAM)
    client.delete_stream(stream, current_version=1)
    with pytest.raises(NotFoundError):
        client.get_stream(stream)
    client.append_to_stream(stream, events=event("E", 2), current_version=StreamState.NO_STREAM)
    assert [e.stream_position for e in client.get_stream(stream)] == [2]

    gone = name("gone")
    client.append_to_stream(gone, events=event("E", 0), current_version=StreamState.ANY)
    client.tombstone_stream(gone, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.get_stream(gone)
    # One event goes through Append, several through BatchAppend: the client raises its
    # FailedPreconditionError for the first and StreamIsDeletedError for the second.
    with pytest.raises(FailedPreconditionError, match="deleted"):
        client.append_to_stream(gone, events=event("E", 1), current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.append_to_stream(gone, events=[event("E", 1), event("E", 2)], current_version=StreamState.ANY)


def test_stream_metadata_is_kept_and_applied(client):
    stream = name("session")
    client.append_to_stream(stream, events=[event("E", n) for n in range(5)], current_version=StreamState.ANY)
    metadata, version = client.get_stream_metadata(stream)
    assert (metadata, version) == ({}, StreamState.NO_STREAM)
    client.set_stream_metadata(stream, metadata={"$maxCount": 2, "owner": "billing"}, current_version=StreamState.NO_STREAM)
    metadata, version = client.get_stream_metadata(stream)
    assert metadata == {"$maxCount": 2, "owner": "billing"}
    assert version == 0
    assert ns(client.get_stream(stream)) == [3, 4]


def test_a_catch_up_subscription_with_a_filter_catches_up_and_goes_live(client):
    prefix = name("invoice")
    client.append_to_stream(f"{prefix}-1", events=event("Issued", 1), current_version=StreamState.ANY)
    client.append_to_stream(name("email"), events=event("Sent", 2), current_version=StreamState.ANY)
    subscription = client.subscribe_to_all(
        filter_include=[f"{prefix}-.*"], filter_by_stream_name=True, include_caught_up=True, timeout=10
    )
    received = []
    caught_up = False
    for item in subscription:
        if isinstance(item, CaughtUp):
            caught_up = True
            client.append_to_stream(f"{prefix}-2", events=event("Issued", 3), current_version=StreamState.ANY)
            continue
        received.append(json.loads(item.data)["n"])
        if caught_up:
            break
    subscription.stop()
    assert received == [1, 3]


def test_a_stream_subscription_delivers_after_the_given_position(client):
    stream = name("feed")
    client.append_to_stream(stream, events=[event("E", n) for n in range(4)], current_version=StreamState.ANY)
    subscription = client.subscribe_to_stream(stream, stream_position=1, timeout=10)
    received = []
    for item in subscription:
        received.append(json.loads(item.data)["n"])
        if len(received) == 2:
            break
    subscription.stop()
    assert received == [2, 3]


def test_persistent_subscriptions_ack_nack_park_and_replay(client):
    stream = name("jobs")
    group = name("workers")
    client.append_to_stream(stream, events=[event("Job", n) for n in range(3)], current_version=StreamState.ANY)
    client.create_subscription_to_stream(group, stream, consumer_strategy="RoundRobin")
    with pytest.raises(AlreadyExistsError):
        client.create_subscription_to_stream(group, stream)
    subscription = client.read_subscription_to_stream(group, stream, timeout=20)
    seen = []
    for item in subscription:
        n = json.loads(item.data)["n"]
        seen.append((n, item.retry_count))
        if n == 0 and item.retry_count == 0:
            subscription.nack(item, action="retry")
        elif n == 0:
            subscription.nack(item, action="park")
        elif n == 1:
            subscription.nack(item, action="skip")
        else:
            subscription.ack(item)
        if len(seen) == 4:
            break
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (2, 0)]

    deadline = time.time() + 10
    while client.get_subscription_info(group, stream).parked_message_count != 1:
        assert time.time() < deadline, "the park is not recorded"
        time.sleep(0.05)
    client.replay_parked_events(group, stream)
    for item in subscription:
        assert json.loads(item.data)["n"] == 0
        subscription.ack(item)
        break
    subscription.stop()

    groups = [(info.event_source, info.group_name) for info in client.list_subscriptions_to_stream(stream)]
    assert groups == [(stream, group)]
    client.update_subscription_to_stream(group, stream, max_retry_count=3)
    assert client.get_subscription_info(group, stream).max_retry_count == 3
    client.delete_subscription(group, stream_name=stream)
    with pytest.raises(NotFoundError):
        client.get_subscription_info(group, stream)


def test_gossip_lists_this_node_as_leader(client):
    members = client.read_gossip()
    assert len(members) == 1
    assert members[0].state == "NODE_STATE_LEADER"
    assert f"{members[0].address}:{members[0].port}" == SERVER
