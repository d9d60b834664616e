//! Test support shared by Tollgate's integration tests and benches: a controllable fake
//! OpenAI/Anthropic upstream, and `spawn_app`, which starts the real gateway on port 0 against
//! a fresh store.

// Test support: a broken fixture should stop the test that uses it, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod bedrock;
pub mod browser;
pub mod clock;
pub mod oidc;
pub mod process;
pub mod services;
pub mod smtp;
pub mod upstream;

pub use app::{spawn_app, spawn_app_on, spawn_app_vars, spawn_app_with, TestApp, TEST_MASTER_KEY};
pub use clock::away_from_minute_edge;
pub use upstream::{Behavior, FakeUpstream};
