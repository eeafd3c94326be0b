-- The W3C trace context of the transaction that wrote an event: the relay publishes it as
-- the message's traceparent, so the consumer's work joins the request's trace.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS tracestate text;
