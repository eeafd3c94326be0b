-- A saga whose undo or removal keeps failing for a reason no wait mends stops for an
-- operator instead of retrying for ever; `error_class` is what clients may read of `error`.
ALTER TABLE sagas DROP CONSTRAINT IF EXISTS sagas_state_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_state_check
    CHECK (state IN ('running', 'compensating', 'completed', 'rolled_back', 'needs_operator'));
ALTER TABLE sagas ADD COLUMN error_class text;
-- `domainflow doctor` lists the stopped sagas.
CREATE INDEX sagas_needs_operator ON sagas (updated_at) WHERE state = 'needs_operator';
