-- Staff sign-in with the company's IdP (issue 18). A sign-in in progress, for ten minutes
-- and used once (the state by its digest; the nonce and PKCE verifier are only of use
-- with the code the IdP gives the person's browser).
CREATE TABLE oidc_pending (
    state_sha256  TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_unix  BIGINT NOT NULL
);

-- A signed-in member of staff: the person the ID token named and the roles their groups
-- held then; the cookie's token by its digest.
CREATE TABLE staff_sessions (
    id           TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    email        TEXT NOT NULL,
    name         TEXT,
    subject      TEXT NOT NULL,
    roles        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_unix BIGINT NOT NULL,
    revoked_at   TEXT
);
