-- chronik store, version 2: the writer's one-statement fast path.
--
-- A writer that remembers the `$all` head and its streams' versions appends with ONE
-- autocommitted statement that compare-and-sets them (see storage/postgres/append.rs).
-- `revision` is a fencing token on the `$all` row: the statement only applies while it still
-- holds the value the writer remembers, and a caller that lost the writer's reply bumps it
-- before looking for its events, so a statement still in flight can no longer commit after
-- the caller concluded it did not.
ALTER TABLE streams ADD COLUMN revision bigint NOT NULL DEFAULT 0;

-- Aborts the statement that calls it (and with it every change the statement made) when the
-- state it was planned on has changed. SQLSTATE CH001 tells the writer to take the slow path.
CREATE FUNCTION batch_check(ok boolean) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION 'chronik: the batch was planned on state that has changed' USING ERRCODE = 'CH001';
    END IF;
    RETURN true;
END
$$;
