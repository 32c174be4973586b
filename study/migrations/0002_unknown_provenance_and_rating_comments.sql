-- Clinval schema, version 2: provenance that was never recorded, and comments on imported ratings.

-- A provenance field that the importers require (an LLM's model and version, an answer's
-- generation date and prompt, a clinician answer's author and role) but that the file gave as
-- "not recorded": one row per field of an arm or answer. The answer's column is then NULL,
-- never an invented value. An LLM arm's model_name and model_version keep the text
-- 'not recorded' because migration 1's CHECK requires text there (DuckDB cannot drop a CHECK of
-- a table that others reference); this table is what says that text stands for unknown.
CREATE TABLE unknown_provenance (
    study       VARCHAR NOT NULL REFERENCES studies (id),
    object_type VARCHAR NOT NULL CHECK (object_type IN ('arm', 'answer')),
    object_id   VARCHAR NOT NULL CHECK (length(object_id) > 0),
    field       VARCHAR NOT NULL CHECK (field IN ('model_name', 'model_version', 'generated_at',
                                                  'prompt', 'author_id', 'author_role')),
    PRIMARY KEY (study, object_type, object_id, field)
);

-- A comment that came with an imported rating (ratings collected elsewhere may carry one).
CREATE TABLE rating_comments (
    rating  BIGINT PRIMARY KEY REFERENCES ratings (id),
    comment VARCHAR NOT NULL
);
