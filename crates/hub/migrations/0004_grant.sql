-- The grant behind a record (the one its approval issued, with its length; or the one
-- that let it run), as the device's journal stores and hashes it. `grant_columns` is 1
-- for records a device sent with these columns (they alone say which grant is behind
-- it), 0 for records stored before them or sent by an older device, whose grant the
-- entitlements view still reads from the reason's text.
ALTER TABLE records ADD COLUMN grant_id TEXT;
ALTER TABLE records ADD COLUMN grant_length TEXT;
ALTER TABLE records ADD COLUMN grant_columns BIGINT NOT NULL DEFAULT 0;
