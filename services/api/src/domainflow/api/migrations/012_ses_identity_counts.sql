-- SES identities per account and region (issue 16), kept by triggers like domain_counts: what
-- placement reads on every create and `/metrics` on every scrape, at a cost that grows with
-- the accounts, never with the domains. A domain holds an identity until it is deleted;
-- `account` is '' for the operator's default account (domains with no account recorded).
CREATE TABLE ses_identity_counts (
    account    text NOT NULL,
    region     text NOT NULL,
    identities bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account, region)
);

-- An update that neither deletes a domain nor moves it (most saves) writes nothing, and so
-- waits for nobody.
CREATE FUNCTION ses_identities_moved() RETURNS trigger AS $$
BEGIN
    WITH moved AS (
        SELECT coalesce(ses_account, '') AS account, region, 1 AS n FROM came_rows
            WHERE status <> 'deleted'
        UNION ALL
        SELECT coalesce(ses_account, '') AS account, region, -1 AS n FROM gone_rows
            WHERE status <> 'deleted'
    ), delta AS (
        SELECT account, region, sum(n) AS n FROM moved GROUP BY 1, 2 HAVING sum(n) <> 0
    )
    INSERT INTO ses_identity_counts AS c (account, region, identities)
    SELECT account, region, n FROM delta ORDER BY 1, 2
    ON CONFLICT (account, region) DO UPDATE SET identities = c.identities + EXCLUDED.identities;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION ses_identities_inserted() RETURNS trigger AS $$
BEGIN
    INSERT INTO ses_identity_counts AS c (account, region, identities)
    SELECT coalesce(ses_account, ''), region, count(*) FROM came_rows
        WHERE status <> 'deleted' GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (account, region) DO UPDATE SET identities = c.identities + EXCLUDED.identities;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION ses_identities_deleted() RETURNS trigger AS $$
BEGIN
    INSERT INTO ses_identity_counts AS c (account, region, identities)
    SELECT coalesce(ses_account, ''), region, -count(*) FROM gone_rows
        WHERE status <> 'deleted' GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (account, region) DO UPDATE SET identities = c.identities + EXCLUDED.identities;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION ses_identity_counts_cleared() RETURNS trigger AS $$
BEGIN
    DELETE FROM ses_identity_counts;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

LOCK TABLE domains IN SHARE MODE;
CREATE TRIGGER ses_identities_insert AFTER INSERT ON domains
    REFERENCING NEW TABLE AS came_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ses_identities_inserted();
CREATE TRIGGER ses_identities_update AFTER UPDATE ON domains
    REFERENCING OLD TABLE AS gone_rows NEW TABLE AS came_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ses_identities_moved();
CREATE TRIGGER ses_identities_delete AFTER DELETE ON domains
    REFERENCING OLD TABLE AS gone_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ses_identities_deleted();
CREATE TRIGGER ses_identity_counts_cleared AFTER TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION ses_identity_counts_cleared();
INSERT INTO ses_identity_counts (account, region, identities)
SELECT coalesce(ses_account, ''), region, count(*) FROM domains
    WHERE status <> 'deleted' GROUP BY 1, 2;
