-- Teams, their members and API keys; domains and their place in the state machine.
CREATE TABLE teams (
    id          bigserial PRIMARY KEY,
    public_id   text NOT NULL UNIQUE,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    id          bigserial PRIMARY KEY,
    team_id     bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    email       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('owner', 'member')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, email)
);

CREATE TABLE api_keys (
    id           bigserial PRIMARY KEY,
    team_id      bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    key_id       text NOT NULL UNIQUE,
    key_hash     text NOT NULL UNIQUE,  -- only the hash: the key itself is shown once
    role         text NOT NULL,
    permissions  text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE domains (
    id                   bigserial PRIMARY KEY,
    public_id            text NOT NULL UNIQUE,
    team_id              bigint NOT NULL REFERENCES teams (id),
    domain               text NOT NULL,
    status               text NOT NULL,
    consecutive_failures integer NOT NULL DEFAULT 0,
    degraded             boolean NOT NULL DEFAULT false,
    region               text NOT NULL,
    external_id          text,
    metadata             jsonb NOT NULL DEFAULT '{}',
    mail_from_domain     text,
    dkim_tokens          text[] NOT NULL DEFAULT '{}',
    ses_dkim_status      text NOT NULL DEFAULT 'pending',
    last_checks          jsonb,
    last_outcome         text,
    failure_reason       text,
    verified_at          timestamptz,
    last_checked_at      timestamptz,
    verify_requested_at  timestamptz,
    verify_event_id      uuid,  -- the VerifyRequested whose answer a request waits for
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz,
    request_id           text NOT NULL
);
-- A name is provisioned once: SES identities and the mail server's table are per name.
CREATE UNIQUE INDEX domains_active_name ON domains (domain) WHERE status <> 'deleted';
CREATE INDEX domains_team_list ON domains (team_id, id) WHERE status <> 'deleted';

-- Waiting requests (on any api replica) wake when a domain changes.
CREATE OR REPLACE FUNCTION domain_changed_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('domainflow_domain_changed', NEW.public_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER domain_changed AFTER INSERT OR UPDATE ON domains
    FOR EACH ROW EXECUTE FUNCTION domain_changed_notify();

-- Mailboxes, as much as domains need: an address on a verified custom domain of the team,
-- or under the team's own suffix on the shared domain.
CREATE TABLE mailboxes (
    id          bigserial PRIMARY KEY,
    public_id   text NOT NULL UNIQUE,
    team_id     bigint NOT NULL REFERENCES teams (id),
    domain_id   bigint REFERENCES domains (id),  -- NULL under the shared domain
    address     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE UNIQUE INDEX mailboxes_active_address ON mailboxes (address) WHERE deleted_at IS NULL;
CREATE INDEX mailboxes_domain_active ON mailboxes (domain_id) WHERE deleted_at IS NULL;
