//! What Slipway posts to GitHub, as JSON values: commit statuses, check run outputs
//! (steps table, log tail, annotations, the `Roll back` action) and deployment
//! statuses, cut to GitHub's limits. Pure: no IO.

use serde_json::{json, Value};

use crate::pipeline::model::{LogLine, OperationState, StepRecord, StepStatus};

/// GitHub refuses a commit or deployment status description over 140 characters.
pub const MAX_DESCRIPTION_CHARS: usize = 140;
/// A check run's `output.summary` and `output.text` may hold 65,535 characters.
pub const MAX_OUTPUT_CHARS: usize = 65_535;
/// At most 50 annotations per check run request; GitHub appends the annotations of
/// each update of a check run to those it has, so more are sent 50 at a time.
pub const MAX_ANNOTATIONS: usize = 50;
/// The most annotations Slipway sends for one check run (21 requests): a bound on what a
/// log full of configuration errors can cost in API calls.
pub const MAX_ANNOTATIONS_TOTAL: usize = 1_000;

/// Cuts text to `max` characters, marking the cut with `…`.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Keeps the end of a text within `max` characters, marking the cut at its start.
fn keep_tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let marker = "…\n";
    let skip = count - (max - marker.chars().count());
    format!("{marker}{}", text.chars().skip(skip).collect::<String>())
}

/// The commit status state of an operation state.
pub fn status_state(state: OperationState) -> &'static str {
    match state {
        OperationState::Queued | OperationState::Running => "pending",
        OperationState::Succeeded => "success",
        OperationState::Failed | OperationState::RolledBack | OperationState::RollbackFailed => {
            "failure"
        }
        // Nothing was deployed, and nothing went wrong with the code either.
        OperationState::Cancelled | OperationState::Superseded => "error",
    }
}

/// The check run conclusion of a final operation state.
pub fn conclusion(state: OperationState) -> &'static str {
    match state {
        OperationState::Succeeded => "success",
        OperationState::Cancelled => "cancelled",
        OperationState::Superseded => "skipped",
        _ => "failure",
    }
}

/// The deployment status state of an operation state.
pub fn deployment_state(state: OperationState) -> &'static str {
    match state {
        OperationState::Queued => "queued",
        OperationState::Running => "in_progress",
        OperationState::Succeeded => "success",
        OperationState::Failed | OperationState::RolledBack | OperationState::RollbackFailed => {
            "failure"
        }
        OperationState::Cancelled => "error",
        OperationState::Superseded => "inactive",
    }
}

pub fn commit_status(state: &str, description: &str, target_url: &str, context: &str) -> Value {
    json!({
        "state": state,
        "target_url": target_url,
        "description": truncate_chars(description, MAX_DESCRIPTION_CHARS),
        "context": context,
    })
}

pub fn deployment_status(
    state: &str,
    description: &str,
    log_url: &str,
    environment_url: &str,
) -> Value {
    json!({
        "state": state,
        "log_url": log_url,
        "target_url": log_url,
        "description": truncate_chars(description, MAX_DESCRIPTION_CHARS),
        "environment_url": environment_url,
        // Slipway says itself which deployment a new one replaced.
        "auto_inactive": false,
    })
}

/// The check run action that rolls the environment back.
pub fn rollback_action() -> Value {
    json!({ "label": "Roll back", "description": "Roll this environment back", "identifier": crate::github::trigger::ROLLBACK_ACTION })
}

/// A Markdown table of the steps and their durations.
pub fn steps_table(steps: &[StepRecord]) -> String {
    let mut table = String::from("| step | result | duration |\n|---|---|---|\n");
    for step in steps {
        let result = match step.status {
            StepStatus::Running => "running",
            StepStatus::Succeeded => "✅ succeeded",
            StepStatus::Warning => "⚠️ warning",
            StepStatus::Failed => "❌ failed",
            StepStatus::Skipped => "skipped",
        };
        let duration = step
            .finished_at
            .map(|end| {
                crate::pipeline::format_duration(std::time::Duration::from_millis(
                    (end - step.started_at).max(0) as u64,
                ))
            })
            .unwrap_or_default();
        let message = step
            .message
            .as_deref()
            .map(|m| format!(" — {}", m.replace('|', "\\|").replace('\n', " ")))
            .unwrap_or_default();
        table.push_str(&format!(
            "| {} | {result}{message} | {duration} |\n",
            step.step.to_string().replace('_', " ")
        ));
    }
    truncate_chars(&table, MAX_OUTPUT_CHARS)
}

/// The end of a log, as a fenced block within GitHub's limit.
pub fn log_tail(lines: &[LogLine]) -> String {
    let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let fence = "```\n";
    let body = keep_tail(
        &text.join("\n").replace("```", "'''"),
        MAX_OUTPUT_CHARS - 2 * fence.len() - 1,
    );
    format!("{fence}{body}\n{fence}")
}

/// An annotation of a configuration file line.
pub fn annotation(path: &str, line: usize, column: usize, message: &str) -> Value {
    let line = line.max(1);
    json!({
        "path": path,
        "start_line": line,
        "end_line": line,
        "start_column": column.max(1),
        "end_column": column.max(1),
        "annotation_level": "failure",
        "title": "slipway.yml is not valid",
        "message": truncate_chars(message, 60_000),
    })
}

/// Annotations for the configuration errors a log reports (`…/slipway.yml:3:5: message`).
/// Config files sit at the app's root, so the file name is the path in the repository.
pub fn annotations_from_log(lines: &[LogLine]) -> Vec<Value> {
    let mut found = Vec::new();
    for line in lines {
        for name in ["slipway.yml", ".slipway.yml", "Procfile", ".aptible.yml"] {
            let Some(at) = line.text.find(&format!("/{name}:")) else {
                continue;
            };
            let rest = &line.text[at + name.len() + 2..];
            let mut parts = rest.splitn(3, ':');
            let (Some(l), Some(c), Some(message)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let (Ok(l), Ok(c)) = (l.parse(), c.parse()) {
                found.push(annotation(name, l, c, message.trim()));
                break;
            }
        }
    }
    found.truncate(MAX_ANNOTATIONS_TOTAL);
    found
}

/// Splits a check run's output into the bodies GitHub takes: the first carries `output`
/// with the first 50 annotations, and each further one is an update of the same check
/// run (`PATCH`) with the same title and summary and the next 50 annotations, which
/// GitHub appends. With no annotations, there is one body and no update.
pub fn with_annotation_batches(output: Value, annotations: Vec<Value>) -> (Value, Vec<Value>) {
    let mut batches = annotations
        .chunks(MAX_ANNOTATIONS)
        .map(|chunk| chunk.to_vec());
    let mut first = output;
    if let Some(batch) = batches.next() {
        first["annotations"] = Value::Array(batch);
    }
    let updates = batches
        .map(|batch| {
            json!({
                "output": {
                    "title": first["title"].clone(),
                    "summary": first["summary"].clone(),
                    "annotations": batch,
                }
            })
        })
        .collect();
    (first, updates)
}

/// The end of a plain list of lines (a validation's build output), as a fenced block.
pub fn text_tail<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let lines: Vec<LogLine> = lines
        .into_iter()
        .map(|text| LogLine {
            seq: 0,
            at: 0,
            text: text.to_owned(),
        })
        .collect();
    log_tail(&lines)
}

/// A check run timestamp (ISO 8601) from unix milliseconds.
pub fn timestamp(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
