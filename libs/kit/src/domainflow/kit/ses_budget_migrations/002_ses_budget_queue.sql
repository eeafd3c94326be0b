-- Callers queue for a bucket's slots instead of booking them far ahead. A slot is booked
-- only when it is due within the caller's horizon (about half a slot), and then by the
-- first caller in the queue: the lowest `ordered_at`, which is when it first asked, less
-- the head start a quiet team's call is given. So a call that asks while others wait is
-- served ahead of them when it ranks ahead, instead of after every slot already given out.
-- A waiter asks again at least once a slot; one not seen for two slots and two seconds
-- (its process died mid-wait) no longer holds the queue, and is cleared later.
CREATE TABLE ses_budget_waiters (
    bucket      text NOT NULL,
    waiter      uuid NOT NULL,
    asked_at    timestamptz NOT NULL,   -- its first try: what `waited_seconds` counts from
    ordered_at  timestamptz NOT NULL,   -- asked_at less its head start: the lowest goes first
    seen_at     timestamptz NOT NULL,   -- its latest try
    PRIMARY KEY (bucket, waiter)
);
CREATE INDEX ses_budget_waiters_order ON ses_budget_waiters (bucket, ordered_at, waiter);

-- One try of one caller, atomic under the bucket's row lock: booked, and the seconds until
-- the slot (<= 0: go now); or not booked, and the seconds until it is worth asking again.
CREATE FUNCTION ses_budget_reserve(
    p_bucket text, p_account text, p_region text, p_quota text,
    p_spacing float8, p_horizon float8, p_waiter uuid, p_head_start float8,
    OUT booked boolean, OUT wait float8
) LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_slot timestamptz;
    v_asked timestamptz;
    v_first uuid;
BEGIN
    INSERT INTO ses_budget (bucket, account, region, quota, next_free_at)
    VALUES (p_bucket, p_account, p_region, p_quota, v_now)
    ON CONFLICT (bucket) DO NOTHING;
    SELECT greatest(b.next_free_at, v_now) INTO v_slot
    FROM ses_budget b WHERE b.bucket = p_bucket FOR UPDATE;
    INSERT INTO ses_budget_waiters AS w (bucket, waiter, asked_at, ordered_at, seen_at)
    VALUES (p_bucket, p_waiter, v_now, v_now - make_interval(secs => p_head_start), v_now)
    ON CONFLICT (bucket, waiter) DO UPDATE SET seen_at = v_now
    RETURNING w.asked_at INTO v_asked;
    IF v_slot > v_now + make_interval(secs => p_horizon) THEN
        booked := false;
        wait := extract(epoch FROM v_slot - v_now)::float8 - p_horizon;
        RETURN;
    END IF;
    SELECT w.waiter INTO v_first FROM ses_budget_waiters w
    WHERE w.bucket = p_bucket AND w.seen_at > v_now - make_interval(secs => 2 * p_spacing + 2)
    ORDER BY w.ordered_at, w.waiter LIMIT 1;
    IF v_first IS DISTINCT FROM p_waiter THEN
        -- The first in the queue books this slot; the next one opens a slot later.
        booked := false;
        wait := extract(epoch FROM v_slot - v_now)::float8 - p_horizon + p_spacing;
        RETURN;
    END IF;
    DELETE FROM ses_budget_waiters w
    WHERE w.bucket = p_bucket
      AND (w.waiter = p_waiter OR w.seen_at < v_now - interval '10 minutes');
    UPDATE ses_budget SET
        next_free_at = v_slot + make_interval(secs => p_spacing),
        slots_taken = slots_taken + 1,
        waited_seconds = waited_seconds + greatest(0, extract(epoch FROM v_slot - v_asked))
    WHERE bucket = p_bucket;
    booked := true;
    wait := extract(epoch FROM v_slot - v_now)::float8;
END
$$;
