//! What several Tollgate instances share through Redis, so that they behave as one: key-cache
//! invalidations (pub/sub), rate-limit windows and budget reservations (one atomic script per
//! call), and failed-login counts. PostgreSQL stays the truth for spend; Redis holds what is in flight and a running
//! spend counter per owner, initialised from the store and expiring when idle.

mod admission;
mod bus;
mod connection;
mod login_throttle;
mod metrics;

pub use admission::{
    AdmitError, Admitted, BudgetOwner, RateOwner, Refusal, Remaining, Settled, Ticket,
};
pub use bus::Invalidation;
pub use connection::{Cluster, ClusterError, RedisSettings};
pub use login_throttle::{LoginLimits, LoginOutcome, SharedAttempt};
pub use metrics::RedisMetrics;
