-- The cycle claims each SES account's due domains apart (issue 16).
CREATE INDEX IF NOT EXISTS schedule_due_by_account
    ON schedule ((coalesce(ses_account, '')), next_check_at) WHERE next_check_at IS NOT NULL;
