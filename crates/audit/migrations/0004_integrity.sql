-- Records from before the chain (migration 0003) carry no hash. Only those may: how many
-- there were and the last one's place are fixed here, once, so a hashless record inserted
-- later (before the first record, or anywhere) is refused by verification.
CREATE TABLE chain_legacy (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    records  INTEGER NOT NULL,
    last_seq INTEGER
);
INSERT INTO chain_legacy (id, records, last_seq) SELECT 1, count(*), max(seq) FROM records WHERE hash IS NULL;

-- The hub's signed word that it holds this device's chain up to a record (see checkpoint.rs).
CREATE TABLE IF NOT EXISTS checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT NOT NULL,
    device    TEXT NOT NULL,
    time      TEXT NOT NULL,
    signature TEXT NOT NULL
);
