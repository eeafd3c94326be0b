-- One saga per (domain_id, kind): its steps' intent and outcome, and the replica holding it.
CREATE TABLE sagas (
    id               bigserial PRIMARY KEY,  -- also the order sagas of one domain name run in
    domain_id        text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('provision', 'deprovision')),
    team_id          text NOT NULL,
    domain           text NOT NULL,
    region           text NOT NULL,
    mail_from_domain text,
    state            text NOT NULL DEFAULT 'running'
                     CHECK (state IN ('running', 'compensating', 'completed', 'rolled_back')),
    -- [{"step": "mailserver", "status": "pending|started|done|undone"}, ...] in run order
    steps            jsonb NOT NULL,
    dkim_tokens      text[] NOT NULL DEFAULT '{}',
    failed_step      text,
    error            text,
    attempts         integer NOT NULL DEFAULT 0,  -- tries of the step (or undo) under way
    in_doubt         boolean NOT NULL DEFAULT false,  -- an earlier try may have taken effect
    max_attempts     integer NOT NULL,
    correlation_id   text NOT NULL,
    causation_id     uuid NOT NULL,  -- the event that started the saga
    lease_token      uuid,
    leased_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (domain_id, kind)
);

-- The recovery sweep: unfinished sagas whose lease ran out.
CREATE INDEX sagas_unfinished ON sagas (leased_until)
    WHERE state IN ('running', 'compensating');
-- Sagas of one domain name run one at a time, oldest first.
CREATE INDEX sagas_unfinished_domain ON sagas (domain, id)
    WHERE state IN ('running', 'compensating');
