-- API tokens for automation (issue 18): a role each, kept as digests, with an expiry
-- (RFC 3339 for people, Unix seconds for the check) and a revocation.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   TEXT,
    expires_unix BIGINT,
    revoked_at   TEXT
);

-- Who did each admin action (an API token by name and id, the break-glass token, the CLI).
ALTER TABLE admin_log ADD COLUMN actor TEXT;
