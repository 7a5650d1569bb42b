-- chronik store, version 4: retried and parked events of named subscriptions.
--
-- One row per event a subscription was told to retry (a nack, or a message timeout) and has not
-- acked since, or has parked. `retry_count` survives restarts, so an event that keeps failing
-- is parked after `max_retry_count` retries however often the node restarts. A parked event
-- (`parked_at` set) no longer holds the checkpoint back; `replay_requested` asks the owner to
-- deliver it again (`replay_parked`), and its row is deleted once it is acked or skipped.
-- Rows of an event that was retried and then acked are deleted when the checkpoint passes it.
-- Like checkpoints, these rows are written only on the connection holding the subscription's
-- lock.
CREATE TABLE subscription_nacks (
    subscription_id  integer     NOT NULL REFERENCES subscriptions (subscription_id) ON DELETE CASCADE,
    event_number     bigint      NOT NULL CHECK (event_number > 0),
    retry_count      integer     NOT NULL CHECK (retry_count >= 0),
    reason           text        NOT NULL,
    parked_at        timestamptz,
    replay_requested boolean     NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, event_number),
    CHECK (parked_at IS NOT NULL OR NOT replay_requested)
);
