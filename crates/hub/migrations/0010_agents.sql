-- Enterprise agents (issue 18): service principals with an owner who answers for them.
-- `approvers`: JSON array of emails and `group:NAME`. An agent is suspended (its calls
-- denied) by an admin, or when its owner is deactivated, until resumed or transferred.
CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    owner_email   TEXT NOT NULL,
    approvers     TEXT NOT NULL,
    purpose       TEXT,
    review_date   TEXT,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    suspended_at  TEXT,
    suspended_why TEXT
);
CREATE INDEX agents_owner ON agents (owner_email);

-- An enrollment token made for an agent enrolls only that agent's host.
ALTER TABLE enrollment_tokens ADD COLUMN agent TEXT;
-- The agent a device acts as (its host enrolled with the agent's token).
ALTER TABLE devices ADD COLUMN agent TEXT;
