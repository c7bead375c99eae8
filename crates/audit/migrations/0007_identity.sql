-- Who the record's `user` is: `user_verified` (`true` or `false`) says whether it is a
-- verified identity (the email the person signed in with, or `agent:NAME` for an
-- enterprise agent) rather than the OS account; `os_user` is always the OS account running
-- the gateway; `owner` is an agent's accountable owner (an email), set only for agents.
-- One group in the chain, hashed only when a record sets any of them (see chain.rs):
-- records from before this migration keep their hashes.
ALTER TABLE records ADD COLUMN user_verified TEXT;
ALTER TABLE records ADD COLUMN os_user TEXT;
ALTER TABLE records ADD COLUMN owner TEXT;
