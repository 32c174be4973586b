-- Clinval schema, version 8: a draft study's design settings, kept between sittings.

-- What the coordinator has set on the Design screen before the lock (assignment settings, the
-- analysis plan, the power panel's assumptions), as canonical JSON text of one object. Only a
-- draft has one that counts: the lock freezes the protocol made from it, and the row is then
-- left as it was (the protocol is the record). Never the assignment seed: it stays sealed.
CREATE TABLE design_drafts (
    study    VARCHAR PRIMARY KEY REFERENCES studies (id),
    settings VARCHAR NOT NULL,
    saved_at TIMESTAMP NOT NULL,
    saved_by VARCHAR NOT NULL
);
