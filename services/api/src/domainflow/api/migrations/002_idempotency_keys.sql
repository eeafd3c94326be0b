-- A client's Idempotency-Key on POST /domains: a retry after a lost answer gets the same
-- domain back instead of a 409, and a key reused for a different request is refused.
CREATE TABLE idempotency_keys (
    team_id          bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    key              text NOT NULL,
    request_hash     text NOT NULL,
    domain_public_id text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, key)
);
