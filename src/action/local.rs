//! Local mode (no `server-url`): the pipeline runs inside the job. A Slipway server is
//! started in this process on loopback ports with a throw-away data directory, the
//! workspace is deployed through the same HTTP API the CLI uses, and the operation is
//! linked to the job's commit so the server's GitHub reporter posts the commit status,
//! check run and deployment with the job's token. The step ends once GitHub has been
//! told everything (or a deadline passed), because the job's container goes away after.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::action::inputs::{Context, Inputs};
use crate::action::operation::{submit, watch};
use crate::action::report::Outcome;
use crate::action::target::head_sha;
use crate::action::workflow::Printer;
use crate::action::ActionError;
use crate::cli::Client;
use crate::github::db::{self, Link};
use crate::github::GitHubOptions;
use crate::ids::EnvKey;
use crate::server::{RunningServer, RuntimeKind, ServerOptions};

/// How long the step waits for GitHub to accept the reports after the operation ended.
const REPORT_DEADLINE: Duration = Duration::from_secs(60);

/// Where GitHub reports go: the repository and commit of the job.
struct Report {
    repository: String,
    sha: String,
}

/// Deploys the app folder (or the `image` input) to `env` inside the job.
pub async fn deploy(
    printer: &mut Printer,
    ctx: &Context,
    inputs: &Inputs,
    env: &EnvKey,
    app_dir: &Path,
) -> Result<Outcome, ActionError> {
    let report = match (&inputs.github_token, &ctx.repository, head_sha(ctx)) {
        (Some(_), Some(repository), Some(sha)) => Some(Report {
            repository: repository.clone(),
            sha,
        }),
        _ => None,
    };
    let data_dir =
        std::env::temp_dir().join(format!("slipway-action-{:016x}", rand::random::<u64>()));
    let runtime = if ctx.docker_host {
        RuntimeKind::Docker
    } else {
        RuntimeKind::Local
    };
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let options = ServerOptions {
        data_dir: data_dir.clone(),
        listen: loopback,
        router: loopback,
        runtime,
        public_url: None,
        github_token: inputs.github_token.clone(),
        github: GitHubOptions {
            // GitHub reporting is on when a webhook secret is set; no webhook reaches this
            // server, so any secret does.
            webhook_secret: report
                .as_ref()
                .map(|_| format!("{:032x}", rand::random::<u128>())),
            token: inputs.github_token.clone(),
            app_id: None,
            private_key: None,
            api_url: ctx.api_url.clone(),
            git_url: ctx.server_url.clone(),
            repos: Vec::new(),
            public_url: String::new(),
        },
        output_masker: crate::server::own_binary(),
        router_options: Default::default(),
        read_timeout: crate::server::DEFAULT_READ_TIMEOUT,
    };
    printer.line(&format!(
        "Slipway: running the pipeline in this job ({} runtime)",
        match runtime {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Local => "local",
        }
    ));
    let server = crate::server::start(options).await?;
    let result = run(printer, &server, inputs, env, app_dir, report.as_ref()).await;
    if runtime == RuntimeKind::Local {
        // The job's processes end with the job: stop them now, cleanly, instead.
        crate::cli::up::stop_environment(&server.state, env).await;
    }
    server.stop().await;
    if runtime == RuntimeKind::Local {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

async fn run(
    printer: &mut Printer,
    server: &RunningServer,
    inputs: &Inputs,
    env: &EnvKey,
    app_dir: &Path,
    report: Option<&Report>,
) -> Result<Outcome, ActionError> {
    let token = std::fs::read_to_string(&server.admin_token_path)
        .map_err(|e| ActionError::Local(format!("cannot read the admin token: {e}")))?;
    let client = Client::new(
        &format!("http://{}", server.api_addr),
        token.trim().to_owned(),
    );
    let op = match &inputs.image {
        Some(image) => {
            let source = json!({ "type": "image", "reference": image });
            submit(&client, env, "deploy", Some(source), Value::Null).await?
        }
        None => {
            let dir: PathBuf = app_dir.to_path_buf();
            let tarball = tokio::task::spawn_blocking(move || crate::source::upload::pack(&dir))
                .await
                .map_err(|e| ActionError::Local(e.to_string()))?
                .map_err(|e| ActionError::Local(e.to_string()))?;
            let commit = report.map(|r| r.sha.clone());
            client.upload(env, tarball, commit.as_deref()).await?
        }
    };
    if let Some(report) = report {
        let pool = server.state.sqlite.pool();
        let link = Link {
            operation_id: op.id.0,
            app: env.app.to_string(),
            env: env.env.to_string(),
            repository: report.repository.clone(),
            head_sha: report.sha.clone(),
            installation_id: None,
            delivery_id: None,
            check_run_id: None,
            deployment_id: None,
            reported_phase: 0,
            reported_steps: 0,
        };
        db::insert_link(pool, &link)
            .await
            .map_err(|e| ActionError::Local(e.to_string()))?;
        // The pipeline may have told the reporter before the link existed: tell it again.
        server
            .state
            .pipeline
            .fx
            .reporter
            .operation_changed(op.id)
            .await;
    }
    let outcome = watch(printer, &client, &op, "deploy", true).await?;
    if report.is_some() && !reported(server, op.id.0).await {
        printer.annotation(
            "warning",
            None,
            "GitHub has not accepted every status of this deploy within 60 s; some commit statuses, check runs or deployment statuses may be missing",
        );
    }
    Ok(outcome)
}

/// Waits until the operation's reports are all queued and GitHub has taken them all.
async fn reported(server: &RunningServer, operation: i64) -> bool {
    let pool = server.state.sqlite.pool();
    let deadline = Instant::now() + REPORT_DEADLINE;
    loop {
        let finished =
            matches!(db::link(pool, operation).await, Ok(Some(link)) if link.reported_phase >= 3);
        let empty = matches!(db::next_entry(pool).await, Ok(None));
        if finished && empty {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
