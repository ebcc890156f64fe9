//! What the router benches share: the load generator, the figures drawn from its samples,
//! the trivial backend app, and the writer of BENCHMARKS.md.
//!
//! Each bench includes this with `#[path = "common/mod.rs"] mod common;` and uses only a
//! part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod backend;
pub mod load;
pub mod report;
pub mod stats;
