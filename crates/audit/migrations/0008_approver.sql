-- Who answered a call that asked (issue 19): `approver` is `self` for the person at this
-- computer, or the verified identity who answered a routed approval at the hub;
-- `request_id` is that request's id at the hub. One more group in the chain, hashed only
-- when a record sets either (see chain.rs): older records keep their hashes.
ALTER TABLE records ADD COLUMN approver TEXT;
ALTER TABLE records ADD COLUMN request_id TEXT;
