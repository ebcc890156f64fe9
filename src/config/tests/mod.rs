//! Tests of the config module as a user sees it: files in, an `AppConfig` or
//! `FILE:LINE:COL: message` lines out.

mod defaults;
mod errors;
mod files;
mod hostile;

use super::*;

/// Parses a slipway.yml that must be valid.
fn parse_ok(text: &str) -> model::AppConfig {
    match parse_slipway_yml(text, "slipway.yml", "shop") {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

/// Parses a slipway.yml that must be refused, and returns what `slipway validate` prints.
fn errors_of(text: &str) -> String {
    match parse_slipway_yml(text, "slipway.yml", "shop") {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors.to_string(),
    }
}
