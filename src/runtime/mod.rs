//! Runtimes: where builds, hooks and instances actually run. `local` runs them as
//! processes on this machine, `docker` as containers on a Docker Engine; `health` holds
//! the single health checks (HTTP, TCP) that any runtime whose instances are reachable
//! on an address can use.

pub mod docker;
pub mod health;
pub mod local;

mod human;
