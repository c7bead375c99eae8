-- The hub's schema, the same for SQLite and PostgreSQL.
CREATE TABLE devices (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    credential_sha256 TEXT NOT NULL UNIQUE,
    enrolled_at       TEXT NOT NULL,
    last_seq          BIGINT,
    last_hash         TEXT,
    last_seen         TEXT
);

-- Single-use enrollment tokens, kept as digests.
CREATE TABLE enrollment_tokens (
    token_sha256 TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_by      TEXT
);

-- Every record a device sent, once (idempotent by id), with its outcome when known.
CREATE TABLE records (
    id             TEXT PRIMARY KEY,
    device_id      TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    time           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    user_name      TEXT NOT NULL,
    device         TEXT NOT NULL,
    client         TEXT,
    client_name    TEXT,
    client_version TEXT,
    session        TEXT,
    server         TEXT,
    tool           TEXT,
    method         TEXT,
    arguments      TEXT,
    decision       TEXT NOT NULL,
    rule           TEXT,
    reason         TEXT,
    approval       TEXT,
    policy_version TEXT,
    class          TEXT,
    label          TEXT,
    prev_hash      TEXT,
    hash           TEXT,
    outcome        TEXT,
    outcome_time   TEXT,
    duration_ms    DOUBLE PRECISION,
    detail         TEXT,
    outcome_hash   TEXT,
    received_at    TEXT NOT NULL
);
CREATE INDEX records_device_seq ON records (device_id, seq);
CREATE INDEX records_time ON records (time);

-- What the hub flagged: gaps and broken chains, records whose hash does not hold.
CREATE TABLE alerts (
    id        TEXT PRIMARY KEY,
    time      TEXT NOT NULL,
    device_id TEXT,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL
);

-- Every admin action.
CREATE TABLE admin_log (
    id     TEXT PRIMARY KEY,
    time   TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
