-- The tool's class (read, write, sensitive, destructive) and data label at decision time.
ALTER TABLE records ADD COLUMN class TEXT;
ALTER TABLE records ADD COLUMN label TEXT;
