//! Remote mode (`server-url` and `api-token`): the user's Slipway server runs the
//! operation; the step asks for it, streams its log and reports how it ended.

use serde_json::{json, Value};

use crate::action::inputs::{ActionCommand, Context, Inputs};
use crate::action::operation::{submit, watch};
use crate::action::report::Outcome;
use crate::action::target::head_sha;
use crate::action::workflow::Printer;
use crate::action::ActionError;
use crate::cli::Client;
use crate::ids::EnvKey;

/// The client of the server the inputs name.
pub fn client(inputs: &Inputs) -> Result<Client, ActionError> {
    match (&inputs.server_url, &inputs.api_token) {
        (Some(url), Some(token)) => Ok(Client::new(url, token.clone())),
        (None, _) => Err(ActionError::Input(
            "`api-token` is set but `server-url` is not: give both to use a Slipway server, or neither to run the pipeline in the job".into(),
        )),
        (_, None) => Err(ActionError::Input(
            "`server-url` is set but `api-token` is not: create a token with `slipway tokens create` and pass it from a secret, e.g. `api-token: ${{ secrets.SLIPWAY_TOKEN }}`".into(),
        )),
    }
}

/// What a deploy deploys: the `image` input, or the job's commit of the repository, which
/// the server fetches from `{GITHUB_SERVER_URL}/{GITHUB_REPOSITORY}.git`.
pub fn deploy_source(ctx: &Context, inputs: &Inputs) -> Result<Value, ActionError> {
    if let Some(image) = &inputs.image {
        return Ok(json!({ "type": "image", "reference": image }));
    }
    let (Some(repository), Some(sha)) = (&ctx.repository, head_sha(ctx)) else {
        return Err(ActionError::Input(
            "nothing to deploy: GITHUB_REPOSITORY and GITHUB_SHA are not set (run in a workflow) and no `image` is given".into(),
        ));
    };
    let url = format!("{}/{repository}.git", ctx.server_url.trim_end_matches('/'));
    Ok(json!({ "type": "git", "url": url, "reference": sha }))
}

/// Runs `command` on `env` on the server.
pub async fn run(
    printer: &mut Printer,
    ctx: &Context,
    inputs: &Inputs,
    command: ActionCommand,
    env: &EnvKey,
    args: Value,
) -> Result<Outcome, ActionError> {
    let client = client(inputs)?;
    let source = match command {
        ActionCommand::Deploy => Some(deploy_source(ctx, inputs)?),
        _ => None,
    };
    let op = submit(&client, env, command.as_str(), source, args).await?;
    watch(printer, &client, &op, command.as_str(), inputs.wait).await
}
