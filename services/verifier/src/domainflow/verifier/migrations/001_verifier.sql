-- The verifier's own state: what to re-check and when, what every probe found, and the SES budget.

-- One row per domain the api told us about. `next_check_at` NULL means "not re-checked
-- automatically" (failed: seed 001 says those recover through a manual verify; deleted: a
-- tombstone, so a late status event cannot bring a deleted domain back).
CREATE TABLE schedule (
    domain_id        text PRIMARY KEY,
    team_id          text NOT NULL,
    domain           text NOT NULL,
    region           text NOT NULL,
    status           text NOT NULL,
    records          jsonb,
    next_check_at    timestamptz,
    claimed_until    timestamptz,
    claim_token      uuid,
    last_checked_at  timestamptz,
    correlation_id   text NOT NULL,
    -- The status event the row reflects: an older one arriving late changes nothing.
    status_event_id  uuid,
    status_event_at  timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The cycle's claim query reads due rows in due order; unscheduled rows stay out of the index.
CREATE INDEX schedule_due ON schedule (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE check_history (
    id               bigserial PRIMARY KEY,
    domain_id        text NOT NULL,
    domain           text NOT NULL,
    trigger          text NOT NULL,            -- manual | scheduled
    outcome          text NOT NULL,            -- passed | failed | inconclusive
    ses_dkim_status  text,                     -- NULL when SES could not be asked
    checks           jsonb NOT NULL,           -- the four RecordChecks as sent
    event_id         uuid NOT NULL UNIQUE,     -- the VerificationCompleted that reported it
    correlation_id   text NOT NULL,            -- the request, or the cycle pass, that asked
    checked_at       timestamptz NOT NULL
);
CREATE INDEX check_history_domain ON check_history (domain_id, checked_at);

-- The SES request budget every replica shares: one row per account and region. A caller
-- reserves the slot at `greatest(next_free_at, now())` and pushes `next_free_at` one
-- interval further in the same UPDATE, then sleeps until its slot.
CREATE TABLE ses_rate_slots (
    bucket        text PRIMARY KEY,
    next_free_at  timestamptz NOT NULL
);
