-- The W3C trace context of the delivery that opened a saga: running it, later and maybe on
-- another replica, continues that trace.
ALTER TABLE sagas ADD COLUMN IF NOT EXISTS traceparent text;
ALTER TABLE sagas ADD COLUMN IF NOT EXISTS tracestate text;
