//! The management API (LiteLLM paths and JSON fields) and the server-rendered web UI. No business
//! rules of its own beyond who may do what: it authenticates the caller, asks the route policy,
//! and calls identity and the store.

pub mod api;
pub mod audit_log;
pub mod idempotency;
pub mod jwt;
pub mod login;
pub mod mail;
pub mod onboarding;
pub mod principal;
pub mod session;
pub mod sso;
pub mod state;
pub mod ui;
pub mod ui_routes;
pub mod views;

pub use state::{WebConfig, WebState};
