-- The retention trim finds old inbox rows by age without reading the whole table.
CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at);
