-- 0003: several workers on one database. Each DID is leased to one worker at a time, so every
-- DID's pacing lives in exactly one process; workers announce themselves so the pool can be
-- shared fairly and rebalanced when one joins or dies.

CREATE TABLE engine_worker (
    id           text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE engine_did_lease (
    did_id      bigint PRIMARY KEY REFERENCES engine_did (id) ON DELETE CASCADE,
    worker_id   text NOT NULL,
    lease_until timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX engine_did_lease_worker ON engine_did_lease (worker_id);

-- Which worker made the (last) provider request for a message: for operators and the system tests.
ALTER TABLE engine_outbound ADD COLUMN sent_by text;
