//! `tollgate import`: bringing another gateway's database into Tollgate's store.

pub mod litellm;
mod report;

pub use report::Report;
