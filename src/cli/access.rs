//! `slipway tokens create|list|revoke` and `slipway activity`: who may do what, and
//! what was done. The activity report is copied to stdout as it arrives, so a report of
//! any size never sits in memory.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::cli::client::{find_token, ClientError};
use crate::cli::ClientArgs;

#[derive(Subcommand, Debug)]
pub enum TokensAction {
    /// Create a token; its text is printed once (only its hash is kept).
    Create {
        /// The environment(s) it may use; with --app, of that app only. `*` for all.
        #[arg(long = "env", required = true)]
        envs: Vec<String>,
        /// Only this app's environments (default: every app's).
        #[arg(long)]
        app: Option<String>,
        /// read (GET only), deploy (operations, variables) or admin (everything).
        #[arg(long, default_value = "read", value_parser = ["read", "deploy", "admin"])]
        role: String,
        /// A name shown in the activity report as `token NAME`.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens (never their text).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// A request to the server with the CLI's token, answering JSON or a refusal.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(args: &ClientArgs) -> Result<Api, ClientError> {
        let token = find_token(args.token.clone(), Path::new(".slipway"))?;
        Ok(Api {
            base: args.server.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(body);
        Err(ClientError::Refused {
            status: status.as_u16(),
            message,
        })
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let response = self.send(request).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// `slipway tokens ...`.
pub async fn tokens(action: TokensAction) -> anyhow::Result<i32> {
    match action {
        TokensAction::Create {
            envs,
            app,
            role,
            name,
            client,
        } => {
            let api = Api::new(&client)?;
            let app = app.unwrap_or_else(|| "*".to_owned());
            let environments: Vec<String> = envs
                .iter()
                .map(|env| {
                    if env == "*" && app == "*" {
                        "*".to_owned()
                    } else {
                        format!("{app}/{env}")
                    }
                })
                .collect();
            let body = json!({ "name": name, "role": role, "environments": environments });
            let created = api
                .json(api.http.post(api.url("/api/v1/tokens")).json(&body))
                .await?;
            if client.json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                let token = created
                    .get("token")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                println!("{token}");
                eprintln!(
                    "token {} ({}, role {role}, {}): shown this once; keep it in a secret store",
                    created
                        .get("id")
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                    created
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    environments.join(", ")
                );
            }
        }
        TokensAction::List { client } => {
            let api = Api::new(&client)?;
            let list = api.json(api.http.get(api.url("/api/v1/tokens"))).await?;
            if client.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(0);
            }
            println!(
                "{:>4}  {:<20} {:<7} {:<9} ENVIRONMENTS",
                "ID", "NAME", "ROLE", "STATE"
            );
            for token in list.as_array().into_iter().flatten() {
                let text = |key: &str| {
                    token
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let envs: Vec<&str> = token
                    .get("environments")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let state = if token.get("revoked_at").is_some_and(|v| !v.is_null()) {
                    "revoked"
                } else {
                    "active"
                };
                let id = token.get("id").and_then(Value::as_i64).unwrap_or_default();
                println!(
                    "{id:>4}  {:<20} {:<7} {state:<9} {}",
                    text("name"),
                    text("role"),
                    envs.join(", ")
                );
            }
        }
        TokensAction::Revoke { id, client } => {
            let api = Api::new(&client)?;
            let revoked = api
                .json(api.http.delete(api.url(&format!("/api/v1/tokens/{id}"))))
                .await?;
            if client.json {
                println!("{}", serde_json::to_string_pretty(&revoked)?);
            } else {
                println!("token {id} revoked");
            }
        }
    }
    Ok(0)
}

/// `slipway activity --env E [--app A] [--since DATE] [--until DATE] [--format csv|json]`.
pub async fn activity(
    app: Option<String>,
    env: Option<String>,
    since: Option<String>,
    until: Option<String>,
    format: &str,
    client: &ClientArgs,
) -> anyhow::Result<i32> {
    let api = Api::new(client)?;
    let format = if client.json { "json" } else { format };
    let mut query: Vec<(&str, String)> = vec![("format", format.to_owned())];
    for (key, value) in [
        ("app", app),
        ("env", env),
        ("since", since),
        ("until", until),
    ] {
        if let Some(value) = value {
            query.push((key, value));
        }
    }
    let response = api
        .send(api.http.get(api.url("/api/v1/activity")).query(&query))
        .await?;
    let mut body = response.bytes_stream();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ClientError::Decode(format!("the report was cut off: {e}")))?;
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(0)
}
