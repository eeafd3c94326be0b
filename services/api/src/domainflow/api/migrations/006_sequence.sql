-- Each domain's public events are numbered, under the domain's row lock: a subscriber keeps
-- the highest number it has seen and drops anything older (replicas' clocks decide nothing).
ALTER TABLE domains ADD COLUMN sequence bigint NOT NULL DEFAULT 0;
