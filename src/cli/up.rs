//! `slipway up`: the quick start. Serves, deploys a folder to an environment, prints the
//! URL and where the admin token is, and on Ctrl-C stops the app and the server.

use std::path::Path;
use std::time::Duration;

use crate::cli::client::Client;
use crate::cli::commands::{resolve_app, shutdown_signal, upload};
use crate::cli::follow::follow;
use crate::cli::ServerArgs;
use crate::ids::EnvKey;
use crate::pipeline::model::OperationState;
use crate::pipeline::traits::Traffic;

pub async fn run(
    dir: &Path,
    env: &str,
    app: Option<String>,
    args: &ServerArgs,
) -> anyhow::Result<i32> {
    // A bad config is refused before a port is bound.
    let app = match resolve_app(app.as_deref(), dir) {
        Ok(app) => app,
        Err(code) => return Ok(code),
    };
    let server = crate::server::start(args.options()).await?;
    let token = std::fs::read_to_string(&server.admin_token_path)?;
    let client = Client::new(
        &format!("http://{}", server.api_addr),
        token.trim().to_owned(),
    );
    let env = EnvKey::new(app, env);
    println!(
        "slipway: API on http://{}, router on http://{}",
        server.api_addr, server.router_addr
    );
    let op = upload(&client, dir, &env).await?;
    println!(
        "slipway: deploying {} to {env} (operation {})",
        dir.display(),
        op.id
    );
    let state = follow(&client, op.id.0, true, false).await?;
    let url = server.state.router.url(&env);
    if state != OperationState::Succeeded {
        eprintln!("slipway: the deploy ended {state}; see the log above. The server keeps running: fix the app and run `slipway deploy {}`", dir.display());
    } else {
        println!();
        println!("slipway: {env} is live at {url}");
    }
    println!(
        "slipway: admin token in {}",
        server.admin_token_path.display()
    );
    println!("slipway: press Ctrl-C to stop the server and the app");
    shutdown_signal().await;
    println!("slipway: stopping {env} and the server");
    stop_environment(&server.state, &env).await;
    server.stop().await;
    Ok(if state == OperationState::Succeeded {
        0
    } else {
        1
    })
}

/// Stops every instance of an environment (SIGTERM, then SIGKILL after their grace) and
/// takes it off the router.
pub(crate) async fn stop_environment(state: &crate::server::AppState, env: &EnvKey) {
    let fx = &state.pipeline.fx;
    fx.traffic.switch(env, Vec::new()).await;
    let Ok(instances) = fx.store.instances(Some(env)).await else {
        return;
    };
    let stops = instances.iter().map(|instance| async move {
        let _ = fx.runtime.stop(instance, Duration::from_secs(10)).await;
        let _ = fx.store.remove_instance(&instance.id).await;
    });
    futures_util::future::join_all(stops).await;
}
