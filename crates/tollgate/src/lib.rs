//! The Tollgate binary's library half: config loading, wiring and serving, so tests and the
//! benchmark start exactly what `tollgate serve` starts.

pub mod alerts;
pub mod app;
pub mod cli;
mod cluster;
pub mod config;
pub mod error;
pub mod health;
pub mod import;
pub mod master_key;
pub mod seed;
pub mod serve;
mod spend_journal;

pub use app::{App, Options};
pub use error::StartError;
