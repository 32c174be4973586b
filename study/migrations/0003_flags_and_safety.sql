-- A rater's flag on a case (something is wrong with it) or skip (they will not rate it), each
-- with a reason; at most one of each per assignment. A skipped assignment leaves the queue.
CREATE TABLE case_flags (
    id         BIGINT PRIMARY KEY CHECK (id >= 1),
    assignment BIGINT NOT NULL REFERENCES assignments (id),
    study      VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL CHECK (kind IN ('flag', 'skip')),
    reason     VARCHAR NOT NULL CHECK (length(trim(reason)) > 0),
    created_at TIMESTAMP NOT NULL,
    actor      VARCHAR NOT NULL,
    UNIQUE (assignment, kind)
);

-- The coordinator's safety queue: a rating of severe harm raises an alert in the transaction
-- that stores it; the coordinator acknowledges it with a note.
CREATE TABLE safety_alerts (
    id              BIGINT PRIMARY KEY CHECK (id >= 1),
    study           VARCHAR NOT NULL,
    rating          BIGINT NOT NULL UNIQUE REFERENCES ratings (id),
    raised_at       TIMESTAMP NOT NULL,
    acknowledged_at TIMESTAMP,
    acknowledged_by VARCHAR,
    note            VARCHAR,
    CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
);
