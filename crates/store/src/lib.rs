//! Persistence for Tollgate. One [`Store`] value speaks to SQLite (the default, embedded) or
//! PostgreSQL (several instances); each concern is a module with plain SQL per backend, and the
//! contract tests in `tests/` run the same checks against both.

mod connect;
mod db;
mod error;
mod migrate;
mod notify;
mod worker_priority;

pub mod audit;
pub mod budget_resets;
pub mod idempotency;
pub mod imported;
pub mod invitations;
pub mod key_path;
pub mod keys;
pub mod sessions;
pub mod settings;
pub mod spend;
pub mod spend_views;
pub mod sso;
pub mod teams;
pub mod users;

pub use audit::{AuditEntry, AuditFilter};
pub use budget_resets::{BudgetOwnerKind, BudgetReset};
pub use connect::{Backend, Store, DEFAULT_SQLITE_PATH};
pub use error::StoreError;
pub use idempotency::{Claim, IdempotencyClaim, IdempotencyId};
pub use invitations::{ClaimOutcome, InvitationRow, NewInvitation};
pub use key_path::{KeyPath, PathLimits, PathMember, PathTeam, PathUser};
pub use keys::{KeyFilter, KeyPatch, KeyRow, NewKey};
pub use migrate::SCHEMA_VERSION;
pub use sessions::{NewSession, SessionKind, SessionRow};
pub use spend::{DailyHistory, SpendRecord, SpendStatus};
pub use spend_views::{
    DailyActivityRow, DailyBreakdown, DailyDimension, DailySpend, EndUserSpend, ReportFilter,
    ReportRow, SpendBreakdown, SpendGroup, SpendLogFilter, SpendScope, SpendTotals, TagSpend,
};
pub use sso::{PendingLogin, SsoIdentity};
pub use teams::{NewTeam, TeamMemberRow, TeamPatch, TeamRow};
pub use users::{NewUser, UserFilter, UserPatch, UserRow};
pub use worker_priority::deprioritize_sqlite_workers;
