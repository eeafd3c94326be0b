-- The SES account each domain is placed in for its life (issue 16); NULL: the operator's
-- default account (DOMAINFLOW_SES_ACCOUNT), where every domain older than accounts lives.
ALTER TABLE domains ADD COLUMN IF NOT EXISTS ses_account text;
-- Placement counts each account's identities in a region on every create.
CREATE INDEX IF NOT EXISTS domains_ses_placement ON domains (region, ses_account)
    WHERE status <> 'deleted';
