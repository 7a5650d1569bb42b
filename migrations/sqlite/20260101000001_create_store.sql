-- chronik store on SQLite, version 1: the tables of the PostgreSQL store (migrations/postgres,
-- versions 1-4) in SQLite's types. STRICT tables reject values of the wrong type. UUIDs are 16-byte
-- BLOBs, times are RFC 3339 TEXT written by chronik, booleans are 0/1.
--
-- One process writes (it holds the file's `-lock` companion), through one connection, so the
-- PostgreSQL store's row locks, advisory locks, fencing revision and NOTIFY have no counterpart
-- here: the writer serialises appends itself and wakes the notifier in memory.

-- One row per stream. Row 0 is `$all`: its stream_version is the last global position handed out.
CREATE TABLE streams (
    stream_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_uuid    TEXT    NOT NULL UNIQUE,
    stream_version INTEGER NOT NULL DEFAULT 0 CHECK (stream_version >= 0),
    created_at     TEXT    NOT NULL,
    deleted_at     TEXT
) STRICT;

INSERT INTO streams (stream_id, stream_uuid, stream_version, created_at)
VALUES (0, '$all', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

-- Every event once, keyed by its global position (the table's rowid).
CREATE TABLE events (
    position       INTEGER PRIMARY KEY CHECK (position > 0),
    event_id       BLOB    NOT NULL UNIQUE CHECK (length(event_id) = 16),
    stream_id      INTEGER NOT NULL,
    stream_uuid    TEXT    NOT NULL,
    stream_version INTEGER NOT NULL CHECK (stream_version > 0),
    event_type     TEXT    NOT NULL,
    content_type   TEXT    NOT NULL,
    correlation_id BLOB,
    causation_id   BLOB,
    data           BLOB    NOT NULL,
    metadata       BLOB,
    created_at     TEXT    NOT NULL,
    UNIQUE (stream_id, stream_version)
) STRICT;

-- Links: entries of a stream that point at events of other streams. They share the stream's
-- version sequence with its own events and never enter `$all`.
CREATE TABLE links (
    stream_id    INTEGER NOT NULL,
    link_version INTEGER NOT NULL CHECK (link_version > 0),
    position     INTEGER NOT NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (stream_id, link_version),
    UNIQUE (stream_id, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX links_by_position ON links (position);

CREATE TABLE snapshots (
    source_uuid    TEXT    PRIMARY KEY,
    source_version INTEGER NOT NULL CHECK (source_version >= 0),
    source_type    TEXT    NOT NULL,
    content_type   TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB,
    created_at     TEXT    NOT NULL
) STRICT;

-- Named subscriptions; `last_seen` is the checkpoint.
CREATE TABLE subscriptions (
    subscription_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_uuid       TEXT    NOT NULL,
    subscription_name TEXT    NOT NULL,
    last_seen         INTEGER NOT NULL DEFAULT 0 CHECK (last_seen >= 0),
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    UNIQUE (stream_uuid, subscription_name)
) STRICT;

-- Retried and parked events of named subscriptions (see migrations/postgres, version 4).
CREATE TABLE subscription_nacks (
    subscription_id  INTEGER NOT NULL REFERENCES subscriptions (subscription_id) ON DELETE CASCADE,
    event_number     INTEGER NOT NULL CHECK (event_number > 0),
    retry_count      INTEGER NOT NULL CHECK (retry_count >= 0),
    reason           TEXT    NOT NULL,
    parked_at        TEXT,
    replay_requested INTEGER NOT NULL DEFAULT 0 CHECK (replay_requested IN (0, 1)),
    updated_at       TEXT    NOT NULL,
    PRIMARY KEY (subscription_id, event_number),
    CHECK (parked_at IS NOT NULL OR NOT replay_requested)
) STRICT, WITHOUT ROWID;

-- Events and links are immutable. The only exception is a hard delete: its transaction puts a
-- row in `hard_delete_permits`, deletes, and takes the row out again before it commits, so no
-- other statement ever sees the permit.
CREATE TABLE hard_delete_permits (permit INTEGER PRIMARY KEY) STRICT;

CREATE TRIGGER events_are_immutable BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'chronik: UPDATE on events is not allowed: events are immutable');
END;
CREATE TRIGGER events_are_not_deleted BEFORE DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM hard_delete_permits)
BEGIN
    SELECT RAISE(ABORT, 'chronik: DELETE on events is not allowed: events are immutable');
END;
CREATE TRIGGER links_are_immutable BEFORE UPDATE ON links
BEGIN
    SELECT RAISE(ABORT, 'chronik: UPDATE on links is not allowed: events are immutable');
END;
CREATE TRIGGER links_are_not_deleted BEFORE DELETE ON links
WHEN NOT EXISTS (SELECT 1 FROM hard_delete_permits)
BEGIN
    SELECT RAISE(ABORT, 'chronik: DELETE on links is not allowed: events are immutable');
END;
