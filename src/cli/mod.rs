//! The command line: `slipway up`, `serve`, `validate`, and the client commands that
//! talk to a server. Parsing lives here; what each command does lives beside it.

mod access;
mod client;
pub(crate) mod commands;
pub(crate) mod follow;
pub(crate) mod up;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::server::RuntimeKind;

pub use client::{Client, ClientError};

#[derive(Parser, Debug)]
#[command(
    name = "slipway",
    version,
    about = "A self-hosted deploy orchestrator",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The GitHub Action's entry point: reads INPUT_* and GITHUB_* as the Actions runner sets them.
    Action,
    /// Quick start: serve, and deploy DIR to an environment with the local runtime.
    Up {
        /// The app folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value = "local")]
        env: String,
        #[arg(long)]
        app: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run the webhook server, API, router and pipeline.
    Serve {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Check a configuration: exit 0, or print FILE:LINE:COL: message lines and exit 1.
    Validate {
        /// A slipway.yml, .slipway.yml, Procfile or .aptible.yml; default: the current folder's.
        file: Option<PathBuf>,
    },
    /// Deploy a folder, a git ref, or an image.
    Deploy {
        /// The folder to deploy (its files are sent to the server; in a git folder, HEAD is the commit).
        dir: Option<PathBuf>,
        #[arg(long, conflicts_with_all = ["dir", "image"], requires = "reference")]
        git: Option<String>,
        #[arg(long = "ref", requires = "git")]
        reference: Option<String>,
        #[arg(long, conflicts_with = "dir")]
        image: Option<String>,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run the deploy again with the same release: only post_deploy runs.
    Redeploy {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Restart every instance (rolling: new ones healthy before old ones stop).
    Restart {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change the number of instances (`web=3`) and/or their memory size in MB.
    Scale {
        /// SERVICE=COUNT pairs.
        counts: Vec<String>,
        #[arg(long)]
        size: Option<u32>,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Roll back to the previous release, or to --to vN.
    Rollback {
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Hold an environment's requests at the router (`on`) or release them (`off`).
    Maintenance {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel an operation: a queued one at once, a running one rolls back.
    Cancel {
        operation: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List operations.
    Ops {
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        env: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List an environment's releases.
    Releases {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print an operation's log.
    Logs {
        operation: i64,
        /// Keep printing until the operation ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Internal: masks an instance's output into its log file (started by the local runtime).
    #[command(name = "__mask-log", hide = true)]
    MaskLog { file: PathBuf },
    /// Configuration variables of an environment.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// API tokens scoped to environments, with a role: read, deploy or admin.
    Tokens {
        #[command(subcommand)]
        action: access::TokensAction,
    },
    /// The activity report: every operation, who started it, its releases and times.
    Activity {
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        env: Option<String>,
        /// From this day (2026-11-01, UTC) or RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// To this day (included) or RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
        format: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Set variables: KEY=VALUE...
    Set {
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Build variables: given to the build hook; changing one rebuilds.
        #[arg(long)]
        build: bool,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove variables.
    Unset {
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List variable names (values are secrets and are not shown).
    List {
        /// Show the values too (an admin token only).
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `--app` and `--env`.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Default: `app:` of slipway.yml in the folder (or `.`), else the folder's name.
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long, default_value = "local", env = "SLIPWAY_ENV")]
    pub env: String,
}

/// How client commands find the server.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    #[arg(long, env = "SLIPWAY_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// Default: ./.slipway/admin.token.
    #[arg(long, env = "SLIPWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Return the operation id at once instead of waiting for the end.
    #[arg(long)]
    pub no_wait: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Server flags; each is also a `SLIPWAY_<FLAG>` variable.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The SQLite database, artifacts, build cache and logs.
    #[arg(long = "data", env = "SLIPWAY_DATA", default_value = "./.slipway")]
    pub data_dir: PathBuf,
    /// API, webhooks and dashboard.
    #[arg(long, env = "SLIPWAY_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// The HTTP router.
    #[arg(long, env = "SLIPWAY_ROUTER", default_value = "127.0.0.1:8080")]
    pub router: SocketAddr,
    /// How long the router waits for an instance's response headers before a 504.
    #[arg(long, env = "SLIPWAY_ROUTER_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = crate::config::parse_duration)]
    pub router_upstream_timeout: std::time::Duration,
    /// How long the router waits to connect to an instance before trying another (GET,
    /// HEAD) or answering 502.
    #[arg(long, env = "SLIPWAY_ROUTER_CONNECT_TIMEOUT", default_value = "5s", value_parser = crate::config::parse_duration)]
    pub router_connect_timeout: std::time::Duration,
    /// Threads serving the router's connections, each with its own event loop (default:
    /// one per core).
    #[arg(long, env = "SLIPWAY_ROUTER_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub router_workers: Option<u16>,
    /// How long a client of --listen may take to send a request's headers, or a webhook
    /// delivery's body; a slower one is cut off (slow-loris clients hold nothing).
    #[arg(long, env = "SLIPWAY_READ_TIMEOUT", default_value = "10s", value_parser = crate::config::parse_duration)]
    pub read_timeout: std::time::Duration,
    #[arg(long, env = "SLIPWAY_RUNTIME", value_enum, default_value = "local")]
    pub runtime: RuntimeKind,
    /// For links posted to GitHub.
    #[arg(long, env = "SLIPWAY_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// The secret of the GitHub webhook; required when GitHub is enabled.
    #[arg(long, env = "SLIPWAY_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// Authenticate as this GitHub App (with --github-private-key).
    #[arg(long, env = "SLIPWAY_GITHUB_APP_ID")]
    pub github_app_id: Option<String>,
    /// The GitHub App's private key (PEM file).
    #[arg(long, env = "SLIPWAY_GITHUB_PRIVATE_KEY", value_name = "FILE")]
    pub github_private_key: Option<PathBuf>,
    /// GitHub's REST API (GitHub Enterprise: https://HOST/api/v3).
    #[arg(
        long,
        env = "SLIPWAY_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// Repositories are fetched from {github-git-url}/{owner}/{repo}.git.
    #[arg(
        long,
        env = "SLIPWAY_GITHUB_GIT_URL",
        default_value = "https://github.com"
    )]
    pub github_git_url: String,
    /// owner/name globs of the repositories that may deploy (default: all).
    #[arg(long, env = "SLIPWAY_GITHUB_REPOS", value_name = "GLOB", num_args = 1.., value_delimiter = ',')]
    pub github_repos: Vec<String>,
}

/// Written by hand so that the token and the webhook secret never reach a log.
impl std::fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerArgs")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("router", &self.router)
            .field("runtime", &self.runtime)
            .field("options", &self.options())
            .finish_non_exhaustive()
    }
}

impl ServerArgs {
    pub fn options(&self) -> crate::server::ServerOptions {
        crate::server::ServerOptions {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            router: self.router,
            runtime: self.runtime,
            public_url: self.public_url.clone(),
            github_token: self.github_token.clone(),
            github: crate::github::GitHubOptions {
                webhook_secret: self.github_webhook_secret.clone(),
                token: self.github_token.clone(),
                app_id: self.github_app_id.clone(),
                private_key: self.github_private_key.clone(),
                api_url: self.github_api_url.clone(),
                git_url: self.github_git_url.clone(),
                repos: self.github_repos.clone(),
                public_url: String::new(),
            },
            output_masker: crate::server::own_binary(),
            router_options: crate::router::RouterOptions {
                upstream_timeout: self.router_upstream_timeout,
                connect_timeout: self.router_connect_timeout,
                workers: self
                    .router_workers
                    .map_or_else(crate::router::default_workers, usize::from),
            },
            read_timeout: self.read_timeout,
        }
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Up {
            dir,
            env,
            app,
            server,
        } => up::run(&dir, &env, app, &server).await,
        Command::Action => Ok(crate::action::run().await),
        Command::Serve { server } => commands::serve(&server).await,
        Command::Validate { file } => Ok(commands::validate(file.as_deref())),
        Command::Deploy {
            dir,
            git,
            reference,
            image,
            target,
            client,
        } => commands::deploy(dir, git, reference, image, &target, &client).await,
        Command::Redeploy { target, client } => {
            commands::simple_operation("redeploy", serde_json::Value::Null, &target, &client).await
        }
        Command::Restart { target, client } => {
            commands::simple_operation("restart", serde_json::Value::Null, &target, &client).await
        }
        Command::Scale {
            counts,
            size,
            target,
            client,
        } => match commands::scale_args(&counts, size) {
            Ok(args) => commands::simple_operation("scale", args, &target, &client).await,
            Err(message) => {
                eprintln!("{message}");
                Ok(2)
            }
        },
        Command::Rollback { to, target, client } => {
            let args = to.map_or(
                serde_json::Value::Null,
                |to| serde_json::json!({ "to": to }),
            );
            commands::simple_operation("rollback", args, &target, &client).await
        }
        Command::Maintenance {
            state,
            target,
            client,
        } => commands::maintenance(state == "on", &target, &client).await,
        Command::Cancel { operation, client } => commands::cancel(operation, &client).await,
        Command::Ops { app, env, client } => commands::ops(app, env, &client).await,
        Command::Releases { target, client } => commands::releases(&target, &client).await,
        Command::Logs {
            operation,
            follow,
            client,
        } => commands::logs(operation, follow, &client).await,
        Command::MaskLog { file } => Ok(crate::runtime::local::mask_log::run(&file)),
        Command::Config { action } => commands::config(action).await,
        Command::Tokens { action } => access::tokens(action).await,
        Command::Activity {
            app,
            env,
            since,
            until,
            format,
            client,
        } => access::activity(app, env, since, until, &format, &client).await,
    }
}
