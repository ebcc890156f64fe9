//! The client commands and `serve`/`validate`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cli::client::Client;
use crate::cli::follow::follow;
use crate::cli::{ClientArgs, ConfigAction, ServerArgs, Target};
use crate::config;
use crate::ids::EnvKey;
use crate::pipeline::model::{Operation, OperationState};

/// `slipway serve`: runs until SIGINT or SIGTERM.
pub async fn serve(args: &ServerArgs) -> anyhow::Result<i32> {
    let server = crate::server::start(args.options()).await?;
    println!(
        "slipway: API on http://{}, router on http://{}",
        server.api_addr, server.router_addr
    );
    println!(
        "slipway: admin token in {}",
        server.admin_token_path.display()
    );
    shutdown_signal().await;
    println!("slipway: stopping (running apps keep running)");
    server.stop().await;
    Ok(0)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `slipway validate [FILE]`.
pub fn validate(file: Option<&Path>) -> i32 {
    let result = match file {
        Some(file) => {
            config::load_file(file, &folder_name(file.parent().unwrap_or(Path::new("."))))
        }
        None => config::load_dir(Path::new("."), &folder_name(Path::new("."))),
    };
    match result {
        Ok(config) => {
            let services: Vec<String> = config.services.keys().map(|s| s.to_string()).collect();
            println!(
                "{}: valid (app {}, services: {})",
                file.map_or(".".into(), |f| f.display().to_string()),
                config.app,
                services.join(", ")
            );
            0
        }
        Err(errors) => {
            eprintln!("{errors}");
            1
        }
    }
}

/// The name of a folder, for the default app name.
pub fn folder_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name()
        .map_or_else(|| "app".to_owned(), |n| n.to_string_lossy().into_owned())
}

/// `--app`, or the app of the folder's config; a bad config is refused here, before
/// anything is sent.
pub fn resolve_app(given: Option<&str>, dir: &Path) -> Result<String, i32> {
    if let Some(app) = given {
        return Ok(app.to_owned());
    }
    match config::load_dir(dir, &folder_name(dir)) {
        Ok(config) => Ok(config.app.to_string()),
        Err(errors) => {
            eprintln!("{errors}");
            Err(1)
        }
    }
}

pub fn client(args: &ClientArgs) -> anyhow::Result<Client> {
    let token = crate::cli::client::find_token(args.token.clone(), Path::new(".slipway"))?;
    Ok(Client::new(&args.server, token))
}

/// The HEAD commit of a git folder, if it is one.
pub fn git_head(dir: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `slipway deploy [DIR] | --git URL --ref REF | --image REF`.
pub async fn deploy(
    dir: Option<PathBuf>,
    git: Option<String>,
    reference: Option<String>,
    image: Option<String>,
    target: &Target,
    args: &ClientArgs,
) -> anyhow::Result<i32> {
    let client = client(args)?;
    let op = match (git, image) {
        (Some(url), _) => {
            let app = target.app.clone().unwrap_or_else(|| repo_name(&url));
            let env = EnvKey::new(app, target.env.clone());
            let source =
                json!({ "type": "git", "url": url, "reference": reference.unwrap_or_default() });
            client
                .operation(
                    &env,
                    json!({ "kind": "deploy", "source": source, "initiator": "cli" }),
                )
                .await?
        }
        (None, Some(image)) => {
            let app = target.app.clone().unwrap_or_else(|| repo_name(&image));
            let env = EnvKey::new(app, target.env.clone());
            let source = json!({ "type": "image", "reference": image });
            client
                .operation(
                    &env,
                    json!({ "kind": "deploy", "source": source, "initiator": "cli" }),
                )
                .await?
        }
        (None, None) => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let app = match resolve_app(target.app.as_deref(), &dir) {
                Ok(app) => app,
                Err(code) => return Ok(code),
            };
            let env = EnvKey::new(app, target.env.clone());
            upload(&client, &dir, &env).await?
        }
    };
    finish(&client, op, args).await
}

/// Packs and uploads a folder as a deploy.
pub async fn upload(client: &Client, dir: &Path, env: &EnvKey) -> anyhow::Result<Operation> {
    let packed_dir = dir.to_path_buf();
    let tarball =
        tokio::task::spawn_blocking(move || crate::source::upload::pack(&packed_dir)).await??;
    let commit = git_head(dir);
    Ok(client.upload(env, tarball, commit.as_deref()).await?)
}

fn repo_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("app");
    let name = last
        .trim_end_matches(".git")
        .split(['@', ':'])
        .next()
        .unwrap_or("app");
    name.to_lowercase()
}

/// Waits for an operation (unless --no-wait), streaming its log; exit 0 only on success.
pub async fn finish(client: &Client, op: Operation, args: &ClientArgs) -> anyhow::Result<i32> {
    if args.no_wait {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&op)?);
        } else {
            println!("{}", op.id);
        }
        return Ok(0);
    }
    if !args.json {
        println!("operation {} ({} of {}) queued", op.id, op.kind, op.env);
    }
    let state = follow(client, op.id.0, true, args.json).await?;
    let detail = client.get_operation(op.id.0).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        let message = detail
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        println!("operation {} {state}: {message}", op.id);
    }
    Ok(if state == OperationState::Succeeded {
        0
    } else {
        1
    })
}

/// `redeploy`, `rollback`: operations on the current folder's app.
pub async fn simple_operation(
    kind: &str,
    args_json: Value,
    target: &Target,
    args: &ClientArgs,
) -> anyhow::Result<i32> {
    let client = client(args)?;
    let app = match resolve_app(target.app.as_deref(), Path::new(".")) {
        Ok(app) => app,
        Err(code) => return Ok(code),
    };
    let env = EnvKey::new(app, target.env.clone());
    let op = client
        .operation(
            &env,
            json!({ "kind": kind, "args": args_json, "initiator": "cli" }),
        )
        .await?;
    finish(&client, op, args).await
}

/// `web=3 worker=1` and `--size 1024` as the scale operation's arguments.
pub fn scale_args(counts: &[String], size: Option<u32>) -> Result<Value, String> {
    let mut services = serde_json::Map::new();
    for pair in counts {
        let (name, count) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not SERVICE=COUNT (e.g. web=3)"))?;
        let count: u32 = count
            .parse()
            .map_err(|_| format!("`{pair}`: the count must be a whole number"))?;
        services.insert(name.to_owned(), json!(count));
    }
    if services.is_empty() && size.is_none() {
        return Err("nothing to scale: give SERVICE=COUNT (e.g. web=3) and/or --size MB".into());
    }
    let mut args = json!({ "services": services });
    if let Some(size) = size {
        args["size"] = json!(size);
    }
    Ok(args)
}

/// `slipway maintenance on|off`.
pub async fn maintenance(on: bool, target: &Target, args: &ClientArgs) -> anyhow::Result<i32> {
    let client = client(args)?;
    let app = match resolve_app(target.app.as_deref(), Path::new(".")) {
        Ok(app) => app,
        Err(code) => return Ok(code),
    };
    let env = EnvKey::new(app, target.env.clone());
    let answer = client.maintenance(&env, on).await?;
    if args.json {
        println!("{answer}");
    } else if on {
        println!("{env} is in maintenance: requests are held (up to 30s each, then 503) until `slipway maintenance off`");
    } else {
        println!("{env} is serving again");
    }
    Ok(0)
}

pub async fn cancel(id: i64, args: &ClientArgs) -> anyhow::Result<i32> {
    let client = client(args)?;
    client.cancel(id).await?;
    println!("operation {id}: cancel requested");
    Ok(0)
}

pub async fn ops(
    app: Option<String>,
    env: Option<String>,
    args: &ClientArgs,
) -> anyhow::Result<i32> {
    let client = client(args)?;
    let ops = client.operations(app.as_deref(), env.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&ops)?);
        return Ok(0);
    }
    println!(
        "{:>6}  {:<24} {:<10} {:<16} {:<9} {:<12}",
        "ID", "ENVIRONMENT", "KIND", "STATE", "RELEASE", "COMMIT"
    );
    for op in ops {
        let release = op.release_after.map(|r| r.to_string()).unwrap_or_default();
        let commit: String = op
            .commit
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(12)
            .collect();
        let (id, env, kind, state) = (
            op.id.to_string(),
            op.env.to_string(),
            op.kind.to_string(),
            op.state.to_string(),
        );
        println!("{id:>6}  {env:<24} {kind:<10} {state:<16} {release:<9} {commit:<12}");
    }
    Ok(0)
}

pub async fn releases(target: &Target, args: &ClientArgs) -> anyhow::Result<i32> {
    let client = client(args)?;
    let app = match resolve_app(target.app.as_deref(), Path::new(".")) {
        Ok(app) => app,
        Err(code) => return Ok(code),
    };
    let answer = client
        .releases(&EnvKey::new(app, target.env.clone()))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(0);
    }
    println!(
        "{}",
        answer
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    for release in answer
        .get("releases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let current = if release.get("current").and_then(Value::as_bool) == Some(true) {
            "*"
        } else {
            " "
        };
        let name = release
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let commit: String = release
            .get("commit")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(12)
            .collect();
        let config = release
            .get("config_hash")
            .and_then(Value::as_str)
            .unwrap_or_default();
        println!("{current} {name:<6} commit {commit:<12} config {config}");
    }
    Ok(0)
}

pub async fn logs(id: i64, follow_log: bool, args: &ClientArgs) -> anyhow::Result<i32> {
    let client = client(args)?;
    let state = follow(&client, id, follow_log, false).await?;
    if follow_log {
        println!("operation {id} {state}");
    }
    Ok(0)
}

pub async fn config(action: ConfigAction) -> anyhow::Result<i32> {
    let (target, args) = match &action {
        ConfigAction::Set { target, client, .. }
        | ConfigAction::Unset { target, client, .. }
        | ConfigAction::List { target, client, .. } => (target.clone(), client.clone()),
    };
    let client = client(&args)?;
    let app = match resolve_app(target.app.as_deref(), Path::new(".")) {
        Ok(app) => app,
        Err(code) => return Ok(code),
    };
    let env = EnvKey::new(app, target.env.clone());
    match action {
        ConfigAction::Set { pairs, build, .. } => {
            let mut set = Vec::new();
            for pair in pairs {
                let Some((key, value)) = pair.split_once('=') else {
                    eprintln!("`{pair}` is not KEY=VALUE");
                    return Ok(2);
                };
                set.push(json!({ "key": key, "value": value, "build": build }));
            }
            let count = set.len();
            let answer = client.change_variables(&env, json!({ "set": set })).await?;
            if build {
                println!(
                    "{count} build variable(s) set on {env}; the next deploy rebuilds with them"
                );
            } else {
                println!("{count} variable(s) set on {env}");
            }
            return follow_configure(&client, answer, &args).await;
        }
        ConfigAction::Unset { keys, .. } => {
            let answer = client
                .change_variables(&env, json!({ "unset": keys }))
                .await?;
            println!("unset on {env}");
            return follow_configure(&client, answer, &args).await;
        }
        ConfigAction::List { reveal, .. } => {
            let answer = client.variables(&env, reveal).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                for var in answer
                    .get("variables")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let key = var.get("key").and_then(Value::as_str).unwrap_or_default();
                    let build = if var.get("build").and_then(Value::as_bool) == Some(true) {
                        " (build)"
                    } else {
                        ""
                    };
                    // Values come only with --reveal (and an admin token).
                    let value = var.get("value").and_then(Value::as_str).unwrap_or("****");
                    println!("{key}={value}{build}");
                }
            }
        }
    }
    Ok(0)
}

/// Follows the `configure` operation that a variable change started, if it started one.
async fn follow_configure(
    client: &Client,
    answer: Value,
    args: &ClientArgs,
) -> anyhow::Result<i32> {
    match answer.get("operation").filter(|op| !op.is_null()) {
        Some(op) => {
            let op: Operation = serde_json::from_value(op.clone())?;
            finish(client, op, args).await
        }
        None => {
            println!("no release is serving yet: the next deploy uses them");
            Ok(0)
        }
    }
}
