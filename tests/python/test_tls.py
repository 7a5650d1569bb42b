"""The KurrentDB Python client over TLS with HTTP basic authentication against `chronik serve`.

`scripts/test-clients` starts the server with a certificate its own throwaway authority signed
and runs these tests with CHRONIK_TLS_SERVER=host:port and CHRONIK_TLS_CA=<the authority's PEM>.
"""

import json
import os
import uuid

import pytest
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import ServiceUnavailableError, UnauthenticatedError

SERVER = os.environ.get("CHRONIK_TLS_SERVER", "127.0.0.1:2113")
CA = os.environ.get("CHRONIK_TLS_CA", "ca.pem")


def connect(credentials):
    return KurrentDBClient(uri=f"kurrentdb://{credentials}@{SERVER}?TlsCaFile={CA}")


def test_the_default_user_appends_and_reads_over_tls():
    client = connect("admin:changeit")
    try:
        stream = f"secure-{uuid.uuid4().hex[:12]}"
        data = json.dumps({"n": 1}).encode()
        client.append_to_stream(stream, events=[NewEvent(type="Sealed", data=data)], current_version=StreamState.NO_STREAM)
        read = client.get_stream(stream)
        assert [(e.type, e.data) for e in read] == [("Sealed", data)]
    finally:
        client.close()


def test_a_wrong_password_is_refused_as_unauthenticated():
    client = connect("admin:wrong")
    try:
        with pytest.raises(UnauthenticatedError):
            client.get_stream(f"secure-{uuid.uuid4().hex[:12]}")
    finally:
        client.close()


def test_a_client_that_does_not_trust_the_certificate_cannot_connect():
    # Without the authority the server's certificate is not trusted: no call gets through.
    client = KurrentDBClient(uri=f"kurrentdb://admin:changeit@{SERVER}?MaxDiscoverAttempts=1&DiscoveryInterval=100&GossipTimeout=1")
    try:
        with pytest.raises(ServiceUnavailableError):
            client.get_stream("anything")
    finally:
        client.close()
