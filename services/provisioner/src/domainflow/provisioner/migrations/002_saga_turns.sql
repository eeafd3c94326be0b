-- Fair turns between teams: a saga's `turn` is its team's next turn, but never before the
-- turn being served now, so a team arriving after another team's burst of 500 is served
-- next to it, not after it. Sagas run in (turn, id) order.
ALTER TABLE sagas ADD COLUMN turn bigint NOT NULL DEFAULT 0;
CREATE INDEX sagas_unfinished_turn ON sagas (turn, id)
    WHERE state IN ('running', 'compensating');
CREATE INDEX sagas_unfinished_team_turn ON sagas (team_id, turn)
    WHERE state IN ('running', 'compensating');
CREATE INDEX sagas_turn ON sagas (turn);
