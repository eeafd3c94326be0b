-- The SES account each domain is placed in for its life (issue 16); NULL: the operator's
-- default account (DOMAINFLOW_SES_ACCOUNT), where every domain older than accounts lives.
ALTER TABLE domains ADD COLUMN IF NOT EXISTS ses_account text;
