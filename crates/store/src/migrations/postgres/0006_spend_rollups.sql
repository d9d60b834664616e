-- Two narrower rollups of daily_spend for the views that don't need all its dimensions, kept
-- by the spend writer in the same transaction (summed from the same per-batch deltas) and
-- backfilled here from daily_spend, which already equals the sums of the log:
--   daily_spend_by_key: per day and key (the key rankings and per-key activity);
--   daily_spend_by_team_model: per day, team, model and provider (gateway-wide totals and
--   the team, model and provider breakdowns), a few hundred rows a day.
-- At 1M records over 90 days (1,000 keys) daily_spend has ~340k rows; these have ~90k and ~12k.
-- The primary keys start with day, so date-range reads use them.

CREATE TABLE daily_spend_by_key (
    day TEXT NOT NULL,
    api_key TEXT NOT NULL,
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    requests BIGINT NOT NULL DEFAULT 0,
    successful_requests BIGINT NOT NULL DEFAULT 0,
    failed_requests BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, api_key)
);
-- The chosen top keys' days, without a scan of every key's.
CREATE INDEX daily_spend_by_key_key_day ON daily_spend_by_key (api_key, day);

CREATE TABLE daily_spend_by_team_model (
    day TEXT NOT NULL,
    team_id TEXT NOT NULL DEFAULT '',
    model_group TEXT NOT NULL,
    custom_llm_provider TEXT NOT NULL DEFAULT '',
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    requests BIGINT NOT NULL DEFAULT 0,
    successful_requests BIGINT NOT NULL DEFAULT 0,
    failed_requests BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, team_id, model_group, custom_llm_provider)
);
CREATE INDEX daily_spend_by_team_model_team_day ON daily_spend_by_team_model (team_id, day);

INSERT INTO daily_spend_by_key (day, api_key, spend_nanos, prompt_tokens, completion_tokens,
    requests, successful_requests, failed_requests)
SELECT day, api_key, SUM(spend_nanos), SUM(prompt_tokens), SUM(completion_tokens),
    SUM(requests), SUM(successful_requests), SUM(failed_requests)
FROM daily_spend
GROUP BY day, api_key;

INSERT INTO daily_spend_by_team_model (day, team_id, model_group, custom_llm_provider,
    spend_nanos, prompt_tokens, completion_tokens, requests, successful_requests, failed_requests)
SELECT day, team_id, model_group, custom_llm_provider, SUM(spend_nanos), SUM(prompt_tokens),
    SUM(completion_tokens), SUM(requests), SUM(successful_requests), SUM(failed_requests)
FROM daily_spend
GROUP BY day, team_id, model_group, custom_llm_provider;

-- Log pages of failures (any model or scope) walk only the failures, newest first, instead of
-- every call until enough rare failures turn up. Partial, so the writer adds to it only for
-- failed calls. Queries name the status as a literal so the planner can use it.
CREATE INDEX spend_logs_failures_time_id ON spend_logs (start_time, request_id)
    WHERE status = 'failure';
