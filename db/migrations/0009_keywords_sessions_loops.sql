-- 0009: routing by keyword and session, subscriptions (with double opt-in), and auto-reply-loop detection.

ALTER TABLE engine_app
    ADD COLUMN session_idle_seconds  integer NOT NULL DEFAULT 86400 CHECK (session_idle_seconds > 0),
    ADD COLUMN loop_max_replies      integer NOT NULL DEFAULT 10 CHECK (loop_max_replies > 0),
    ADD COLUMN loop_window_seconds   integer NOT NULL DEFAULT 60 CHECK (loop_window_seconds > 0),
    ADD COLUMN loop_max_repeats      integer NOT NULL DEFAULT 5 CHECK (loop_max_repeats >= 2),
    ADD COLUMN loop_cooldown_seconds integer NOT NULL DEFAULT 3600,
    ADD CONSTRAINT engine_app_loop_cooldown CHECK (loop_cooldown_seconds >= loop_window_seconds);

ALTER TABLE engine_keyword
    ADD COLUMN double_opt_in boolean NOT NULL DEFAULT false,  -- subscribe only after the phone replies YES
    ADD COLUMN start_session boolean NOT NULL DEFAULT true,   -- false: Carousel's "don't start session"
    ADD COLUMN auto_response text;                            -- sent back on a match

-- Tags a phone is subscribed to, per app ('' = subscribed without a tag).
CREATE TABLE engine_subscription (
    app_id     bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone      text NOT NULL,
    tag        text NOT NULL DEFAULT '',
    source     text NOT NULL CHECK (source IN ('keyword', 'confirmation', 'web', 'api')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, phone, tag)
);
CREATE INDEX engine_subscription_tag ON engine_subscription (app_id, tag);

-- A double opt-in waiting for the phone's YES (24 h).
CREATE TABLE engine_pending_optin (
    app_id     bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone      text NOT NULL,
    keyword    text NOT NULL,
    tags       text[] NOT NULL DEFAULT '{}',
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (app_id, phone)
);

-- Auto-reply-loop detection per (phone, app): the pure state machine's state (engine/inbound/loops.py).
CREATE TABLE engine_loop_state (
    app_id         bigint NOT NULL REFERENCES engine_app (id) ON DELETE CASCADE,
    phone          text NOT NULL,
    reply_times    float8[] NOT NULL DEFAULT '{}',
    last_body      bigint,
    last_mo_at     float8,
    repeats        integer NOT NULL DEFAULT 0,
    cooldown_until float8,
    optout_sent    boolean NOT NULL DEFAULT false,
    help_sent      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (app_id, phone)
);
