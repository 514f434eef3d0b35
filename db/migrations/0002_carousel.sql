-- 0002: what the Carousel-compatible API and the application callbacks need:
-- module texts and flood limits on applications, blacklist, sessions, keywords, and the
-- durable callback outbox.

ALTER TABLE engine_app
    ADD COLUMN help_text     text,
    ADD COLUMN welcome_text  text,
    ADD COLUMN optout_text   text,
    ADD COLUMN optin_text    text,
    ADD COLUMN nomatch_text  text,
    ADD COLUMN flood_limit   integer CHECK (flood_limit IS NULL OR flood_limit > 0),  -- messages per phone …
    ADD COLUMN flood_period  interval,                                                -- … per this period
    ADD COLUMN callback_concurrency integer NOT NULL DEFAULT 4 CHECK (callback_concurrency > 0);

-- Carriers that take single SMS only: bodies are split into "(i/n) " parts with the app's split mode,
-- each part its own message (own id, own delivery report). Twilio concatenates, so false there.
ALTER TABLE engine_provider ADD COLUMN single_sms boolean NOT NULL DEFAULT false;

CREATE UNIQUE INDEX engine_app_api_key ON engine_app (api_key_hash) WHERE api_key_hash IS NOT NULL;

-- Flood-limit counting: recent messages per (app, recipient).
-- (engine_outbound_dedup on (app_id, recipient, created_at) already serves it.)

-- Opted-out phones, per application.
CREATE TABLE engine_blacklist (
    app_id     bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone      text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    reason     text NOT NULL DEFAULT 'api',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, phone)
);

-- A (phone, app) link: MOs from the phone go to the app without a keyword.
CREATE TABLE engine_session (
    app_id     bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone      text NOT NULL,
    did_id     bigint REFERENCES engine_did (id) ON DELETE SET NULL,
    opened_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    PRIMARY KEY (app_id, phone)
);
CREATE INDEX engine_session_phone ON engine_session (phone);

-- Keywords are unique within an SMSC, case-insensitively. mode 0 = exact, 1 = starts with.
CREATE TABLE engine_keyword (
    id                  bigserial PRIMARY KEY,
    smsc_id             bigint NOT NULL REFERENCES engine_smsc (id) ON DELETE CASCADE,
    app_id              bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    keyword             text NOT NULL CHECK (keyword ~ '^[A-Za-z0-9][A-Za-z0-9 _-]{0,31}$'),
    mode                smallint NOT NULL DEFAULT 0 CHECK (mode IN (0, 1)),
    auto_subscribe      boolean NOT NULL DEFAULT false,
    auto_subscribe_tags text[] NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX engine_keyword_unique ON engine_keyword (smsc_id, upper(keyword));

-- The callback outbox: every event for an application is written in the same transaction as
-- the state change that caused it, then delivered (signed, retried, dead-lettered) by its own task.
CREATE TABLE engine_outbox (
    id              bigserial PRIMARY KEY,
    event_id        uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,  -- idempotency key sent with it
    app_id          bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    type            text NOT NULL CHECK (type IN (
                        'delivery_report', 'incoming_message', 'session_closed', 'phone_blacklisted',
                        'phone_unblacklisted', 'auto_reply_loop', 'no_unicode_support', 'invalid_characters')),
    payload         jsonb NOT NULL,                 -- the event's fields (strings), sent form-encoded
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    claimed_by      text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX engine_outbox_due ON engine_outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX engine_outbox_app_state ON engine_outbox (app_id, state);

CREATE FUNCTION engine_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('engine_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER engine_outbox_notify AFTER INSERT ON engine_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION engine_notify_outbox();

-- /metrics reads queue depth by state often: keep the open states in a small partial index.
CREATE INDEX engine_outbound_open ON engine_outbound (state)
    WHERE state IN ('queued', 'claimed', 'sending', 'sent', 'unknown');
