-- 0004: limits above the DID. An SMSC (a 10DLC campaign, say) may cap the whole pool in segments
-- per minute; a carrier account may cap segments per second (e.g. Twilio account MPS). NULL = none.
ALTER TABLE engine_smsc ADD COLUMN limit_per_min integer CHECK (limit_per_min IS NULL OR limit_per_min > 0);
ALTER TABLE engine_provider ADD COLUMN max_per_second integer CHECK (max_per_second IS NULL OR max_per_second > 0);
