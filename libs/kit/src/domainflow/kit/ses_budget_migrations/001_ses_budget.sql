-- Amazon SES's request budget, one row per account, region and quota (`request`: every
-- action but sending, one a second on SES; `send`: the sending rate). Every replica of
-- every service that calls SES reserves its slot here: one UPDATE hands the caller
-- `greatest(next_free_at, now())` and pushes `next_free_at` one spacing further.
-- The counters are what an operator graphs (`/metrics`): slots taken, seconds callers
-- waited for them, and throttles SES answered anyway (someone outside the budget spends
-- the same account).
CREATE TABLE ses_budget (
    bucket          text PRIMARY KEY,        -- ses:<account>:<region>:<quota>
    account         text NOT NULL,
    region          text NOT NULL,
    quota           text NOT NULL CHECK (quota IN ('request', 'send')),
    next_free_at    timestamptz NOT NULL,
    slots_taken     bigint NOT NULL DEFAULT 0,
    waited_seconds  double precision NOT NULL DEFAULT 0,
    throttled       bigint NOT NULL DEFAULT 0
);
