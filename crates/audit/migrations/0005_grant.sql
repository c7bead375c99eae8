-- The grant behind a call (the one its approval issued, or the one that let it run), so
-- readers need not parse the reason's text. Hashed only when set (see chain.rs): records
-- from before this migration keep their hashes. (`grant` is a reserved word in SQL.)
ALTER TABLE records ADD COLUMN grant_id TEXT;
ALTER TABLE records ADD COLUMN grant_length TEXT;
