-- Users, teams, invitations, sessions and the audit log. Timestamps are RFC 3339 TEXT in UTC
-- (as sqlx writes them), so they compare correctly as strings; JSON is TEXT.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    user_email TEXT,
    -- Lower-cased copy of user_email: emails are unique regardless of case.
    user_email_lower TEXT,
    user_alias TEXT,
    user_role TEXT NOT NULL,
    password_hash TEXT,
    teams TEXT NOT NULL DEFAULT '[]',
    models TEXT NOT NULL DEFAULT '[]',
    max_budget_nanos BIGINT,
    budget_duration TEXT,
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE UNIQUE INDEX users_email_lower ON users (user_email_lower);
CREATE INDEX users_created ON users (created_at, user_id);

CREATE TABLE teams (
    team_id TEXT PRIMARY KEY,
    team_alias TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    max_budget_nanos BIGINT,
    budget_duration TEXT,
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    blocked INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX teams_created ON teams (created_at, team_id);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (team_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    max_budget_in_team_nanos BIGINT,
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, user_id)
);

CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE invitations (
    -- SHA-256 hex of the invitation id; the id itself is never stored.
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    is_accepted INTEGER NOT NULL DEFAULT 0,
    accepted_at TEXT,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE INDEX invitations_user ON invitations (user_id);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('ui', 'api')),
    csrf_hash TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    idle_expires_at TEXT NOT NULL,
    absolute_expires_at TEXT NOT NULL,
    user_agent TEXT
);

CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    actor_id TEXT,
    actor_role TEXT,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT,
    "before" TEXT,
    "after" TEXT
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id, at);
CREATE INDEX audit_log_actor ON audit_log (actor_id, at);
