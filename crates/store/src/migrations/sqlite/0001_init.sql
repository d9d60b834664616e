CREATE TABLE tollgate_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE spend_logs (
    request_id TEXT PRIMARY KEY,
    call_type TEXT NOT NULL,
    api_key TEXT NOT NULL DEFAULT '',
    user_id TEXT,
    team_id TEXT,
    end_user TEXT,
    model TEXT NOT NULL,
    model_group TEXT NOT NULL,
    model_id TEXT,
    custom_llm_provider TEXT,
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    priced INTEGER NOT NULL DEFAULT 1,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
    usage_estimated INTEGER NOT NULL DEFAULT 0,
    stream INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    error_type TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    start_time TEXT NOT NULL,
    end_time TEXT NOT NULL,
    completion_start_time TEXT,
    request_duration_ms BIGINT NOT NULL,
    ttft_ms BIGINT,
    metadata TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX spend_logs_start_time ON spend_logs (start_time);
CREATE INDEX spend_logs_api_key_time ON spend_logs (api_key, start_time);
CREATE INDEX spend_logs_user_time ON spend_logs (user_id, start_time);
