-- chronik store, version 8: the members of the store's cluster, for gossip.
--
-- Each `chronik serve` process (or application serving the store) keeps a session of its own
-- while it is a member: its row names that session (`backend_pid`), and the session renews
-- `seen_at` every second. A member is alive while its session is connected and was seen
-- recently; the member whose session holds the cluster's advisory lock leads. A member that
-- leaves deletes its row; a crashed one's row is removed by the next member that beats.
CREATE TABLE cluster_members (
    member_id   uuid        PRIMARY KEY,
    address     text        NOT NULL,
    port        integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    backend_pid integer     NOT NULL,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
