-- The SES account the saga's domain is placed in (issue 16); NULL: the default account.
ALTER TABLE sagas ADD COLUMN IF NOT EXISTS ses_account text;
