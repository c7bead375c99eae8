-- Who answered a call that asked, as the device's journal stores and hashes it (issue
-- 19): `approver` (`self`, or the verified identity who answered a routed approval) and
-- `request_id` (that request's id here). NULL for records without them and from devices
-- older than the columns.
ALTER TABLE records ADD COLUMN approver TEXT;
ALTER TABLE records ADD COLUMN request_id TEXT;
CREATE INDEX records_approver ON records (approver);
