-- The retention trim finds settled notifications (sent or refused) by age; the ones whose
-- fate is unknown are never trimmed, they wait for an operator.
CREATE INDEX notifications_settled_age ON notifications (updated_at)
    WHERE state IN ('sent', 'rejected');
