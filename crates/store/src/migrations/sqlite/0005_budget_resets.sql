-- Users and teams get a budget period like keys: spend returns to 0 at budget_reset_at.
ALTER TABLE users ADD COLUMN budget_reset_at TEXT;
ALTER TABLE teams ADD COLUMN budget_reset_at TEXT;
CREATE INDEX verification_tokens_budget_reset ON verification_tokens (budget_reset_at);
