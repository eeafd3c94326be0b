-- The mail platform's virtual-domain table: Postfix accepts mail for a domain, and Dovecot
-- hosts its mailboxes, while a row names it and is active. domainflow's provisioner only
-- inserts, activates and deletes rows; names are lower-case ASCII (IDNA A-labels) without a
-- trailing dot, as Postfix looks them up. Safe to apply again: it changes nothing that exists.
CREATE TABLE IF NOT EXISTS virtual_domains (
    name       text PRIMARY KEY CHECK (name = lower(name) AND name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A row is inactive (Postfix's map query skips it) until its owner has shown the domain is
-- theirs: the ownership TXT seen by a verification. Rows written before the column existed
-- stay active, as they were.
ALTER TABLE virtual_domains ADD COLUMN IF NOT EXISTS active boolean NOT NULL DEFAULT true;
