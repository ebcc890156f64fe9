//! App configuration: `slipway.yml` / `.slipway.yml`, a `Procfile`, an `.aptible.yml`,
//! parsed into the typed model of `model` and validated before anything runs.

mod error;
pub mod model;

pub use error::{ConfigError, ConfigErrors};
