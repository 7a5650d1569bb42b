-- chronik store, version 3: named subscriptions.
--
-- One row per persistent named subscription. `last_seen` is its checkpoint: the event number
-- (stream version, or global position for `$all`) up to which every event was acked. Only the
-- node that holds the subscription's advisory lock writes it, and it writes it on the very
-- connection that holds the lock, so a node that lost its lock cannot move the checkpoint.
CREATE TABLE subscriptions (
    subscription_id   integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_uuid       text        NOT NULL,
    subscription_name text        NOT NULL,
    last_seen         bigint      NOT NULL DEFAULT 0 CHECK (last_seen >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_uuid, subscription_name)
);
