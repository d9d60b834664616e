-- Create requests sent with an Idempotency-Key: the first one's answer, replayed to a retry.
CREATE TABLE idempotency_keys (
    -- Who asked (the caller's user id), on which route, and the SHA-256 hex of the client's key.
    scope TEXT NOT NULL,
    route TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    -- SHA-256 hex of the request: the same key with another request is refused.
    request_hash TEXT NOT NULL,
    -- Random; names the request that holds the key, so only it completes or releases it.
    lease_id TEXT NOT NULL,
    -- NULL while the first request runs.
    status BIGINT,
    -- The answer, encrypted by the caller (the store never sees it in clear).
    response TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    -- An unanswered key whose lease ended (its instance died) may be taken over by a retry.
    locked_until TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, route, key_hash)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
