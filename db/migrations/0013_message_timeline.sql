-- 0013: the tracking list (GET /api/messages, engine messages list) and each message's status timeline.

-- Every state change of a message with its time, and each carrier status callback (also those that changed
-- nothing: a lower-ranked status arriving late). The message's creation is its own created_at. Internal moves
-- between 'queued' and 'claimed' (claims, deferrals, releases) are not recorded.
-- Its rows go with their message (the delete trigger below). Not a foreign key: that would check every step
-- written, a lookup per row on the send path, and a late callback noted while a purge deletes its message would
-- fail the whole status batch.
CREATE TABLE engine_message_event (
    message_id      bigint NOT NULL,        -- engine_outbound.id
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    state           text NOT NULL,
    status          smallint NOT NULL,
    provider_status text,                   -- what the carrier said (its answer to the send, or a callback)
    error_code      integer,                -- set or changed by this step
    reason          text,                   -- why the engine refused it, set by this step
    sender          text,                   -- the DID, on the step that gave it one ('sending')
    applied         boolean NOT NULL DEFAULT true  -- false: a carrier callback that changed nothing
);
CREATE INDEX engine_message_event_message ON engine_message_event (message_id, at);

-- One INSERT … SELECT per UPDATE statement (never a call per row), from the statement's transition tables.
-- PL/pgSQL keeps the plan it made for the first call, sized for that call's transition tables: a nested loop over
-- one row would pair old and new rows in O(n²) when a statement updates thousands (a heartbeat over 5,000 claimed
-- messages took 9 s). Without nested loops they are hashed: O(n) whatever the size.
CREATE FUNCTION engine_outbound_timeline() RETURNS trigger LANGUAGE plpgsql SET enable_nestloop = off AS $$
BEGIN
    INSERT INTO engine_message_event (message_id, at, state, status, provider_status, error_code, reason, sender)
    SELECT n.id, clock_timestamp(), n.state, n.status,
           CASE WHEN n.provider_status IS DISTINCT FROM o.provider_status THEN n.provider_status END,
           CASE WHEN n.error_code IS DISTINCT FROM o.error_code THEN n.error_code END,
           CASE WHEN n.reason IS DISTINCT FROM o.reason THEN n.reason END,
           CASE WHEN n.sender IS DISTINCT FROM o.sender THEN n.sender END
    FROM engine_timeline_new n JOIN engine_timeline_old o ON o.id = n.id
    WHERE (n.state <> o.state OR n.status <> o.status OR n.provider_status IS DISTINCT FROM o.provider_status
           OR n.error_code IS DISTINCT FROM o.error_code)
      AND NOT (n.state IN ('queued', 'claimed') AND o.state IN ('queued', 'claimed'));
    RETURN NULL;
END $$;

CREATE TRIGGER engine_outbound_timeline AFTER UPDATE ON engine_outbound
    REFERENCING OLD TABLE AS engine_timeline_old NEW TABLE AS engine_timeline_new
    FOR EACH STATEMENT EXECUTE FUNCTION engine_outbound_timeline();

-- Deleted messages (a purge, an application deleted, parts going with their first part) take their timelines
-- along: one DELETE per statement.
CREATE FUNCTION engine_outbound_timeline_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE engine_message_event;
    ELSE
        -- By the index, however many went (a join could be planned as a scan of every timeline).
        DELETE FROM engine_message_event WHERE message_id = ANY (ARRAY(SELECT id FROM engine_timeline_gone));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER engine_outbound_timeline_gone AFTER DELETE ON engine_outbound
    REFERENCING OLD TABLE AS engine_timeline_gone
    FOR EACH STATEMENT EXECUTE FUNCTION engine_outbound_timeline_gone();
CREATE TRIGGER engine_outbound_timeline_truncated AFTER TRUNCATE ON engine_outbound
    FOR EACH STATEMENT EXECUTE FUNCTION engine_outbound_timeline_gone();

-- The tracking list: newest first by (created_at, id), keyset-paged, per application. A filter of its own gets
-- an index only where scanning the app's history for it would be slow (a rare value) and the rows are few
-- (partial: a message without a tag or type costs these indexes nothing). A phone is served by
-- engine_outbound_dedup (recipient, app_id, created_at).
-- "id > 0" holds for every row (ids come from a sequence starting at 1): only a statement that says so, the list's,
-- can use this index. Without it, admission's duplicate-window lookup (app, recipient, window, p.id < m.id) took it
-- over engine_outbound_dedup whenever the table had no statistics yet (its four conditions looked narrower than
-- dedup's three), reading the app's whole window for every claimed message: Postgres CPU per message 400 -> 2,600 us
-- in a benchmark round.
CREATE INDEX engine_outbound_app_created ON engine_outbound (app_id, created_at, id) WHERE id > 0;
-- A job's messages: 0011's (job_id, state) extended by the list's order. Its prefix still counts a job by state from
-- the index alone and finds its open messages by state (job_status, finishing jobs); per state the rows come in
-- the list's order, so a job's page merges its states' ranges (a Merge Append) instead of reading and sorting
-- every message of the job, or scanning the app's newer history for them.
DROP INDEX engine_outbound_job;
CREATE INDEX engine_outbound_job ON engine_outbound (job_id, state, created_at, id) WHERE job_id IS NOT NULL;
CREATE INDEX engine_outbound_app_failed ON engine_outbound (app_id, created_at, id)
    WHERE state IN ('failed', 'undelivered', 'suppressed', 'canceled', 'expired');
CREATE INDEX engine_outbound_app_tag ON engine_outbound (app_id, tag, created_at, id) WHERE tag IS NOT NULL;
CREATE INDEX engine_outbound_app_type ON engine_outbound (app_id, type, created_at, id) WHERE type IS NOT NULL;
