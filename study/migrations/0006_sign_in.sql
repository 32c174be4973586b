-- Sign-in: when a person first signed in, and the identity an invited person bound to.

-- The first time the person signed in through a provider (NULL: never yet). Set once, by the
-- sign-in step; `python -m study users list` shows it.
ALTER TABLE users ADD COLUMN first_sign_in TIMESTAMP;

-- A person invited by e-mail (or one of the demo's people) is stored under an identity that no
-- provider vouches for (issuer 'invited' or 'demo'). The first sign-in whose ID token carries that
-- e-mail with email_verified true binds the provider's (issuer, subject) to the person here; from
-- then on only that identity is that person. users.issuer/subject cannot be rewritten in place:
-- DuckDB refuses to update an indexed column of a row that roles reference.
CREATE TABLE identities (
    issuer   VARCHAR NOT NULL CHECK (length(issuer) > 0),
    subject  VARCHAR NOT NULL CHECK (length(subject) > 0),
    user_id  VARCHAR NOT NULL UNIQUE REFERENCES users (id),
    email    VARCHAR NOT NULL,
    bound_at TIMESTAMP NOT NULL,
    PRIMARY KEY (issuer, subject)
);
