-- chronik store, version 5: stream metadata, recreatable deletes and scavenging.
--
-- `stream_metadata` holds the latest metadata of a stream (retention rules and custom JSON) with
-- its own version, 1, 2, ...; it is keyed by name because metadata may be set before the stream
-- exists. Retention only hides: reads apply it at once, and a scavenge removes what it hides.
-- `custom` is JSON text, kept as the application wrote it; `max_age_ms` is in milliseconds.
CREATE TABLE stream_metadata (
    stream_uuid      text        PRIMARY KEY,
    metadata_version bigint      NOT NULL CHECK (metadata_version > 0),
    max_count        bigint      CHECK (max_count > 0),
    max_age_ms       bigint      CHECK (max_age_ms > 0),
    truncate_before  bigint      CHECK (truncate_before >= 0),
    custom           text        CHECK (custom IS NULL OR jsonb_typeof(custom::jsonb) = 'object'),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A recreatable delete (KurrentDB's delete) sets `deleted_version` to the stream's version:
-- entries up to it are gone from the stream for good, and while the stream has nothing after
-- them it reads as not found and appends see it as absent. The next append continues the
-- numbering. (`deleted_at` stays the tombstone of a soft delete.)
ALTER TABLE streams ADD COLUMN deleted_version bigint NOT NULL DEFAULT 0 CHECK (deleted_version >= 0);

-- Events and links stay immutable; besides a hard delete, a scavenge may remove them, each in
-- its own transaction only (it sets `chronik.scavenge` with SET LOCAL). DELETE is now guarded
-- once per statement rather than once per row: the permission is the transaction's, not a
-- row's, and a row trigger makes PostgreSQL fetch every deleted row again for it, which more
-- than doubled the cost of a scavenge's DELETE (it removes rows by the million). UPDATE stays
-- guarded per row.
CREATE OR REPLACE FUNCTION forbid_event_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND (current_setting('chronik.enable_hard_deletes', true) = 'on'
                             OR current_setting('chronik.scavenge', true) = 'on') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'chronik: % on %.% is not allowed: events are immutable', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;

DROP TRIGGER events_are_immutable ON events;
DROP TRIGGER links_are_immutable ON links;
CREATE TRIGGER events_are_immutable BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION forbid_event_changes();
CREATE TRIGGER links_are_immutable BEFORE UPDATE ON links
    FOR EACH ROW EXECUTE FUNCTION forbid_event_changes();
CREATE TRIGGER events_are_not_deleted BEFORE DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_event_changes();
CREATE TRIGGER links_are_not_deleted BEFORE DELETE ON links
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_event_changes();
