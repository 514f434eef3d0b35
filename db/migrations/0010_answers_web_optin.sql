-- 0010: the application's answer to incoming_message (a reply, closing the session, reprocessing), web opt-in by
-- verification code, messages to subscribers, and the operator's review of possible opt-outs.

-- The incoming_message event remembers its MO, so the gateway's answer can be handled as a reply to it.
ALTER TABLE engine_outbox ADD COLUMN inbound_id bigint REFERENCES engine_inbound (id) ON DELETE SET NULL;

ALTER TABLE engine_inbound
    ADD COLUMN depth            smallint NOT NULL DEFAULT 0,  -- 0: from the carrier; n: reprocessed n times
    ADD COLUMN possible_opt_out boolean NOT NULL DEFAULT false,
    ADD COLUMN reviewed_at      timestamptz;                  -- an operator looked at a possible opt-out
CREATE INDEX engine_inbound_review ON engine_inbound (id) WHERE possible_opt_out AND reviewed_at IS NULL;

-- What a gateway answered to an incoming_message (stored with the event's 'delivered' mark, once per event).
CREATE TABLE engine_app_answer (
    id            bigserial PRIMARY KEY,
    outbox_id     bigint NOT NULL UNIQUE,
    inbound_id    bigint NOT NULL REFERENCES engine_inbound (id) ON DELETE CASCADE,
    app_id        bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    body          text,
    close_session boolean NOT NULL DEFAULT false,
    reprocess     text,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz
);
CREATE INDEX engine_app_answer_pending ON engine_app_answer (id) WHERE state = 'pending';

CREATE TRIGGER engine_app_answer_notify AFTER INSERT ON engine_app_answer
    FOR EACH STATEMENT EXECUTE FUNCTION engine_notify_inbound();

ALTER TABLE engine_consent_event DROP CONSTRAINT engine_consent_event_source_check;
ALTER TABLE engine_consent_event ADD CONSTRAINT engine_consent_event_source_check
    CHECK (source IN ('keyword', 'carrier', 'api', 'web', 'operator'));

-- Web opt-in: a 6-digit code texted to the phone, valid 10 minutes, at most 5 wrong tries (stored hashed).
CREATE TABLE engine_optin_code (
    app_id     bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone      text NOT NULL,
    code_hash  text NOT NULL,
    tags       text[] NOT NULL DEFAULT '{}',
    tries      integer NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (app_id, phone)
);

-- Messages sent to an app's subscribers by tag (send_message tags=): cancel_subscription_messages cancels these.
ALTER TABLE engine_outbound ADD COLUMN to_subscribers boolean NOT NULL DEFAULT false;
