-- chronik store, version 7: the settings of named subscriptions.
--
-- `settings` holds a subscription's options (all but the functions, which cannot be stored) as
-- JSON text, written when the subscription is created and by `update_subscription`. Whoever
-- joins the subscription later, on any node or after a restart, runs with these settings rather
-- than its own. Readers tolerate keys they do not know (a newer version wrote them). NULL for a
-- subscription created before this version: the next node to take it fills in its own options.
ALTER TABLE subscriptions ADD COLUMN settings text;
