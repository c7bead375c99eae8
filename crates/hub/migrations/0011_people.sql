-- People and groups the company's IdP provisions over SCIM 2.0 (issue 18). `email` is the
-- person's primary email, lower case, as ID tokens name them; `active` 0 when the IdP
-- deactivated them. A deleted person keeps their row (deleted_at) for the audit trail.
CREATE TABLE people (
    id            TEXT PRIMARY KEY,
    external_id   TEXT,
    user_name     TEXT NOT NULL,
    email         TEXT NOT NULL,
    display_name  TEXT,
    active        BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    deleted_at    TEXT
);
CREATE INDEX people_email ON people (email);
CREATE INDEX people_user_name ON people (user_name);

-- `members`: JSON array of people ids.
CREATE TABLE scim_groups (
    id            TEXT PRIMARY KEY,
    external_id   TEXT,
    display_name  TEXT NOT NULL,
    members       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX scim_groups_name ON scim_groups (display_name);
