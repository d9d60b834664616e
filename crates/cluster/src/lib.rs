//! What several Tollgate instances share through Redis, so that they behave as one: key-cache
//! invalidations (pub/sub), rate-limit windows and budget reservations (one atomic script per
//! call). PostgreSQL stays the truth for spend; Redis holds what is in flight and a running
//! spend counter per owner, initialised from the store and expiring when idle.

mod admission;
mod bus;
mod connection;
mod metrics;

pub use admission::{
    AdmitError, Admitted, BudgetOwner, RateOwner, Refusal, Remaining, Settled, Ticket,
};
pub use bus::Invalidation;
pub use connection::{Cluster, ClusterError, RedisSettings};
pub use metrics::RedisMetrics;
