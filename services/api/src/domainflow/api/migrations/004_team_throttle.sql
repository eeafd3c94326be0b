-- Each team's place in its request budget (the GCRA's theoretical arrival time).
CREATE TABLE team_throttle (
    team_id  bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    bucket   text NOT NULL,
    tat      timestamptz NOT NULL,
    PRIMARY KEY (team_id, bucket)
);
