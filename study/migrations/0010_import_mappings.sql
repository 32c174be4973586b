-- Clinval schema, version 10: column mappings kept with the study that used them.

-- A mapping (TOML text, exactly as given) says which columns of a third-party table are a
-- study's cases, arms and answers (study.mapping). It is kept under a name chosen by the
-- coordinator, so that the next file of the same shape is imported with it again, and can be
-- downloaded. Saving one again under its name replaces the text; each save is audited
-- (mapping.save, with the text's SHA-256 and the file it was used on).
CREATE TABLE import_mappings (
    study    VARCHAR NOT NULL REFERENCES studies (id),
    name     VARCHAR NOT NULL,
    mapping  VARCHAR NOT NULL,
    sha256   VARCHAR NOT NULL,
    saved_at TIMESTAMP NOT NULL,
    saved_by VARCHAR NOT NULL,
    PRIMARY KEY (study, name)
);
