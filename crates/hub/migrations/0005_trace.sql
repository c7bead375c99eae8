-- The W3C trace id of the request behind a record (32 lower-case hex digits), as the
-- device's journal stores and hashes it; NULL for records without one and for records
-- from devices older than the column. Indexed: a SIEM or an investigator looks records
-- up by the trace they belong to (`GET /v1/audit?trace_id=`).
ALTER TABLE records ADD COLUMN trace_id TEXT;
CREATE INDEX records_trace_id ON records (trace_id);
