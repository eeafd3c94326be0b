-- Claims: a team showing, with its ownership TXT, that a name another team holds is its own.
CREATE TABLE domain_claims (
    id                 bigserial PRIMARY KEY,
    public_id          text NOT NULL UNIQUE,
    team_id            bigint NOT NULL REFERENCES teams (id),
    domain             text NOT NULL,
    holder_domain_id   text NOT NULL,   -- the holder's domain when the claim was made
    request            jsonb NOT NULL,  -- the claimant's domain to create, checked
    request_id         text NOT NULL,
    check_event_id     uuid,            -- the ClaimRequested whose answer decides it
    verdict            text,            -- null while the DNS is being checked
    reason             text,
    claimant_check     jsonb,
    active_mailboxes   integer NOT NULL DEFAULT 0,
    released_domain_id text,            -- the holder's domain released for it
    domain_public_id   text,            -- the claimant's domain, once created
    idempotency_key    text,
    request_hash       text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX domain_claims_key ON domain_claims (team_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- A granted claim waits for the holder's domain to be gone: found by that domain's id.
CREATE INDEX domain_claims_released ON domain_claims (released_domain_id)
    WHERE released_domain_id IS NOT NULL AND domain_public_id IS NULL;
-- A claim's request waits on its row like a create waits on its domain's.
CREATE TRIGGER domain_claim_changed AFTER INSERT OR UPDATE ON domain_claims
    FOR EACH ROW EXECUTE FUNCTION domain_changed_notify();
