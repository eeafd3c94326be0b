-- The SES account each scheduled domain is placed in (issue 16); NULL: the default account.
ALTER TABLE schedule ADD COLUMN IF NOT EXISTS ses_account text;
