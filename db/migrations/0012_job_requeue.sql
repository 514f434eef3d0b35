-- 0012: a job's message that comes back to the queue follows its job. Deferred for its DID's turn, handed back
-- by a worker that stopped or lost the DID, recovered from a worker that vanished: if meanwhile the job was
-- paused the message waits with the others (due_at = infinity, until resume_job), if it was canceled it is
-- canceled as cancel_job cancels its queued messages. pause_job and cancel_job lock the job row (FOR UPDATE)
-- before they touch its queued messages, and this trigger reads the job under FOR KEY SHARE, so a message
-- requeued while a pause or cancel commits waits for it and sees the new state (none slips through).
CREATE FUNCTION engine_outbound_job_requeue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
BEGIN
    SELECT state INTO v_state FROM engine_job WHERE id = NEW.job_id FOR KEY SHARE;
    IF v_state = 'paused' THEN
        NEW.due_at := 'infinity';
    ELSIF v_state = 'canceled' THEN
        NEW.state := 'canceled';
        NEW.status := 2;
        NEW.status_rank := 100;
        NEW.final_at := now();
    END IF;
    RETURN NEW;
END $$;

-- Only rows coming back to 'queued' (not the job's own inserts, nor every status change on the send path).
CREATE TRIGGER engine_outbound_job_requeue BEFORE UPDATE OF state ON engine_outbound
    FOR EACH ROW WHEN (NEW.state = 'queued' AND OLD.state <> 'queued' AND NEW.job_id IS NOT NULL)
    EXECUTE FUNCTION engine_outbound_job_requeue();
