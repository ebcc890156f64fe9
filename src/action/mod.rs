//! `slipway action`: the entry point of the GitHub Action (action.yml, Dockerfile).
//!
//! It reads what the Actions runner gives a step (`INPUT_*`, `GITHUB_*`, the event at
//! `GITHUB_EVENT_PATH`), masks every secret before printing anything, and then either
//! asks a Slipway server to run the operation (remote mode: `server-url` + `api-token`)
//! or runs the pipeline inside the job (local mode). Both stream the operation's log
//! into the job's log, one group per step; write `operation-id`, `release`, `status` and
//! `url` to `$GITHUB_OUTPUT` and a table to `$GITHUB_STEP_SUMMARY`; annotate
//! configuration errors on their file, line and column; and fail the step when the
//! operation fails.
//!
//! **Invariant:** everything the action prints goes through `workflow::Printer`, which
//! has announced every secret with `::add-mask::` first.

pub mod files;
pub mod inputs;
pub mod local;
pub mod operation;
pub mod remote;
pub mod report;
pub mod target;
pub mod workflow;

use serde_json::{json, Value};

use crate::action::inputs::{ActionCommand, Context, Environment, Inputs};
use crate::action::report::Outcome;
use crate::action::workflow::Printer;
use crate::ids::EnvKey;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Input(String),
    #[error("the configuration is not valid: {0} problem(s), annotated above")]
    Config(usize),
    #[error(transparent)]
    Client(#[from] crate::cli::ClientError),
    #[error("cannot start the pipeline in this job: {0}")]
    Server(#[from] crate::server::ServerError),
    #[error("{0}")]
    Local(String),
}

/// Runs the action with the process's environment; returns the exit code.
pub async fn run() -> i32 {
    let env: Environment = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    run_with(&env).await
}

/// Runs the action with the given environment; returns the exit code (0: success).
pub async fn run_with(env: &Environment) -> i32 {
    let inputs = Inputs::read(env);
    let ctx = Context::read(env);
    let mut printer = Printer::stdout(&inputs.secrets());
    let outcome = match execute(&mut printer, &ctx, &inputs).await {
        Ok(outcome) => outcome,
        Err(error) => {
            printer.end_group();
            printer.error(&error.to_string());
            Outcome {
                command: inputs.command.clone().unwrap_or_else(|| "deploy".into()),
                status: "error".into(),
                message: Some(error.to_string()),
                ..Outcome::default()
            }
        }
    };
    finish(&mut printer, &ctx, &outcome)
}

/// Writes the outputs and the summary, and says how the step ended.
fn finish(printer: &mut Printer, ctx: &Context, outcome: &Outcome) -> i32 {
    let outputs: Vec<(&str, String)> = outcome
        .outputs()
        .into_iter()
        .map(|(name, value)| (name, printer.mask_text(&value)))
        .collect();
    if let Some(path) = &ctx.output_file {
        if let Err(error) = files::write_outputs(path, &outputs) {
            printer.error(&error.to_string());
            return 1;
        }
    }
    if let Some(path) = &ctx.summary_file {
        if let Err(error) = files::write_summary(path, &printer.mask_text(&outcome.summary())) {
            printer.annotation("warning", None, &error.to_string());
        }
    }
    let mut line = format!("Slipway: {}", outcome.command);
    if let Some(target) = &outcome.target {
        line.push_str(&format!(" of {target}"));
    }
    line.push_str(&format!(": {}", outcome.status));
    if let Some(id) = outcome.operation_id {
        line.push_str(&format!(" (operation {id}"));
        if let Some(release) = &outcome.release {
            line.push_str(&format!(", {release}"));
        }
        line.push(')');
    }
    if let Some(message) = &outcome.message {
        line.push_str(&format!(": {message}"));
    }
    printer.line(&line);
    if outcome.success {
        0
    } else {
        if outcome.operation_id.is_some() {
            printer.error(&line);
        }
        1
    }
}

async fn execute(
    printer: &mut Printer,
    ctx: &Context,
    inputs: &Inputs,
) -> Result<Outcome, ActionError> {
    let name = inputs.command.as_deref().unwrap_or("deploy");
    let command = ActionCommand::parse(name).ok_or_else(|| {
        ActionError::Input(format!(
            "`command: {name}` is not one the action knows; use one of {}",
            ActionCommand::NAMES
        ))
    })?;
    if inputs.remote() {
        // Checked before anything else: half a remote configuration must not silently
        // run the pipeline in the job instead.
        remote::client(inputs)?;
    }
    match command {
        ActionCommand::Validate => validate(printer, ctx, inputs),
        ActionCommand::Deploy => deploy(printer, ctx, inputs).await,
        _ => other(printer, ctx, inputs, command).await,
    }
}

/// Loads the configuration, annotating its errors.
fn configuration(
    printer: &mut Printer,
    ctx: &Context,
    inputs: &Inputs,
) -> Result<crate::config::model::AppConfig, ActionError> {
    target::load(ctx, inputs).map_err(|errors| {
        target::annotate(printer, ctx, &errors);
        ActionError::Config(errors.0.len())
    })
}

fn validate(printer: &mut Printer, ctx: &Context, inputs: &Inputs) -> Result<Outcome, ActionError> {
    let outcome = Outcome {
        command: "validate".into(),
        ..Outcome::default()
    };
    match target::load(ctx, inputs) {
        Ok(config) => {
            let services: Vec<String> = config.services.keys().map(|s| s.to_string()).collect();
            let message = format!(
                "the configuration is valid (app {}, services: {})",
                config.app,
                services.join(", ")
            );
            Ok(Outcome {
                status: "valid".into(),
                message: Some(message),
                success: true,
                ..outcome
            })
        }
        Err(errors) => {
            target::annotate(printer, ctx, &errors);
            let problems = errors
                .0
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}: {}",
                        target::repository_path(ctx, &e.file),
                        e.line,
                        e.column,
                        e.message
                    )
                })
                .collect();
            Ok(Outcome {
                status: "invalid".into(),
                message: Some(format!(
                    "{} problem(s) in the configuration",
                    errors.0.len()
                )),
                problems,
                ..outcome
            })
        }
    }
}

async fn deploy(
    printer: &mut Printer,
    ctx: &Context,
    inputs: &Inputs,
) -> Result<Outcome, ActionError> {
    let config = configuration(printer, ctx, inputs)?;
    let app = inputs.app.clone().unwrap_or_else(|| config.app.to_string());
    let environments = target::environments(ctx, inputs, Some(&config));
    let env = match environments.as_slice() {
        [] => {
            let message = format!(
                "no environment of {app} deploys this {} event: set the `environment` input, or name this branch, tag or pull request under `environments:` in slipway.yml",
                ctx.event_name.as_deref().unwrap_or("(unknown)")
            );
            printer.notice(&message);
            return Ok(Outcome {
                command: "deploy".into(),
                status: "skipped".into(),
                message: Some(message),
                success: true,
                ..Outcome::default()
            });
        }
        [env] => EnvKey::new(app, env.clone()),
        several => {
            return Err(ActionError::Input(format!(
                "this event deploys {app} to several environments ({}); a step deploys one: set the `environment` input",
                several.join(", ")
            )))
        }
    };
    if inputs.remote() {
        remote::run(
            printer,
            ctx,
            inputs,
            ActionCommand::Deploy,
            &env,
            Value::Null,
        )
        .await
    } else {
        local::deploy(printer, ctx, inputs, &env, &target::app_dir(ctx, inputs)).await
    }
}

/// `redeploy`, `rollback`, `restart`, `scale`: operations on what a server already runs.
async fn other(
    printer: &mut Printer,
    ctx: &Context,
    inputs: &Inputs,
    command: ActionCommand,
) -> Result<Outcome, ActionError> {
    if !inputs.remote() {
        return Err(ActionError::Input(format!(
            "`{}` needs a Slipway server (`server-url` and `api-token`): a run inside the job starts with no release to {}",
            command.as_str(),
            command.as_str()
        )));
    }
    let env_name = inputs.environment.clone().ok_or_else(|| {
        ActionError::Input(format!(
            "`{}` needs the `environment` input",
            command.as_str()
        ))
    })?;
    let app = match &inputs.app {
        Some(app) => app.clone(),
        None => configuration(printer, ctx, inputs)?.app.to_string(),
    };
    let args = match command {
        ActionCommand::Scale => {
            let counts: Vec<String> = inputs
                .scale
                .as_deref()
                .unwrap_or_default()
                .split([' ', ',', '\n'])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let size = match &inputs.size {
                Some(size) => Some(size.parse::<u32>().map_err(|_| {
                    ActionError::Input(format!("`size: {size}` is not a whole number of MB"))
                })?),
                None => None,
            };
            crate::cli::commands::scale_args(&counts, size).map_err(ActionError::Input)?
        }
        ActionCommand::Rollback => inputs
            .to
            .as_ref()
            .map_or(Value::Null, |to| json!({ "to": to })),
        _ => Value::Null,
    };
    let env = EnvKey::new(app, env_name);
    remote::run(printer, ctx, inputs, command, &env, args).await
}
