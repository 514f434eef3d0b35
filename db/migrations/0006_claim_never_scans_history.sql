-- The duplicate-window index led with app_id, so a claim's `app_id = ANY($apps)` could walk it, i.e. every
-- message the app ever sent, to find the few queued ones: PostgreSQL's generic plan for the prepared claim
-- (chosen after a few executions) did exactly that, turning each claim into a scan of the app's history.
-- Lookups by (recipient, app) serve the duplicate window and the flood limit equally well with recipient first,
-- and then nothing but the queued-only partial indexes can serve a claim.
DROP INDEX engine_outbound_dedup;
CREATE INDEX engine_outbound_dedup ON engine_outbound (recipient, app_id, created_at);
