-- Routed approvals (issue 19): a call that policy routes to someone other than the person
-- at the laptop becomes a request here. `eligible`: JSON array of the emails that may
-- answer, resolved when the request was raised (the route's owner, person or group, the
-- asker left out under separation of duties). `nonce` binds an answer to what the
-- approver's device was shown; `args_hash` to the call's exact arguments. `state`:
-- pending, approved, denied, withdrawn, expired; the first valid answer wins.
CREATE TABLE approval_requests (
    id              TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    device_name     TEXT NOT NULL,
    requester       TEXT NOT NULL,
    requester_person TEXT,
    client          TEXT NOT NULL,
    server          TEXT NOT NULL,
    tool            TEXT NOT NULL,
    class           TEXT NOT NULL,
    arguments       TEXT NOT NULL,
    args_hash       TEXT NOT NULL,
    rule            TEXT,
    reason          TEXT NOT NULL,
    policy_version  TEXT NOT NULL,
    approver        TEXT NOT NULL,
    self_approval   BIGINT NOT NULL,
    eligible        TEXT NOT NULL,
    nonce           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    deadline_ms     BIGINT NOT NULL,
    state           TEXT NOT NULL,
    answered_by     TEXT,
    answered_device TEXT,
    answered_at     TEXT
);
CREATE INDEX approval_requests_state ON approval_requests (state, deadline_ms);
CREATE INDEX approval_requests_device ON approval_requests (device_id);
