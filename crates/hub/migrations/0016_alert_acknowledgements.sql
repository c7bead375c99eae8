-- An alert someone looked at: who acknowledged it, when and with what note (the same
-- line is in the admin log). An acknowledged alert stays; it is no longer open.
ALTER TABLE alerts ADD COLUMN acknowledged_at TEXT;
ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT;
ALTER TABLE alerts ADD COLUMN note TEXT;
