-- 0007: one admission stage for every door. Policy (blacklist, flood limit, body limits, single-SMS
-- splitting, duplicates) is applied to every claimed message, so these columns record what it decided.

ALTER TABLE engine_outbound
    -- 'message': an application's MT (any door); 'reply': an answer to an MO (obeys every rule);
    -- 'compliance': the engine's own answer to STOP/HELP, which reaches a blacklisted phone (see the trigger).
    ADD COLUMN kind    text NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'reply', 'compliance')),
    -- A single-SMS carrier's `(i/n) ` parts 2..n point at part 1 (the message the caller got the id of).
    ADD COLUMN part_of bigint REFERENCES engine_outbound (id) ON DELETE CASCADE,
    -- Why the engine refused a message (blacklisted, flood_limit, body_too_long, …): sent in its delivery report.
    ADD COLUMN reason  text;

CREATE INDEX engine_outbound_part_of ON engine_outbound (part_of) WHERE part_of IS NOT NULL;

-- Only engine code may write compliance messages (it sets engine.compliance for its transaction); a plain
-- INSERT or UPDATE from an application cannot make a message bypass the blacklist.
CREATE FUNCTION engine_guard_compliance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('engine.compliance', true), '') <> 'on' THEN
        RAISE EXCEPTION 'engine_outbound.kind = ''compliance'' is reserved for the engine''s own STOP/HELP answers'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER engine_outbound_compliance BEFORE INSERT OR UPDATE OF kind ON engine_outbound
    FOR EACH ROW WHEN (NEW.kind = 'compliance') EXECUTE FUNCTION engine_guard_compliance();

-- engine_submit() gains nothing: every door is checked when the message is claimed.
