//! Persistence for Tollgate. One [`Store`] value speaks to SQLite (the default, embedded) or
//! PostgreSQL (several instances); each concern is a module with plain SQL per backend, and the
//! contract tests in `tests/` run the same checks against both.

mod connect;
mod error;
mod migrate;
pub mod settings;
pub mod spend;

pub use connect::{Backend, Store};
pub use error::StoreError;
pub use spend::{SpendRecord, SpendStatus};
