-- The mail platform's virtual-domain table: Postfix accepts mail for a domain, and Dovecot
-- hosts its mailboxes, while a row names it. domainflow's provisioner only inserts and deletes
-- rows; names are lower-case ASCII (IDNA A-labels) without a trailing dot, as Postfix looks
-- them up. Safe to apply again: it changes nothing that exists.
CREATE TABLE IF NOT EXISTS virtual_domains (
    name       text PRIMARY KEY CHECK (name = lower(name) AND name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
