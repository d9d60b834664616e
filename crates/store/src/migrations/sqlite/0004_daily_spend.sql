-- Per-day spend aggregates, written in the spend writer's transaction for exactly the records
-- it inserts, so summaries never scan spend_logs. `day` is the UTC day of start_time
-- ('YYYY-MM-DD'); missing user, team and provider are '' so they can be part of the key.
-- WITHOUT ROWID clusters the rows by day: a date-range summary reads one contiguous run.

CREATE TABLE daily_spend (
    day TEXT NOT NULL,
    api_key TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    team_id TEXT NOT NULL DEFAULT '',
    model_group TEXT NOT NULL,
    custom_llm_provider TEXT NOT NULL DEFAULT '',
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    requests BIGINT NOT NULL DEFAULT 0,
    successful_requests BIGINT NOT NULL DEFAULT 0,
    failed_requests BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, api_key, user_id, team_id, model_group, custom_llm_provider)
) WITHOUT ROWID;

-- (day) alone is the primary key's prefix.
CREATE INDEX daily_spend_user_day ON daily_spend (user_id, day);
CREATE INDEX daily_spend_team_day ON daily_spend (team_id, day);
CREATE INDEX daily_spend_key_day ON daily_spend (api_key, day);

INSERT INTO daily_spend (day, api_key, user_id, team_id, model_group, custom_llm_provider,
    spend_nanos, prompt_tokens, completion_tokens, requests, successful_requests, failed_requests)
SELECT substr(start_time, 1, 10), api_key, COALESCE(user_id, ''), COALESCE(team_id, ''),
    model_group, COALESCE(custom_llm_provider, ''),
    SUM(spend_nanos), SUM(prompt_tokens), SUM(completion_tokens), COUNT(*),
    SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END),
    SUM(CASE WHEN status = 'success' THEN 0 ELSE 1 END)
FROM spend_logs
GROUP BY 1, 2, 3, 4, 5, 6;

-- The log view pages newest first on (start_time, request_id) within each scope; request_id
-- in every index makes the keyset order come straight from the index (no sort of ties).
DROP INDEX spend_logs_start_time;
DROP INDEX spend_logs_api_key_time;
DROP INDEX spend_logs_user_time;
CREATE INDEX spend_logs_time_id ON spend_logs (start_time, request_id);
CREATE INDEX spend_logs_api_key_time_id ON spend_logs (api_key, start_time, request_id);
CREATE INDEX spend_logs_user_time_id ON spend_logs (user_id, start_time, request_id);
CREATE INDEX spend_logs_team_time_id ON spend_logs (team_id, start_time, request_id);
