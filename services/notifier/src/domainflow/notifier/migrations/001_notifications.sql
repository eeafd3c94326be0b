-- The notification log: one row per (transition event, recipient), so an owner is mailed about a
-- transition at most once. The row is committed as `sending` BEFORE SES is called (intent) and
-- moved to `sent` with SES's message id after it (outcome). A `sending` row that a later delivery
-- finds was left by a sender that died mid-call: it becomes `unconfirmed`, never a resend.
CREATE TABLE notifications (
    transition_event_id uuid        NOT NULL,
    recipient           text        NOT NULL,
    domain_id           text        NOT NULL,
    domain              text        NOT NULL,
    new_status          text        NOT NULL,
    state               text        NOT NULL
        CHECK (state IN ('sending', 'sent', 'rejected', 'unconfirmed')),
    -- SES's MessageId once it accepted the mail (`sent` only).
    message_id          text,
    -- SES's refusal (`rejected`) or why the outcome is unknown (`unconfirmed`).
    detail              text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transition_event_id, recipient),
    CHECK ((state = 'sent') = (message_id IS NOT NULL))
);

-- Ops look for mails whose fate is unknown: `SELECT * FROM notifications WHERE state = 'unconfirmed'`.
CREATE INDEX notifications_needing_attention ON notifications (state, updated_at)
    WHERE state IN ('sending', 'unconfirmed', 'rejected');
CREATE INDEX notifications_by_domain ON notifications (domain_id, created_at);
