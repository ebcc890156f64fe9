//! The pipeline core: the operation state machine, the plans of each operation kind,
//! and the worker that runs an environment's operations in order. It does no IO of its
//! own: it talks to the world through the traits in `traits`.

pub mod after_switch;
pub mod health;
pub mod hooks;
pub mod log;
pub mod model;
pub mod operation;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod recovery;
pub mod rollback;
pub mod rollout;
pub mod steps;
pub mod traits;
pub mod worker;

pub use worker::Pipeline;

#[cfg(test)]
mod tests;

/// A duration as people write it in `slipway.yml`: `250ms`, `10s`, `15m`, `1h`.
pub fn format_duration(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        // Whole minutes from two on, so that a 60s deadline reads as it was written.
        m if m % 3_600_000 == 0 && m > 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 && m >= 120_000 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m if m >= 1000 => format!("{:.1}s", m as f64 / 1000.0),
        m => format!("{m}ms"),
    }
}
