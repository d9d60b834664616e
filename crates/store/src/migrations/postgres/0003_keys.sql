-- Virtual keys and the archive of deleted ones. `token` is the SHA-256 hex of the whole key;
-- the plaintext is never stored. No foreign key to users: LiteLLM archives a user's keys when
-- the user is deleted, which the store does explicitly (a cascade would lose them).

CREATE TABLE verification_tokens (
    token TEXT PRIMARY KEY,
    key_name TEXT NOT NULL,
    key_alias TEXT,
    user_id TEXT,
    team_id TEXT,
    models JSONB NOT NULL DEFAULT '[]',
    max_budget_nanos BIGINT,
    soft_budget_nanos BIGINT,
    budget_duration TEXT,
    budget_reset_at TIMESTAMPTZ,
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    expires TIMESTAMPTZ,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT,
    last_active TIMESTAMPTZ,
    rotation_count BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX verification_tokens_user ON verification_tokens (user_id);
CREATE INDEX verification_tokens_team ON verification_tokens (team_id);
CREATE INDEX verification_tokens_alias ON verification_tokens (key_alias);
CREATE INDEX verification_tokens_created ON verification_tokens (created_at, token);

CREATE TABLE deleted_verification_tokens (
    token TEXT PRIMARY KEY,
    key_name TEXT NOT NULL,
    key_alias TEXT,
    user_id TEXT,
    team_id TEXT,
    models JSONB NOT NULL DEFAULT '[]',
    max_budget_nanos BIGINT,
    soft_budget_nanos BIGINT,
    budget_duration TEXT,
    budget_reset_at TIMESTAMPTZ,
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    expires TIMESTAMPTZ,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT,
    last_active TIMESTAMPTZ,
    rotation_count BIGINT NOT NULL DEFAULT 0,
    deleted_at TIMESTAMPTZ NOT NULL,
    deleted_by TEXT
);

CREATE INDEX deleted_verification_tokens_user ON deleted_verification_tokens (user_id);
