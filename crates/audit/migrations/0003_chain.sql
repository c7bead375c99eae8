-- The hash chain (see chain.rs): each record carries the previous record's hash and its
-- own; each outcome its own, bound to its record's. Rows from before this migration
-- have none and are reported as unchained by verification.
ALTER TABLE records ADD COLUMN prev_hash TEXT;
ALTER TABLE records ADD COLUMN hash TEXT;
ALTER TABLE outcomes ADD COLUMN hash TEXT;
