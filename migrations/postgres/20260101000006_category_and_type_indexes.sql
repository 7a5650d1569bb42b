-- chronik store, version 6: the category and event-type indexes behind `$ce-<category>` and
-- `$et-<type>` streams.
--
-- Each event carries its stream's category (the stream id up to the first `-`; NULL when it
-- has none) and its number in its category's index and in its type's index, 1, 2, 3, ... in
-- `$all` order, written by the append itself. The index streams' rows in `streams` hold each
-- index's head as their `stream_version`, so the writer numbers them under the same `$all`
-- lock and compare-and-set as any stream. Deleting an event (hard delete, scavenge) takes its
-- index entries with it.
DO $$
DECLARE
    taken text;
BEGIN
    SELECT stream_uuid INTO taken FROM streams WHERE stream_uuid LIKE '$ce-%' OR stream_uuid LIKE '$et-%' LIMIT 1;
    IF taken IS NOT NULL THEN
        RAISE EXCEPTION 'chronik: the stream `%` is in the way: `$ce-` and `$et-` streams are now chronik''s own indexes; move its events to another stream first', taken
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

ALTER TABLE events ADD COLUMN category text,
    ADD COLUMN category_number bigint CHECK (category_number > 0),
    ADD COLUMN type_number bigint CHECK (type_number > 0),
    ADD CHECK ((category IS NULL) = (category_number IS NULL));

-- The events already stored, numbered once. Events are immutable: the trigger is off for this
-- statement only (DDL is transactional: no other session ever sees it off).
ALTER TABLE events DISABLE TRIGGER events_are_immutable;
UPDATE events e SET category = n.category, category_number = n.category_number, type_number = n.type_number
FROM (
    SELECT position, c.category,
        CASE WHEN c.category IS NOT NULL THEN row_number() OVER (PARTITION BY c.category ORDER BY position) END
            AS category_number,
        row_number() OVER (PARTITION BY event_type ORDER BY position) AS type_number
    FROM events
    CROSS JOIN LATERAL (
        SELECT CASE WHEN strpos(stream_uuid, '-') > 1 THEN split_part(stream_uuid, '-', 1) END AS category) c
) n
WHERE e.position = n.position;
ALTER TABLE events ENABLE TRIGGER events_are_immutable;
ALTER TABLE events ALTER COLUMN type_number SET NOT NULL;

CREATE UNIQUE INDEX events_by_category ON events (category, category_number) WHERE category IS NOT NULL;
CREATE UNIQUE INDEX events_by_type ON events (event_type, type_number);

INSERT INTO streams (stream_uuid, stream_version)
SELECT '$ce-' || category, max(category_number) FROM events WHERE category IS NOT NULL GROUP BY category;
INSERT INTO streams (stream_uuid, stream_version)
SELECT '$et-' || event_type, max(type_number) FROM events GROUP BY event_type;
