-- 0015: the operator console. Operator accounts and their server-side sessions, the operator's name and note on
-- consent changes made by hand, and a check value proving which secret key sealed the carrier tokens.

-- People who run the engine (`engine operator add NAME`). The password is kept only as an argon2id hash.
CREATE TABLE engine_operator (
    id                  bigserial PRIMARY KEY,
    name                text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$'),
    password_hash       text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz
);

-- A logged-in browser. The cookie carries a random token; only its sha256 is stored, so a copy of this table
-- cannot be replayed. A session ends at expires_at, or earlier when idle past its idle limit (seen_at).
CREATE TABLE engine_console_session (
    id_hash     text PRIMARY KEY,
    operator_id bigint NOT NULL REFERENCES engine_operator (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX engine_console_session_operator ON engine_console_session (operator_id);
CREATE INDEX engine_console_session_expires ON engine_console_session (expires_at);

-- Who changed a phone's consent by hand, and why (the console's blacklist add/remove).
ALTER TABLE engine_consent_event
    ADD COLUMN operator text,
    ADD COLUMN note     text CHECK (char_length(note) <= 500);
ALTER TABLE engine_blacklist ADD COLUMN note text CHECK (char_length(note) <= 500);

-- The console's blacklist: searched by phone (or its first digits) across apps, and listed newest first.
CREATE INDEX engine_blacklist_phone ON engine_blacklist (phone text_pattern_ops);
CREATE INDEX engine_blacklist_recent ON engine_blacklist (created_at, app_id, phone);

-- A known value sealed with the secret key (ENGINE_SECRET_KEY or the key file): a process started with another
-- key finds it cannot open it and stops with a clear error instead of failing every send.
CREATE TABLE engine_secret_check (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    sealed text NOT NULL
);
