//! Pure types of Tollgate: money, secrets, model-name patterns, token usage. No I/O here, so
//! every other crate can depend on it without pulling in a runtime.

pub mod duration;
pub mod master_key;
pub mod model_name;
pub mod money;
pub mod policy;
pub mod role;
pub mod secret;
pub mod usage;

pub use money::NanoUsd;
pub use usage::Usage;
