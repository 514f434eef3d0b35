-- 0016: sender types, US A2P 10DLC brands and campaigns, Messaging Service senders, carrier feedback.

-- A brand (the company registered with The Campaign Registry) groups campaigns. T-Mobile caps what a brand sends
-- per carrier-day (midnight US Pacific to midnight), in segments: daily_cap (NULL: none). Marketing and bulk work
-- stop `reserve` segments before the cap, kept for transactional messages. A carrier's 30023 ("daily message cap
-- reached") holds the brand until capped_until (the next reset).
CREATE TABLE engine_brand (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    tier         text NOT NULL,
    daily_cap    integer CHECK (daily_cap IS NULL OR daily_cap > 0),
    reserve      integer NOT NULL DEFAULT 0 CHECK (reserve >= 0),
    capped_until timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT engine_brand_reserve_below_cap CHECK (daily_cap IS NULL OR reserve < daily_cap)
);

-- A 10DLC campaign groups DIDs (long codes) and has a throughput in segments per second for all of them
-- together. A carrier's 30022 ("rate limits exceeded") slows it down until slowed_until.
CREATE TABLE engine_campaign (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    brand_id     bigint NOT NULL REFERENCES engine_brand (id) ON DELETE RESTRICT,
    mps          numeric(8, 2) NOT NULL CHECK (mps > 0),
    slowed_until timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX engine_campaign_brand ON engine_campaign (brand_id);

-- Every sender has a type. Phone numbers stay E.164; a short code is digits (5-6 in the US); a sender ID is up to
-- 11 characters (never texted back); a Messaging Service row stands for a Twilio service's sender pool (its SID).
-- Python checks each type in detail (engine/policy/senders.py); this is the last word.
ALTER TABLE engine_did
    ADD COLUMN sender_type text NOT NULL DEFAULT 'long_code'
        CHECK (sender_type IN ('long_code', 'toll_free', 'short_code', 'alphanumeric', 'messaging_service')),
    ADD COLUMN country     text CHECK (country ~ '^[A-Z]{2}$'),
    ADD COLUMN campaign_id bigint REFERENCES engine_campaign (id) ON DELETE SET NULL;
ALTER TABLE engine_did DROP CONSTRAINT engine_did_number_check;
ALTER TABLE engine_did ADD CONSTRAINT engine_did_number_check CHECK (CASE sender_type
    WHEN 'short_code' THEN number ~ '^[1-9][0-9]{2,7}$' AND country IS NOT NULL
    WHEN 'alphanumeric' THEN number ~ '^[A-Za-z0-9 +_&-]{1,11}$' AND number ~ '[A-Za-z]' AND country IS NOT NULL
    WHEN 'messaging_service' THEN number ~ '^MG[0-9a-fA-F]{32}$'
    ELSE number ~ '^\+[1-9][0-9]{6,14}$'
END);
CREATE INDEX engine_did_campaign ON engine_did (campaign_id) WHERE campaign_id IS NOT NULL;

-- Hold an app's transactional messages too when its brand's daily cap is reached (default: they still go; the
-- cap counts every carrier's segments while T-Mobile counts only its own subscribers').
ALTER TABLE engine_app ADD COLUMN hold_transactional boolean NOT NULL DEFAULT false;

-- A message sent again after the carrier answered 30022/30023 remembers the sid of the refused attempt, so a late
-- status callback for that attempt cannot touch the new one.
ALTER TABLE engine_outbound ADD COLUMN retired_sid text;
