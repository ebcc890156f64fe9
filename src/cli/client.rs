//! The HTTP client that CLI commands use to talk to a Slipway server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ids::EnvKey;
use crate::pipeline::model::Operation;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the Slipway server at {url}: {source}; is `slipway serve` running? (set --server or SLIPWAY_SERVER)")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the server refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("no API token: pass --token, set SLIPWAY_TOKEN, or run from the folder whose .slipway/admin.token the server wrote")]
    NoToken,
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// Finds the token: the flag or `SLIPWAY_TOKEN`, else `./.slipway/admin.token`.
pub fn find_token(given: Option<String>, data_dir: &Path) -> Result<String, ClientError> {
    if let Some(token) = given.filter(|t| !t.trim().is_empty()) {
        return Ok(token.trim().to_owned());
    }
    let path: PathBuf = data_dir.join("admin.token");
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|_| ClientError::NoToken)
}

impl Client {
    pub fn new(server: &str, token: String) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            base: server.trim_end_matches('/').to_owned(),
            token,
            http,
        }
    }

    fn env_url(&self, env: &EnvKey, rest: &str) -> String {
        format!(
            "{}/api/v1/apps/{}/environments/{}/{rest}",
            self.base, env.app, env.env
        )
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(ClientError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn upload(
        &self,
        env: &EnvKey,
        tarball: Vec<u8>,
        commit: Option<&str>,
    ) -> Result<Operation, ClientError> {
        let mut request = self
            .http
            .post(self.env_url(env, "uploads"))
            .header("content-type", "application/gzip")
            .body(tarball);
        if let Some(commit) = commit {
            request = request.query(&[("commit", commit)]);
        }
        request = request.query(&[("initiator", "cli")]);
        self.send(request).await
    }

    pub async fn operation(&self, env: &EnvKey, body: Value) -> Result<Operation, ClientError> {
        self.send(self.http.post(self.env_url(env, "operations")).json(&body))
            .await
    }

    pub async fn get_operation(&self, id: i64) -> Result<Value, ClientError> {
        self.send(
            self.http
                .get(format!("{}/api/v1/operations/{id}", self.base)),
        )
        .await
    }

    pub async fn cancel(&self, id: i64) -> Result<Value, ClientError> {
        self.send(
            self.http
                .post(format!("{}/api/v1/operations/{id}/cancel", self.base)),
        )
        .await
    }

    pub async fn log_page(&self, id: i64, after: i64, wait: bool) -> Result<Value, ClientError> {
        let url = format!("{}/api/v1/operations/{id}/log", self.base);
        let request = self
            .http
            .get(url)
            .query(&[("after", after.to_string()), ("wait", wait.to_string())])
            .timeout(Duration::from_secs(60));
        self.send(request).await
    }

    pub async fn operations(
        &self,
        app: Option<&str>,
        env: Option<&str>,
    ) -> Result<Vec<Operation>, ClientError> {
        let mut query = Vec::new();
        if let Some(app) = app {
            query.push(("app", app));
        }
        if let Some(env) = env {
            query.push(("env", env));
        }
        self.send(
            self.http
                .get(format!("{}/api/v1/operations", self.base))
                .query(&query),
        )
        .await
    }

    pub async fn releases(&self, env: &EnvKey) -> Result<Value, ClientError> {
        self.send(self.http.get(self.env_url(env, "releases")))
            .await
    }

    pub async fn variables(&self, env: &EnvKey, reveal: bool) -> Result<Value, ClientError> {
        let request = self.http.get(self.env_url(env, "config"));
        let request = if reveal {
            request.query(&[("reveal", "true")])
        } else {
            request
        };
        self.send(request).await
    }

    pub async fn change_variables(&self, env: &EnvKey, body: Value) -> Result<Value, ClientError> {
        self.send(self.http.patch(self.env_url(env, "config")).json(&body))
            .await
    }

    pub async fn maintenance(&self, env: &EnvKey, on: bool) -> Result<Value, ClientError> {
        self.send(
            self.http
                .put(self.env_url(env, "maintenance"))
                .json(&serde_json::json!({ "on": on })),
        )
        .await
    }
}
