-- OpenID Connect sign-in to the UI.

-- A sign-in in progress, between the redirect to the provider and its answer: found by the
-- SHA-256 of the id in the browser's short-lived cookie, taken (deleted) on first use, refused
-- after expires_at. In the database so the answer may land on any instance.
CREATE TABLE sso_pending_logins (
    id_hash TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX sso_pending_logins_expires ON sso_pending_logins (expires_at);

-- Which provider account (issuer and subject) signs in as which user; made on the first sign-in.
CREATE TABLE sso_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    email TEXT,
    linked_at TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX sso_identities_user ON sso_identities (user_id);

-- The ID token a session was signed in with: the id_token_hint of the provider's logout.
CREATE TABLE session_id_tokens (
    session_hash TEXT PRIMARY KEY REFERENCES sessions (id_hash) ON DELETE CASCADE,
    id_token TEXT NOT NULL
);
