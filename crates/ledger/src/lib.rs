//! The ledger: what a model costs, what a call cost, and the batched writer that records every
//! call's usage without slowing the hot path down.

pub mod budgets;
pub mod cost;
pub mod journal;
pub mod prices;
pub mod resets;
pub mod writer;

pub use budgets::{BudgetExceeded, BudgetLimit, Budgets, Owner, Refusal, Reservation};
pub use cost::{cost_of, CallCost};
pub use journal::{Journal, JournalError, Replay};
pub use prices::{ModelPrice, PriceError, PriceTable};
pub use writer::{JournalTicket, SpendWriter, WriterConfig, WriterStats};
