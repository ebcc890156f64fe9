//! Slipway: a self-hosted deploy orchestrator. See ARCHITECTURE.md for the map.

pub mod action;
pub mod cli;
pub mod config;
pub mod github;
pub mod ids;
pub mod pause;
pub mod pipeline;
pub mod router;
pub mod runtime;
pub mod server;
pub mod source;
pub mod store;
pub mod text;
