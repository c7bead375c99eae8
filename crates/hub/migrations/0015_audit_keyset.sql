-- The console's audit search pages newest first by (time, device_id, seq): one index
-- serves the order and the cursor, and the common filters keep their time order.
CREATE INDEX records_time_key ON records (time, device_id, seq);
DROP INDEX records_time;
CREATE INDEX records_user_time ON records (user_name, time);
CREATE INDEX records_tool_time ON records (tool, time);
