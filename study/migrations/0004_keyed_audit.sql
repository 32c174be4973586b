-- Clinval schema, version 2: a keyed, anchored audit chain; digests of the rows events record;
-- the assignment seed sealed until unblinding.

-- Which events are keyed. Events from seq keyed_from on carry HMAC-SHA256 hashes under the key in
-- CLINVAL_AUDIT_KEY_FILE; earlier events (written before this migration) keep their plain SHA-256
-- hashes and are protected by the first keyed event's link to them. key_id names the key (a
-- fingerprint that reveals nothing of it), bound by the first keyed event.
CREATE TABLE audit_chain (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    keyed_from BIGINT NOT NULL CHECK (keyed_from >= 1),
    key_id     VARCHAR
);
INSERT INTO audit_chain SELECT 1, coalesce(max(seq), 0) + 1, NULL FROM audit_events;

-- HMAC of the head (seq and hash) under the key: moving the head back to an earlier event after
-- cutting the tail needs the key too.
ALTER TABLE audit_head ADD COLUMN mac VARCHAR;

-- A digest of each row an event stored (cases, arms, answers, assignments, presentations), so
-- that verify names the row that changed; the event records the digest over these digests.
CREATE TABLE stored_digests (
    study  VARCHAR NOT NULL,
    kind   VARCHAR NOT NULL,
    row_id VARCHAR NOT NULL,
    digest VARCHAR NOT NULL CHECK (length(digest) = 64),
    PRIMARY KEY (study, kind, row_id)
);

-- The assignment seed of a study, sealed at the lock: only its commitment (SHA-256 of seed and
-- salt) is shown before unblinding. sealed is the seed encrypted under the audit key.
CREATE TABLE sealed_seeds (
    study      VARCHAR PRIMARY KEY REFERENCES studies (id),
    salt       VARCHAR NOT NULL CHECK (length(salt) = 32),
    sealed     VARCHAR NOT NULL CHECK (length(sealed) = 16),
    commitment VARCHAR NOT NULL CHECK (length(commitment) = 64)
);
