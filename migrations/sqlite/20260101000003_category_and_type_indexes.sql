-- chronik store on SQLite, version 3: the category and event-type indexes behind
-- `$ce-<category>` and `$et-<type>` streams (see migrations/postgres, version 6). A stream named
-- `$ce-…` or `$et-…` already in the store stops the migration (the CHECK below fails on it).
CREATE TEMP TABLE chronik_index_names_are_free (taken TEXT CHECK (taken IS NULL));
INSERT INTO chronik_index_names_are_free
SELECT stream_uuid FROM streams WHERE stream_uuid LIKE '$ce-%' OR stream_uuid LIKE '$et-%';
DROP TABLE chronik_index_names_are_free;

ALTER TABLE events ADD COLUMN category TEXT;
ALTER TABLE events ADD COLUMN category_number INTEGER CHECK (category_number > 0);
ALTER TABLE events ADD COLUMN type_number INTEGER CHECK (type_number > 0);

-- The events already stored, numbered once, with the immutability trigger out of the way for
-- this migration's transaction.
DROP TRIGGER events_are_immutable;
UPDATE events SET category = n.category, category_number = n.category_number, type_number = n.type_number
FROM (
    SELECT position, category,
        CASE WHEN category IS NOT NULL THEN row_number() OVER (PARTITION BY category ORDER BY position) END
            AS category_number,
        row_number() OVER (PARTITION BY event_type ORDER BY position) AS type_number
    FROM (
        SELECT position, event_type,
            CASE WHEN instr(stream_uuid, '-') > 1 THEN substr(stream_uuid, 1, instr(stream_uuid, '-') - 1) END
                AS category
        FROM events)
) n
WHERE events.position = n.position;
CREATE TRIGGER events_are_immutable BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'chronik: UPDATE on events is not allowed: events are immutable');
END;

CREATE UNIQUE INDEX events_by_category ON events (category, category_number) WHERE category IS NOT NULL;
CREATE UNIQUE INDEX events_by_type ON events (event_type, type_number);

INSERT INTO streams (stream_uuid, stream_version, created_at)
SELECT '$ce-' || category, max(category_number), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM events WHERE category IS NOT NULL GROUP BY category;
INSERT INTO streams (stream_uuid, stream_version, created_at)
SELECT '$et-' || event_type, max(type_number), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM events GROUP BY event_type;
