-- Published policy bundles: the signed document and its minisign signature, by version.
CREATE TABLE policies (
    version      BIGINT PRIMARY KEY,
    document     TEXT NOT NULL,
    signature    TEXT NOT NULL,
    published_at TEXT NOT NULL
);
