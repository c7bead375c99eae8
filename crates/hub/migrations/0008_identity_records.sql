-- Who a record's `user` is, as the device's journal stores and hashes it: `user_verified`
-- (`true` or `false`: whether `user` is a verified email, or `agent:NAME` for an
-- enterprise agent, rather than the OS account), `os_user` (the OS account running the
-- gateway) and `owner` (an agent's accountable owner, an email). NULL for records without
-- them and for records from devices older than the columns.
ALTER TABLE records ADD COLUMN user_verified TEXT;
ALTER TABLE records ADD COLUMN os_user TEXT;
ALTER TABLE records ADD COLUMN owner TEXT;
