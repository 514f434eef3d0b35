-- 0011: notification jobs, message type and category, lifetime, resends, and the claim's priority classes.

-- A job groups the messages of one bulk send (a CSV + template, an API send_job, a send_messages call).
-- 'running': its queued messages are claimed; 'paused': they wait (due_at = infinity until resumed);
-- 'canceled': its queued messages became 'canceled'; 'done': every message is final.
CREATE TABLE engine_job (
    id          bigserial PRIMARY KEY,
    app_id      bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    source      text NOT NULL CHECK (source IN ('csv', 'api', 'send_messages')),
    name        text,                                  -- the CSV's file name, or a label
    template    text,
    type        text CHECK (char_length(type) BETWEEN 1 AND 64),
    category    text NOT NULL DEFAULT 'transactional' CHECK (category IN ('transactional', 'marketing')),
    tag         text,
    send_at     timestamptz,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'paused', 'canceled', 'done')),
    total       integer NOT NULL DEFAULT 0 CHECK (total >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX engine_job_app ON engine_job (app_id, id);
-- The claim walks the running jobs of the apps it serves: keep them in a small index.
CREATE INDEX engine_job_running ON engine_job (app_id, id) WHERE state = 'running';

ALTER TABLE engine_outbound DROP CONSTRAINT engine_outbound_state_check;
ALTER TABLE engine_outbound ADD CONSTRAINT engine_outbound_state_check CHECK (state IN (
    'queued', 'claimed', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'suppressed', 'canceled',
    'unknown', 'expired'));

ALTER TABLE engine_outbound
    ADD COLUMN job_id      bigint REFERENCES engine_job (id) ON DELETE SET NULL,
    -- A free label (registration, reminder, waitlist, cancellation, …), stored and filterable on every door.
    ADD COLUMN type        text CHECK (char_length(type) BETWEEN 1 AND 64),
    -- 'marketing' goes only to subscribers, inside the recipient's local quiet hours.
    ADD COLUMN category    text NOT NULL DEFAULT 'transactional' CHECK (category IN ('transactional', 'marketing')),
    -- Never sent after this; the rest of its validity goes to the carrier (Twilio's ValidityPeriod).
    ADD COLUMN expires_at  timestamptz,
    -- A resend (a person asked for it) points at the message it repeats.
    ADD COLUMN resent_from bigint REFERENCES engine_outbound (id) ON DELETE SET NULL,
    -- The claim's class, derived so that no door can get it wrong: 0 the engine's answers and app replies to
    -- an MO, 1 a single transactional message, 2 bulk (a job's messages) and marketing.
    ADD COLUMN priority    smallint GENERATED ALWAYS AS (
        CASE WHEN kind <> 'message' THEN 0
             WHEN category = 'marketing' OR job_id IS NOT NULL THEN 2
             ELSE 1 END) STORED;

-- The claim: per app and class (messages outside jobs), and per job, the due rows in order. The old global due
-- index goes: a cached generic plan could walk it past every other flow's rows (a large job's) to find a few.
DROP INDEX engine_outbound_due;
CREATE INDEX engine_outbound_due_app ON engine_outbound (app_id, priority, due_at, id)
    WHERE state = 'queued' AND job_id IS NULL;
CREATE INDEX engine_outbound_due_job ON engine_outbound (job_id, due_at, id)
    WHERE state = 'queued' AND job_id IS NOT NULL;
-- A job's progress (counts by state) and the tracking list's job filter.
CREATE INDEX engine_outbound_job ON engine_outbound (job_id, state) WHERE job_id IS NOT NULL;
CREATE INDEX engine_outbound_resent_from ON engine_outbound (resent_from) WHERE resent_from IS NOT NULL;
