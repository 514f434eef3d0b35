-- 0014: message lifetime, quiet hours and retention per application; recipients' time zones; the indexes of the
-- expiry sweep; engine_submit() takes type, category, valid_for and expires_at.

ALTER TABLE engine_app
    -- A default lifetime: a message with no expiry of its own may not be sent later than this after it was due
    -- (applied by admission, so no door needs to know it). NULL: messages live until sent.
    ADD COLUMN valid_for   interval CHECK (valid_for > interval '0' AND valid_for <= interval '365 days'),
    -- Final messages and delivered callback events older than this are purged (`engine purge`, and the worker).
    ADD COLUMN retention   interval NOT NULL DEFAULT interval '18 months' CHECK (retention >= interval '1 day'),
    -- Marketing messages wait for the recipient's local window: the law's (engine/policy/quiet_hours.toml),
    -- narrowed by the app's own [quiet_start, quiet_end).
    ADD COLUMN quiet_hours boolean NOT NULL DEFAULT true,
    ADD COLUMN quiet_start time NOT NULL DEFAULT '08:00',
    ADD COLUMN quiet_end   time NOT NULL DEFAULT '21:00',
    ADD CONSTRAINT engine_app_quiet_window CHECK (quiet_start < quiet_end);

-- A recipient's time zone, as the application knows it (set_time_zone, `engine contact zone`); without one the
-- number's own zone (its area code) is used.
CREATE TABLE engine_contact_zone (
    app_id     bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone      text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    time_zone  text NOT NULL CHECK (char_length(time_zone) BETWEEN 1 AND 64),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, phone)
);

-- The expiry sweep: queued messages past their own expiry …
CREATE INDEX engine_outbound_queued_expiry ON engine_outbound (expires_at)
    WHERE state = 'queued' AND expires_at IS NOT NULL;
-- … and, per app with a default lifetime, those queued longer than it since they were due.
CREATE INDEX engine_outbound_queued_since ON engine_outbound (app_id, (coalesce(send_at, created_at)))
    WHERE state = 'queued' AND expires_at IS NULL AND kind <> 'compliance';

-- The SQL door gains the notification fields. The old signature is dropped first: with both, a call with the
-- first arguments only would match two functions. Calls written for the old one work unchanged.
DROP FUNCTION engine_submit(text, text, text, text, timestamptz);

-- Submit one message from any service that can reach Postgres. Returns the new message id.
-- app_name: the application's name; on: when to send (NULL = now); tag: conversation thread;
-- type: a free label (registration, reminder, …); category: 'transactional' (default) or 'marketing';
-- valid_for: how long after it is due it may still be sent; expires_at: when it may no longer be (the earlier
-- of the two wins). Named arguments read best: engine_submit('lib', '+13472643707', 'Hi', type => 'reminder').
CREATE FUNCTION engine_submit(app_name text, recipient text, body text,
                              tag text DEFAULT NULL, "on" timestamptz DEFAULT NULL,
                              type text DEFAULT NULL, category text DEFAULT 'transactional',
                              valid_for interval DEFAULT NULL, expires_at timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_app    bigint;
    v_to     text;
    v_id     bigint;
    v_due    timestamptz := coalesce("on", now());
    v_expiry timestamptz := expires_at;
BEGIN
    SELECT id INTO v_app FROM engine_app WHERE name = app_name;
    IF v_app IS NULL THEN
        RAISE EXCEPTION 'engine_submit: unknown application %', app_name USING ERRCODE = 'no_data_found';
    END IF;
    v_to := engine_e164(recipient);
    IF v_to IS NULL THEN
        RAISE EXCEPTION 'engine_submit: invalid phone number %', recipient USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF body IS NULL THEN
        RAISE EXCEPTION 'engine_submit: body must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF type IS NOT NULL AND char_length(btrim(type)) NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'engine_submit: type must be 1-64 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF category IS NULL OR category NOT IN ('transactional', 'marketing') THEN
        RAISE EXCEPTION 'engine_submit: category must be transactional or marketing, not %', coalesce(category, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF valid_for IS NOT NULL THEN
        IF valid_for <= interval '0' OR valid_for > interval '365 days' THEN
            RAISE EXCEPTION 'engine_submit: valid_for must be longer than zero and at most 365 days, not %', valid_for
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_expiry := least(v_expiry, v_due + valid_for);  -- least() ignores a NULL
    END IF;
    IF expires_at IS NOT NULL AND expires_at <= now() THEN
        RAISE EXCEPTION 'engine_submit: expires_at % is already past', expires_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF expires_at IS NOT NULL AND expires_at <= v_due THEN
        RAISE EXCEPTION 'engine_submit: expires_at % is not after the time the message is due (%)', expires_at, v_due
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO engine_outbound (app_id, recipient, body, tag, send_at, due_at, type, category, expires_at)
    VALUES (v_app, v_to, body, tag, "on", v_due, btrim(type), category, v_expiry)
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;
