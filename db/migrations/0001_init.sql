-- 0001: applications, providers, SMSCs, DIDs, the outbound queue, tag stickiness.
-- All engine objects carry the engine_ prefix so the schema can share a database.

CREATE TABLE engine_app (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    api_key_hash    text,                 -- sha256 hex of the API key; the key itself is never stored
    callback_secret text NOT NULL DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
    gateway_url     text,
    split_mode      text NOT NULL DEFAULT 'character' CHECK (split_mode IN ('character', 'word', 'sentence')),
    smart_encoding  boolean NOT NULL DEFAULT false,
    dedup_window    interval NOT NULL DEFAULT interval '10 minutes',
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One carrier account. Credentials are never printed by the CLI nor logged.
CREATE TABLE engine_provider (
    id                    bigserial PRIMARY KEY,
    app_id                bigint REFERENCES engine_app (id) ON DELETE CASCADE,
    kind                  text NOT NULL CHECK (kind IN ('twilio', 'fake')),
    account_sid           text NOT NULL,
    auth_token            text NOT NULL,
    messaging_service_sid text,
    base_url              text,
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- A pool of DIDs; owned by one app (dedicated) or shared (app_id NULL).
CREATE TABLE engine_smsc (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    app_id      bigint REFERENCES engine_app (id) ON DELETE CASCADE,
    provider_id bigint REFERENCES engine_provider (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE engine_app ADD COLUMN smsc_id bigint REFERENCES engine_smsc (id) ON DELETE SET NULL;

CREATE TABLE engine_did (
    id            bigserial PRIMARY KEY,
    smsc_id       bigint NOT NULL REFERENCES engine_smsc (id) ON DELETE CASCADE,
    number        text NOT NULL UNIQUE CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    limit_per_min integer NOT NULL DEFAULT 60 CHECK (limit_per_min > 0),
    burst         integer NOT NULL DEFAULT 1 CHECK (burst > 0),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX engine_did_smsc ON engine_did (smsc_id);

-- The outbound queue. `state` is the engine's own life cycle; `status` is the Carousel code
-- (0 pending, 1 delivered, 2 failed, 4 queued at carrier) that applications see.
CREATE TABLE engine_outbound (
    id                  bigserial PRIMARY KEY,
    app_id              bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    recipient           text NOT NULL CHECK (recipient ~ '^\+[1-9][0-9]{6,14}$'),
    body                text NOT NULL,
    tag                 text,
    send_at             timestamptz,                       -- requested time (NULL = now)
    due_at              timestamptz NOT NULL DEFAULT now(),-- when the engine may next look at it
    state               text NOT NULL DEFAULT 'queued' CHECK (state IN (
                            'queued', 'claimed', 'sending', 'sent', 'delivered', 'undelivered',
                            'failed', 'suppressed', 'canceled', 'unknown')),
    status              smallint NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2, 4)),
    status_rank         smallint NOT NULL DEFAULT 0,       -- monotone: statuses never move backwards
    provider_status     text,
    error_code          integer,
    error_message       text,
    provider_message_id text,
    did_id              bigint REFERENCES engine_did (id) ON DELETE SET NULL,
    sender              text,                              -- the DID number actually used
    segments            smallint,
    encoding            text,
    attempts            smallint NOT NULL DEFAULT 0,
    defers              integer NOT NULL DEFAULT 0,        -- times left in the queue for its DID's turn
    claimed_by          text,
    lease_until         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sending_at          timestamptz,
    sent_at             timestamptz,
    final_at            timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Claim path: due queued rows in order. Partial so it stays small however long the history grows.
CREATE INDEX engine_outbound_due ON engine_outbound (due_at, id) WHERE state = 'queued';
-- Lease recovery: claimed/sending rows whose worker vanished.
CREATE INDEX engine_outbound_leased ON engine_outbound (lease_until) WHERE state IN ('claimed', 'sending');
-- Duplicate window lookups.
CREATE INDEX engine_outbound_dedup ON engine_outbound (app_id, recipient, created_at);
CREATE INDEX engine_outbound_provider_id ON engine_outbound (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
-- Pacing history after a restart: what each DID sent recently.
CREATE INDEX engine_outbound_sending_at ON engine_outbound (sending_at) WHERE sending_at IS NOT NULL;

-- Tag stickiness: (app, recipient, tag) -> DID until remove_tag.
CREATE TABLE engine_tag_did (
    app_id     bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    recipient  text NOT NULL,
    tag        text NOT NULL,
    did_id     bigint NOT NULL REFERENCES engine_did (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, recipient, tag)
);

-- Wake idle workers once per inserting statement (not once per row).
CREATE FUNCTION engine_notify_outbound() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('engine_outbound', '');
    RETURN NULL;
END $$;

CREATE TRIGGER engine_outbound_notify AFTER INSERT ON engine_outbound
    FOR EACH STATEMENT EXECUTE FUNCTION engine_notify_outbound();

-- A plain INSERT that gives only send_at must not go out early: due_at follows send_at.
CREATE FUNCTION engine_outbound_due_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.send_at IS NOT NULL AND NEW.due_at < NEW.send_at THEN
        NEW.due_at := NEW.send_at;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER engine_outbound_due BEFORE INSERT ON engine_outbound
    FOR EACH ROW EXECUTE FUNCTION engine_outbound_due_default();

-- Normalise a North American number written liberally (digits, punctuation, optional +1) to E.164.
-- Returns NULL when it cannot. The Python API uses the phonenumbers library for the general case.
CREATE FUNCTION engine_e164(raw text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN raw ~ '^\+[1-9][0-9]{6,14}$' THEN raw
        WHEN length(d) = 10 AND d ~ '^[2-9]' THEN '+1' || d
        WHEN length(d) = 11 AND d ~ '^1[2-9]' THEN '+' || d
        WHEN length(d) = 10 AND d ~ '^555' THEN '+1' || d
        ELSE NULL
    END
    FROM (SELECT regexp_replace(coalesce(raw, ''), '[^0-9]', '', 'g') AS d) AS s
$$;

-- Submit one message from any service that can reach Postgres. Returns the new message id.
-- app_name: the application's name; on: when to send (NULL = now); tag: conversation thread.
CREATE FUNCTION engine_submit(app_name text, recipient text, body text,
                              tag text DEFAULT NULL, "on" timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_app bigint;
    v_to  text;
    v_id  bigint;
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
    INSERT INTO engine_outbound (app_id, recipient, body, tag, send_at, due_at)
    VALUES (v_app, v_to, body, tag, "on", coalesce("on", now()))
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;
