-- The W3C trace id of the request's `_meta.traceparent` (32 lower-case hex digits), so a
-- SIEM can join the record with the client's and the server's traces. Hashed only when
-- set (see chain.rs): records from before this migration keep their hashes.
ALTER TABLE records ADD COLUMN trace_id TEXT;
