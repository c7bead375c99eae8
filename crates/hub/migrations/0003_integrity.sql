-- Who a device answers for: the person IT made the enrollment token for, or else the
-- account its first record names. Records are stored with this identity, never with what
-- a record claims. `local_user` and `local_device` are the account and device id the
-- device's records name, fixed by its first record: a record naming others is flagged.
ALTER TABLE enrollment_tokens ADD COLUMN user_name TEXT;
ALTER TABLE devices ADD COLUMN user_name TEXT;
ALTER TABLE devices ADD COLUMN local_user TEXT;
ALTER TABLE devices ADD COLUMN local_device TEXT;
-- Where the device's chain first stopped continuing what the hub acknowledged, with no
-- record missing in between (a held record was changed on the device): from then on the
-- hub signs no checkpoint for it, so its newest checkpoint stays the last good one.
ALTER TABLE devices ADD COLUMN diverged_seq BIGINT;
-- What a record claimed when it differed from its device's identity (an alert names it).
ALTER TABLE records ADD COLUMN claimed_user TEXT;
ALTER TABLE records ADD COLUMN claimed_device TEXT;

-- The chain heads the hub acknowledged, each signed with the hub's key (see the audit
-- crate's checkpoint.rs); the device keeps a copy of each.
CREATE TABLE checkpoints (
    device_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    time      TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
