-- Devices bound to a verified person (issue 18). A device enrolled by a person's sign-in,
-- or a token-enrolled device whose person signed in later, names them here; until then
-- its records are the OS account's, unverified. A revoked device's credential is refused.
ALTER TABLE devices ADD COLUMN person_email TEXT;
ALTER TABLE devices ADD COLUMN person_subject TEXT;
ALTER TABLE devices ADD COLUMN verified_at TEXT;
ALTER TABLE devices ADD COLUMN revoked_at TEXT;
ALTER TABLE devices ADD COLUMN revoked_why TEXT;
CREATE INDEX devices_person ON devices (person_email);

-- Enrollment by the device authorization grant (RFC 8628): the device asks, the person
-- signs in at the hub's page with the company's IdP and confirms what they see, the
-- device polls. The device code by its digest; the confirmation the page carries by its
-- digest, bound to the person who signed in. `bind_device`: an enrolled device (by its
-- credential) asking to be bound to its person.
CREATE TABLE device_authorizations (
    device_code_sha256 TEXT PRIMARY KEY,
    user_code          TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    os_user            TEXT,
    bind_device        TEXT,
    source             TEXT,
    return_to          TEXT,
    created_unix       BIGINT NOT NULL,
    expires_unix       BIGINT NOT NULL,
    interval_secs      BIGINT NOT NULL,
    last_poll_unix     BIGINT,
    status             TEXT NOT NULL,
    person_email       TEXT,
    person_subject     TEXT,
    person_name        TEXT,
    confirm_sha256     TEXT UNIQUE
);
CREATE INDEX device_authorizations_expires ON device_authorizations (expires_unix);

-- A sign-in started to confirm an enrollment (the user code it is for), not a staff one.
ALTER TABLE oidc_pending ADD COLUMN enroll_code TEXT;
CREATE INDEX oidc_pending_created ON oidc_pending (created_unix);
