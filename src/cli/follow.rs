//! Following an operation's log from the CLI until it ends.

use std::str::FromStr;

use serde_json::Value;

use crate::cli::client::{Client, ClientError};
use crate::pipeline::model::OperationState;

/// Prints the log of `id` as it grows (`HH:MM:SS line`) and returns the final state.
/// With `follow == false`, prints what there is and returns the state at that moment.
pub async fn follow(
    client: &Client,
    id: i64,
    follow: bool,
    quiet: bool,
) -> Result<OperationState, ClientError> {
    follow_lines(client, id, follow, |at, text| {
        if !quiet {
            println!("{} {text}", clock_time(at));
        }
    })
    .await
}

/// Like `follow`, handing each line (unix milliseconds, text) to `on_line` instead of
/// printing it: the GitHub Action prints the same log its own way.
pub(crate) async fn follow_lines(
    client: &Client,
    id: i64,
    follow: bool,
    mut on_line: impl FnMut(i64, &str),
) -> Result<OperationState, ClientError> {
    let mut after = 0i64;
    loop {
        let page = client.log_page(id, after, follow).await?;
        if let Some(lines) = page.get("lines").and_then(Value::as_array) {
            for line in lines {
                after = line.get("seq").and_then(Value::as_i64).unwrap_or(after);
                let at = line.get("at").and_then(Value::as_i64).unwrap_or(0);
                let text = line.get("text").and_then(Value::as_str).unwrap_or_default();
                on_line(at, text);
            }
        }
        let state = page
            .get("state")
            .and_then(Value::as_str)
            .and_then(|s| OperationState::from_str(s).ok())
            .ok_or_else(|| ClientError::Decode("a log page without a state".into()))?;
        let finished = page
            .get("finished")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let more = page
            .get("lines")
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty());
        if !more && (finished || !follow) {
            return Ok(state);
        }
    }
}

/// `HH:MM:SS` (UTC) of unix milliseconds.
pub fn clock_time(millis: i64) -> String {
    let seconds = millis.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}
