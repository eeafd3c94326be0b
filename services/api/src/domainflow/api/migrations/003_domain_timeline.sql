-- Each domain's timeline: what happened to it, when, why, and which request caused it.
CREATE TABLE domain_timeline (
    id              bigserial PRIMARY KEY,
    domain_id       bigint NOT NULL REFERENCES domains (id),
    at              timestamptz NOT NULL DEFAULT now(),
    happening       text NOT NULL,   -- requested, provisioned, verification_completed, ...
    status_before   text,
    status_after    text NOT NULL,
    reason          text NOT NULL,
    outcome         text,            -- a probe's verdict: passed, failed, inconclusive
    ses_dkim_status text,
    checks          jsonb,           -- the records that did not pass, as the probe saw them
    request_id      text NOT NULL    -- the correlation id: grep the logs with it
);
CREATE INDEX domain_timeline_newest ON domain_timeline (domain_id, id DESC);
