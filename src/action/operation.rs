//! Asking a Slipway server for an operation and following it to its end, in the job's
//! log: one `::group::` per step of the pipeline (each step's log starts with a
//! `==> Step` line), every line with its time. Used by both modes: remote mode asks the
//! user's server, local mode the server it started inside the job.

use serde_json::{json, Value};

use crate::action::report::Outcome;
use crate::action::workflow::Printer;
use crate::action::ActionError;
use crate::cli::follow::{clock_time, follow_lines};
use crate::cli::Client;
use crate::ids::EnvKey;
use crate::pipeline::model::{Operation, Step};
use crate::pipeline::steps::step_title;

/// Who the server records as having started the operation.
pub const INITIATOR: &str = "github-action";

/// Submits an operation (`deploy` with a source, or `redeploy`, `rollback`…).
pub async fn submit(
    client: &Client,
    env: &EnvKey,
    kind: &str,
    source: Option<Value>,
    args: Value,
) -> Result<Operation, ActionError> {
    let mut body = json!({ "kind": kind, "args": args, "initiator": INITIATOR });
    if let Some(source) = source {
        body["source"] = source;
    }
    Ok(client.operation(env, body).await?)
}

/// The pipeline's steps, as the log titles them (`==> build`).
const STEPS: [Step; 13] = [
    Step::Resolve,
    Step::Build,
    Step::BeforeRelease,
    Step::StopOld,
    Step::StartInstances,
    Step::DeployHook,
    Step::Switch,
    Step::Drain,
    Step::PostDeploy,
    Step::Watch,
    Step::Confirm,
    Step::AfterHooks,
    Step::Rollback,
];

/// Prints one log line: a step's first line (`==> build`) opens its group; the other
/// `==>` lines (the operation's first and last) close the open group and stay visible.
pub fn print_line(printer: &mut Printer, at: i64, text: &str) {
    match text.strip_prefix("==> ").map(str::trim) {
        Some(title) if STEPS.iter().any(|step| step_title(*step) == title) => printer.group(title),
        Some(_) => {
            printer.end_group();
            printer.line(&format!("{} {text}", clock_time(at)));
        }
        None => printer.line(&format!("{} {text}", clock_time(at))),
    }
}

/// Follows operation `op` to its end (or returns at once when the step does not wait)
/// and reads what it ended with.
pub async fn watch(
    printer: &mut Printer,
    client: &Client,
    op: &Operation,
    command: &str,
    wait: bool,
) -> Result<Outcome, ActionError> {
    printer.line(&format!(
        "Slipway: operation {} ({} of {}) queued",
        op.id, op.kind, op.env
    ));
    if !wait {
        return Ok(Outcome {
            command: command.to_owned(),
            target: Some(op.env.to_string()),
            operation_id: Some(op.id.0),
            status: "queued".into(),
            success: true,
            ..Outcome::default()
        });
    }
    let result = follow_lines(client, op.id.0, true, |at, text| {
        print_line(printer, at, text)
    })
    .await;
    printer.end_group();
    result?;
    let detail = client.get_operation(op.id.0).await?;
    let mut outcome = Outcome::from_operation(command, &detail);
    outcome.url = environment_url(client, &op.env).await;
    Ok(outcome)
}

/// The environment's URL, as the server routes it.
async fn environment_url(client: &Client, env: &EnvKey) -> Option<String> {
    let releases = client.releases(env).await.ok()?;
    releases
        .get("url")
        .and_then(Value::as_str)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_step_is_a_group() {
        let out = Shared::default();
        let mut printer = Printer::new(Box::new(out.clone()), &[]);
        for text in [
            "==> deploy of shop/staging started by admin token",
            "==> build",
            "    building",
            "==> switch traffic",
            "    switched",
            "==> succeeded: deploy succeeded",
        ] {
            print_line(&mut printer, 3_723_000, text);
        }
        drop(printer);
        let text = String::from_utf8(out.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(
            text,
            "01:02:03 ==> deploy of shop/staging started by admin token\n::group::build\n01:02:03     building\n::endgroup::\n::group::switch traffic\n01:02:03     switched\n::endgroup::\n01:02:03 ==> succeeded: deploy succeeded\n"
        );
    }
}
