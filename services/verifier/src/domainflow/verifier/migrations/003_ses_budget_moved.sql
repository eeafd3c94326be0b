-- The SES budget moved to a database every service shares (`DOMAINFLOW_SES_BUDGET_DATABASE_URL`):
-- the provisioner and the notifier spend the same account's quota as the verifier.
DROP TABLE IF EXISTS ses_rate_slots;
