-- Clinval schema, version 9: personal access tokens, so that a person can act from a terminal
-- (`python -m study --token ...`) as themselves, not as the operator who holds the file.

-- One row per token a person created. The secret is never stored: `secret_hash` is the SHA-256
-- (hex) of the whole token as shown once, and `id` is the short, non-secret part of the token
-- that finds the row (the token reads `clv_<id>_<secret>`). A token stops working at
-- `expires_at` or once `revoked_at` is set; rows are kept after either, for the audit trail.
CREATE TABLE personal_tokens (
    id           VARCHAR PRIMARY KEY CHECK (length(id) > 0),
    user_id      VARCHAR NOT NULL REFERENCES users (id),
    name         VARCHAR NOT NULL CHECK (length(name) > 0),
    secret_hash  VARCHAR NOT NULL UNIQUE CHECK (length(secret_hash) = 64),
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP,
    revoked_by   VARCHAR
);

CREATE INDEX personal_tokens_user ON personal_tokens (user_id);
