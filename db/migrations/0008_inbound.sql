-- 0008: the engine listens. MOs are stored durably by the webhook before it answers, then handled in order per
-- phone by workers (opt-out, opt-in, help, welcome, routing); every opt-out and opt-in is recorded for good.

-- The carrier account answers STOP itself (Twilio Advanced Opt-Out): its confirmation is the one, ours is not sent.
ALTER TABLE engine_provider ADD COLUMN carrier_handles_optout boolean NOT NULL DEFAULT false;

CREATE TABLE engine_inbound (
    id                bigserial PRIMARY KEY,
    provider_id       bigint REFERENCES engine_provider (id) ON DELETE SET NULL,
    message_sid       text NOT NULL,
    idempotency_token text,                       -- I-Twilio-Idempotency-Token, when the carrier sent one
    phone             text NOT NULL,              -- From
    to_number         text NOT NULL,              -- To: one of our DIDs
    body              text NOT NULL,
    num_segments      smallint,
    params            jsonb NOT NULL,             -- the whole form as received
    state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'done')),
    claimed_by        text,
    lease_until       timestamptz,
    did_id            bigint REFERENCES engine_did (id) ON DELETE SET NULL,
    app_id            bigint REFERENCES engine_app (id) ON DELETE SET NULL,  -- the app it was handled for
    outcome           text,                       -- what the module chain did (opt_out, opt_in, help, routed, …)
    received_at       timestamptz NOT NULL DEFAULT now(),
    processed_at      timestamptz
);
-- A retried webhook (same MessageSid, or same idempotency token) is stored once.
CREATE UNIQUE INDEX engine_inbound_sid ON engine_inbound (message_sid);
CREATE UNIQUE INDEX engine_inbound_token ON engine_inbound (idempotency_token) WHERE idempotency_token IS NOT NULL;
-- Work to do, and the per-phone order it must be done in.
CREATE INDEX engine_inbound_open ON engine_inbound (id) WHERE state <> 'done';
CREATE INDEX engine_inbound_phone ON engine_inbound (phone, id);

CREATE FUNCTION engine_notify_inbound() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('engine_inbound', '');
    RETURN NULL;
END $$;

CREATE TRIGGER engine_inbound_notify AFTER INSERT ON engine_inbound
    FOR EACH STATEMENT EXECUTE FUNCTION engine_notify_inbound();

-- The opt-out / opt-in record: every change of consent, whoever made it, kept (unblacklisting deletes nothing here).
CREATE TABLE engine_consent_event (
    id          bigserial PRIMARY KEY,
    app_id      bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone       text NOT NULL,
    action      text NOT NULL CHECK (action IN ('opt_out', 'opt_in')),
    source      text NOT NULL CHECK (source IN ('keyword', 'carrier', 'api')),
    keyword     text,
    did_id      bigint REFERENCES engine_did (id) ON DELETE SET NULL,
    message_sid text,                             -- the MO (keyword) or the refused MT (carrier)
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX engine_consent_event_phone ON engine_consent_event (phone, app_id, created_at);

-- Phones that ever texted an app (the welcome text goes to a first-time texter once).
CREATE TABLE engine_contact (
    app_id     bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone      text NOT NULL,
    first_mo   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, phone)
);

-- Replies and confirmations go out from the DID the phone texted.
ALTER TABLE engine_outbound
    ADD COLUMN from_did    bigint REFERENCES engine_did (id) ON DELETE SET NULL,
    ADD COLUMN in_reply_to bigint REFERENCES engine_inbound (id) ON DELETE SET NULL;
