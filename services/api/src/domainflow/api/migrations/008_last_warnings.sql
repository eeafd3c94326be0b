-- The last verification's warnings (what is already published that will conflict with the
-- records: an SPF to merge, a weaker DMARC, ...), shown beside its checks.
ALTER TABLE domains ADD COLUMN last_warnings jsonb;
