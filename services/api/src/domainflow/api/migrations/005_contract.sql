-- Sendmux's current contract: a domain's mode, and what SES last said of its identity.
ALTER TABLE domains ADD COLUMN mode text NOT NULL DEFAULT 'send_receive'
    CHECK (mode IN ('send_only', 'send_receive'));
ALTER TABLE domains ADD COLUMN ses_dkim_signing_enabled boolean;
ALTER TABLE domains ADD COLUMN ses_identity_verification_status text;
ALTER TABLE domains ADD COLUMN ses_mail_from_status text;
ALTER TABLE domains ADD COLUMN ses_verified_for_sending boolean;
ALTER TABLE domains ADD COLUMN ses_identity_checked_at timestamptz;
-- Lists page newest first.
CREATE INDEX domains_team_newest ON domains (team_id, id DESC) WHERE status <> 'deleted';
