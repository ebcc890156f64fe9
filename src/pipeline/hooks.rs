//! Running a hook: its commands in order in an ephemeral instance, the first failure
//! failing the hook, with an error that says how it failed.

use crate::pipeline::log::OperationLog;
use crate::pipeline::model::Artifact;
use crate::pipeline::traits::{CommandOutcome, CommandSpec, Effects};

/// Runs the commands of a hook; `Err` says which command failed and how.
pub async fn run_hook(
    fx: &Effects,
    artifact: &Artifact,
    specs: &[CommandSpec],
    log: &OperationLog,
) -> Result<(), String> {
    for (index, spec) in specs.iter().enumerate() {
        let outcome = fx
            .runtime
            .run(artifact, spec, log)
            .await
            .map_err(|e| e.to_string())?;
        if !outcome.success() {
            let which = if specs.len() > 1 {
                format!("command {} of {}", index + 1, specs.len())
            } else {
                "it".to_owned()
            };
            return Err(format!("{which} {}", describe(&outcome, spec)));
        }
    }
    Ok(())
}

/// How a command ended, in words.
pub fn describe(outcome: &CommandOutcome, spec: &CommandSpec) -> String {
    match outcome {
        CommandOutcome::Exited(code) => format!("exited with code {code}"),
        CommandOutcome::Signalled(signal) => format!("was killed by signal {signal}"),
        CommandOutcome::TimedOut => format!(
            "timed out after {} and was killed",
            crate::pipeline::format_duration(spec.timeout)
        ),
    }
}
