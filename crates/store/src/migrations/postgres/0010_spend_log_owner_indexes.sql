-- Calls with no user (master-key calls, keys nobody owns) or no team are never looked up by
-- user or by team: the log's pages filter on `user_id = …` / `team_id = …`, which the planner
-- matches to these partial indexes. Leaving those rows out spares the spend writer one or two
-- of a row's index inserts, and keeps both indexes to the rows they serve.
DROP INDEX spend_logs_user_time_id;
CREATE INDEX spend_logs_user_time_id ON spend_logs (user_id, start_time, request_id)
    WHERE user_id IS NOT NULL;
DROP INDEX spend_logs_team_time_id;
CREATE INDEX spend_logs_team_time_id ON spend_logs (team_id, start_time, request_id)
    WHERE team_id IS NOT NULL;
