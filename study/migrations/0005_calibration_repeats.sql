-- Clinval schema, version 5: calibration rounds, repeats after a washout, and the time a case was
-- first shown.
--
-- An assignment now has a phase: 'calibration' (a gold case every rater does first; its ratings
-- are no study data), 'live' (the study's ratings) or 'repeat' (a live case shown again to the
-- same rater after the protocol's washout, for intra-rater reliability). A rater may so hold two
-- assignments of one case, which migration 1's UNIQUE (study, rater, case_id) forbids; DuckDB
-- cannot drop a constraint (ALTER TABLE ... DROP CONSTRAINT is not implemented in 2.0) nor rename
-- a table that others reference, so assignments is rebuilt with every table that references it,
-- directly or through ratings and presentations: presentations, ratings, current_ratings,
-- case_flags, rating_comments, safety_alerts. Ids, rows and every other constraint are kept as
-- migrations 1 and 3 made them.
--
-- attempt numbers a rater's calibration rounds (a coordinator may let a rater who failed try
-- again: the cases come back as new assignments of the next attempt); 1 for live and repeat.
-- presented_at: when the case was first shown to the rater (UTC), set once; time on task runs
-- from it to the submission, so a reload does not restart the clock.

CREATE TEMP TABLE v4_assignments AS SELECT * FROM assignments;
CREATE TEMP TABLE v4_presentations AS SELECT * FROM presentations;
CREATE TEMP TABLE v4_ratings AS SELECT * FROM ratings;
CREATE TEMP TABLE v4_current_ratings AS SELECT * FROM current_ratings;
CREATE TEMP TABLE v4_case_flags AS SELECT * FROM case_flags;
CREATE TEMP TABLE v4_rating_comments AS SELECT * FROM rating_comments;
CREATE TEMP TABLE v4_safety_alerts AS SELECT * FROM safety_alerts;

DROP TABLE safety_alerts;
DROP TABLE rating_comments;
DROP TABLE current_ratings;
DROP TABLE case_flags;
DROP TABLE ratings;
DROP TABLE presentations;
DROP TABLE assignments;

-- No index on done/status/presented_at: DuckDB refuses to UPDATE an indexed column of a row that
-- a foreign key references, and presentations and ratings reference assignments. For the same
-- reason there is no CHECK tying attempt to phase: with one, DuckDB 2.0 runs the done flag's
-- UPDATE as a delete and insert, which the foreign keys refuse (as it does for UPDATE ... RETURNING).
CREATE TABLE assignments (
    id           BIGINT PRIMARY KEY CHECK (id >= 1),
    study        VARCHAR NOT NULL,
    design_key   VARCHAR NOT NULL CHECK (length(design_key) > 0),  -- id given by the design
    rater        VARCHAR NOT NULL REFERENCES users (id),
    case_id      VARCHAR NOT NULL,
    seed         BIGINT NOT NULL,
    algorithm    VARCHAR NOT NULL CHECK (length(algorithm) > 0),
    status       VARCHAR NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'done', 'withdrawn')),
    done         BOOLEAN NOT NULL DEFAULT false,
    shown_order  INTEGER NOT NULL CHECK (shown_order >= 1),
    created_at   TIMESTAMP NOT NULL,
    done_at      TIMESTAMP,
    phase        VARCHAR NOT NULL DEFAULT 'live'
                 CHECK (phase IN ('calibration', 'live', 'repeat')),
    attempt      INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    presented_at TIMESTAMP,
    UNIQUE (study, design_key),
    UNIQUE (study, rater, case_id, phase, attempt),
    UNIQUE (study, rater, shown_order),
    FOREIGN KEY (study, case_id) REFERENCES cases (study, case_id),
    CHECK (done = (status = 'done')),
    CHECK (done = (done_at IS NOT NULL))
);

CREATE TABLE presentations (
    id         BIGINT PRIMARY KEY CHECK (id >= 1),
    assignment BIGINT NOT NULL REFERENCES assignments (id),
    study      VARCHAR NOT NULL,
    answer_id  VARCHAR NOT NULL,
    position   INTEGER NOT NULL CHECK (position >= 1),
    label      VARCHAR NOT NULL CHECK (length(trim(label)) > 0),
    UNIQUE (assignment, position),
    UNIQUE (assignment, label),
    UNIQUE (assignment, answer_id),
    FOREIGN KEY (study, answer_id) REFERENCES answers (study, answer_id)
);

CREATE TABLE ratings (
    id                 BIGINT PRIMARY KEY CHECK (id >= 1),
    assignment         BIGINT NOT NULL REFERENCES assignments (id),
    presentation       BIGINT REFERENCES presentations (id),  -- NULL: case-scope item
    slot               BIGINT NOT NULL,  -- presentation id, or 0 for a case-scope item
    instrument_key     VARCHAR NOT NULL,
    instrument_version VARCHAR NOT NULL,
    item_key           VARCHAR NOT NULL,
    value_num          DOUBLE,
    value_text         VARCHAR,
    revision           INTEGER NOT NULL CHECK (revision >= 1),
    status             VARCHAR NOT NULL CHECK (status IN ('draft', 'submitted', 'discarded')),
    seconds_on_task    DOUBLE CHECK (seconds_on_task >= 0),
    created_at         TIMESTAMP NOT NULL,
    submitted_at       TIMESTAMP,
    actor              VARCHAR NOT NULL,
    CHECK (slot = coalesce(presentation, 0)),
    CHECK ((status = 'submitted') = (submitted_at IS NOT NULL)),
    CHECK (status <> 'submitted' OR value_num IS NOT NULL OR value_text IS NOT NULL),
    CHECK (isfinite(value_num) OR value_num IS NULL),
    UNIQUE (assignment, slot, item_key, revision),
    FOREIGN KEY (instrument_key, instrument_version, item_key)
        REFERENCES items (instrument_key, instrument_version, item_key)
);

CREATE TABLE current_ratings (
    assignment BIGINT NOT NULL REFERENCES assignments (id),
    slot       BIGINT NOT NULL,
    item_key   VARCHAR NOT NULL,
    rating     BIGINT NOT NULL UNIQUE REFERENCES ratings (id),
    PRIMARY KEY (assignment, slot, item_key)
);

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

CREATE TABLE rating_comments (
    rating  BIGINT PRIMARY KEY REFERENCES ratings (id),
    comment VARCHAR NOT NULL
);

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

INSERT INTO assignments (id, study, design_key, rater, case_id, seed, algorithm, status, done,
                         shown_order, created_at, done_at)
    SELECT id, study, design_key, rater, case_id, seed, algorithm, status, done, shown_order,
           created_at, done_at FROM v4_assignments;
INSERT INTO presentations SELECT * FROM v4_presentations;
INSERT INTO ratings SELECT * FROM v4_ratings;
INSERT INTO current_ratings SELECT * FROM v4_current_ratings;
INSERT INTO case_flags SELECT * FROM v4_case_flags;
INSERT INTO rating_comments SELECT * FROM v4_rating_comments;
INSERT INTO safety_alerts SELECT * FROM v4_safety_alerts;

DROP TABLE v4_assignments;
DROP TABLE v4_presentations;
DROP TABLE v4_ratings;
DROP TABLE v4_current_ratings;
DROP TABLE v4_case_flags;
DROP TABLE v4_rating_comments;
DROP TABLE v4_safety_alerts;

CREATE INDEX ratings_assignment ON ratings (assignment);

-- A coordinator's decision on a rater's calibration: 'pass' lets a rater below the threshold rate
-- live cases; 'retry' gives them the calibration cases again as attempt + 1. Each row has its
-- calibration.pass / calibration.retry audit event.
CREATE TABLE calibration_decisions (
    id         BIGINT PRIMARY KEY CHECK (id >= 1),
    study      VARCHAR NOT NULL REFERENCES studies (id),
    rater      VARCHAR NOT NULL REFERENCES users (id),
    attempt    INTEGER NOT NULL CHECK (attempt >= 1),  -- the attempt decided on
    decision   VARCHAR NOT NULL CHECK (decision IN ('pass', 'retry')),
    reason     VARCHAR NOT NULL CHECK (length(trim(reason)) > 0),
    decided_at TIMESTAMP NOT NULL,
    decided_by VARCHAR NOT NULL,
    UNIQUE (study, rater, attempt)
);
