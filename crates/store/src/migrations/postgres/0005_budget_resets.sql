-- Users and teams get a budget period like keys: spend returns to 0 at budget_reset_at.
ALTER TABLE users ADD COLUMN budget_reset_at TIMESTAMPTZ;
ALTER TABLE teams ADD COLUMN budget_reset_at TIMESTAMPTZ;
CREATE INDEX verification_tokens_budget_reset ON verification_tokens (budget_reset_at);
