-- What `/metrics` reads of domains, at a cost that does not grow with them.
--
-- Domains by state are counted by triggers, in the transaction that creates, moves or
-- removes the domain, into one row per slot: a scrape adds up 16 rows whether there are a
-- thousand domains or a million, and never reads a deleted one. A backend always writes the
-- slot of its own process id, so concurrent moves on different connections rarely wait for
-- each other, and a transaction holds the lock of one count row at most (no deadlock between
-- transactions that each move one domain; the counts add none of their own).
CREATE TABLE domain_counts (
    slot         smallint PRIMARY KEY,
    provisioning bigint NOT NULL DEFAULT 0,
    pending      bigint NOT NULL DEFAULT 0,
    verified     bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    deleting     bigint NOT NULL DEFAULT 0
);
INSERT INTO domain_counts (slot) SELECT generate_series(0, 15);

-- Adds what arrived in and subtracts what left each state, on this connection's slot; a
-- move that changes no state (most saves) writes nothing, and so waits for nobody.
CREATE FUNCTION domain_counts_move(came text[], gone text[]) RETURNS void AS $$
DECLARE
    delta bigint[] := ARRAY(
        SELECT coalesce(cardinality(array_positions(came, state)), 0)
             - coalesce(cardinality(array_positions(gone, state)), 0)
        FROM unnest(ARRAY['provisioning', 'pending', 'verified', 'failed', 'deleting'])
            WITH ORDINALITY AS s (state, n)
        ORDER BY n
    );
BEGIN
    IF delta = ARRAY[0, 0, 0, 0, 0]::bigint[] THEN
        RETURN;
    END IF;
    UPDATE domain_counts SET
        provisioning = provisioning + delta[1],
        pending = pending + delta[2],
        verified = verified + delta[3],
        failed = failed + delta[4],
        deleting = deleting + delta[5]
    WHERE slot = pg_backend_pid() % 16;
END;
$$ LANGUAGE plpgsql;

-- Once per statement, over the rows it changed: a bulk insert of a million domains updates
-- its count row once, not a million times.
CREATE FUNCTION domain_counted() RETURNS trigger AS $$
DECLARE
    came text[] := '{}';
    gone text[] := '{}';
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        came := ARRAY(SELECT status FROM came_rows);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        gone := ARRAY(SELECT status FROM gone_rows);
    END IF;
    PERFORM domain_counts_move(came, gone);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION domain_counts_cleared() RETURNS trigger AS $$
BEGIN
    UPDATE domain_counts
        SET provisioning = 0, pending = 0, verified = 0, failed = 0, deleting = 0;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- No writer may slip between the count below and the trigger: SHARE waits for the
-- transactions writing domains now and holds new ones until this migration commits.
LOCK TABLE domains IN SHARE MODE;
CREATE TRIGGER domain_counted_insert AFTER INSERT ON domains
    REFERENCING NEW TABLE AS came_rows
    FOR EACH STATEMENT EXECUTE FUNCTION domain_counted();
CREATE TRIGGER domain_counted_update AFTER UPDATE ON domains
    REFERENCING OLD TABLE AS gone_rows NEW TABLE AS came_rows
    FOR EACH STATEMENT EXECUTE FUNCTION domain_counted();
CREATE TRIGGER domain_counted_delete AFTER DELETE ON domains
    REFERENCING OLD TABLE AS gone_rows
    FOR EACH STATEMENT EXECUTE FUNCTION domain_counted();
CREATE TRIGGER domain_counts_cleared AFTER TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION domain_counts_cleared();
UPDATE domain_counts SET
    provisioning = (SELECT count(*) FROM domains WHERE status = 'provisioning'),
    pending      = (SELECT count(*) FROM domains WHERE status = 'pending'),
    verified     = (SELECT count(*) FROM domains WHERE status = 'verified'),
    failed       = (SELECT count(*) FROM domains WHERE status = 'failed'),
    deleting     = (SELECT count(*) FROM domains WHERE status = 'deleting')
WHERE slot = 0;

-- The oldest unanswered verify request: the first entry of an index of the waiting ones.
CREATE INDEX domains_verify_waiting ON domains (verify_requested_at)
    WHERE verify_event_id IS NOT NULL;
