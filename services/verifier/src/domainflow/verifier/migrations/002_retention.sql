-- The retention trim finds old probes, and old tombstones, by age.
CREATE INDEX check_history_age ON check_history (checked_at);
CREATE INDEX schedule_tombstones ON schedule (updated_at) WHERE status = 'deleted';
