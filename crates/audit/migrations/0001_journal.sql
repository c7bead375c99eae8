-- One row per decision (a tool call or a rejected request). Rows are only ever appended.
CREATE TABLE records (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    time           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    user           TEXT NOT NULL,
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
    policy_version TEXT
);

-- What became of a decided call: appended once the call finished (or was refused).
CREATE TABLE outcomes (
    record_id   TEXT PRIMARY KEY REFERENCES records(id),
    time        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    duration_ms REAL,
    detail      TEXT
) WITHOUT ROWID;
