//! The environment-scoped part of the API under `/api/v1/apps/{app}/environments/{env}`:
//! deploys (uploads and operations), releases and configuration variables. Every handler
//! first asks the caller's token whether it may act on the environment.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::ids::{EnvKey, ReleaseNumber};
use crate::pipeline::model::{NewOperation, OperationKind, SourceSpec, Variable};
use crate::server::auth::{Principal, Role};
use crate::server::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::server::views::{
    OperationView, ReleaseList, ReleaseView, VariableList, VariableView, VariablesChanged,
};
use crate::server::AppState;
use crate::source::upload;

/// Path parameters naming an environment.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EnvPath {
    /// The app's name.
    pub app: String,
    /// The environment's name.
    pub env: String,
}

impl EnvPath {
    pub fn key(&self) -> ApiResult<EnvKey> {
        for (what, name) in [("app", &self.app), ("environment", &self.env)] {
            // Also what keeps `..`, `/`, NUL and the like out of file and host names.
            if !is_dns_label(name) {
                return Err(ApiError::BadRequest(format!(
                    "`{}` is not a valid {what} name: use 1 to 63 lowercase letters, digits and `-`, not starting or ending with `-`",
                    crate::text::shown(name)
                )));
            }
        }
        Ok(EnvKey::new(self.app.clone(), self.env.clone()))
    }

    /// The environment, once the token is allowed `role` on it.
    pub(crate) fn authorize(&self, principal: &Principal, role: Role) -> ApiResult<EnvKey> {
        let env = self.key()?;
        principal.require(&env, role)?;
        Ok(env)
    }
}

/// Whether a name can be part of a host name (and of a file name): `[a-z0-9-]{1,63}`.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The git commit the folder is at, if it is a git folder.
    pub commit: Option<String>,
    /// The client that sends it (`cli`), recorded with the token's name.
    pub initiator: Option<String>,
}

/// Deploy a folder: the body is a gzipped tar of it.
#[utoipa::path(post, path = "/api/v1/apps/{app}/environments/{env}/uploads", tag = "operations",
    params(EnvPath, UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/gzip", description = "a .tar.gz of the app folder"),
    responses((status = 201, body = OperationView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deploy_upload(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<EnvPath>,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<OperationView>)> {
    let env = path.authorize(&principal, Role::Deploy)?;
    if let Some(commit) = &query.commit {
        if commit.len() > 64 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest(
                "`commit` is not a git commit sha".into(),
            ));
        }
    }
    let sources = state.data_dir.join("sources");
    let (dir, hash) = tokio::task::spawn_blocking(move || upload::unpack(&body, &sources))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let source = SourceSpec::Upload {
        path: dir.display().to_string(),
        commit: query.commit.clone(),
        content_hash: hash,
    };
    let initiator = principal.initiator(query.initiator.as_deref());
    let op = submit(
        &state,
        env,
        OperationKind::Deploy,
        Some(source),
        query.commit,
        serde_json::Value::Null,
        initiator,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(op)))
}

/// The body of `POST .../operations`.
#[derive(Deserialize, ToSchema)]
pub struct OperationRequest {
    /// `deploy`, `redeploy`, `restart`, `scale`, `rollback` (`configure` comes from a change of variables).
    #[schema(value_type = String)]
    pub kind: OperationKind,
    /// For deploys: `{"type": "git", "url": ..., "reference": ...}` or `{"type": "image", "reference": ...}`.
    #[schema(value_type = Option<Object>)]
    pub source: Option<SourceSpec>,
    /// `{"to": "v3"}` for a rollback; `{"services": {"web": 3}, "size": 1024}` for a scale.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    /// The client that sends it (`cli`), recorded with the token's name.
    pub initiator: Option<String>,
}

impl OperationRequest {
    /// What can be said about the request before anything runs (pure: fuzzed with the
    /// JSON decoding in `fuzz/fuzz_targets/api_json.rs`).
    pub fn check(&self) -> ApiResult<()> {
        if let Some(SourceSpec::Upload { .. }) = self.source {
            return Err(ApiError::BadRequest(
                "upload a folder with POST .../uploads".into(),
            ));
        }
        match &self.source {
            Some(SourceSpec::Git { url, reference }) => {
                check_argument("git url", url)?;
                check_argument("git reference", reference)?;
            }
            Some(SourceSpec::Image { reference }) => check_argument("image reference", reference)?,
            _ => {}
        }
        if self.kind == OperationKind::Deploy && self.source.is_none() {
            return Err(ApiError::BadRequest(
                "a deploy needs a `source`: git or image".into(),
            ));
        }
        if self.kind == OperationKind::Rollback {
            if let Some(to) = self.args.get("to") {
                let to = to
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| to.to_string());
                to.parse::<ReleaseNumber>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "`{}` is not a release number; write it like `v3`",
                        crate::text::shown(&to)
                    ))
                })?;
            }
        }
        Ok(())
    }
}

/// A URL or a reference handed to git or a registry: one word, not an option.
fn check_argument(what: &str, text: &str) -> ApiResult<()> {
    if text.is_empty()
        || text.len() > 2048
        || text.starts_with('-')
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a {what}: one word of at most 2048 characters, not starting with `-`",
            crate::text::shown(text)
        )));
    }
    Ok(())
}

/// Start an operation on an environment.
#[utoipa::path(post, path = "/api/v1/apps/{app}/environments/{env}/operations", tag = "operations",
    params(EnvPath), request_body = OperationRequest,
    responses((status = 201, body = OperationView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_operation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<EnvPath>,
    ApiJson(request): ApiJson<OperationRequest>,
) -> ApiResult<(StatusCode, Json<OperationView>)> {
    let env = path.authorize(&principal, Role::Deploy)?;
    request.check()?;
    let initiator = principal.initiator(request.initiator.as_deref());
    let op = submit(
        &state,
        env,
        request.kind,
        request.source,
        None,
        request.args,
        initiator,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(op)))
}

async fn submit(
    state: &AppState,
    env: EnvKey,
    kind: OperationKind,
    source: Option<SourceSpec>,
    commit: Option<String>,
    args: serde_json::Value,
    initiator: String,
) -> ApiResult<OperationView> {
    let new = NewOperation {
        env,
        kind,
        source,
        commit,
        args,
        initiator,
    };
    Ok(state.pipeline.submit(new).await?.into())
}

/// The releases of an environment, newest first.
#[utoipa::path(get, path = "/api/v1/apps/{app}/environments/{env}/releases", tag = "environments",
    params(EnvPath), responses((status = 200, body = ReleaseList), (status = 404, body = ErrorBody)))]
pub async fn list_releases(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<EnvPath>,
) -> ApiResult<Json<ReleaseList>> {
    let env = path.authorize(&principal, Role::Read)?;
    let current = state.store.current_release(&env).await?.map(|r| r.number);
    // Variables are secrets: a release shows only the hash of its configuration.
    let releases = state
        .store
        .releases(&env)
        .await?
        .into_iter()
        .map(|r| {
            let is_current = Some(r.number) == current;
            ReleaseView::new(r, is_current)
        })
        .collect();
    Ok(Json(ReleaseList {
        url: state.router_url(&env),
        releases,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevealQuery {
    /// Include the values (an admin token only).
    #[serde(default)]
    pub reveal: bool,
}

/// The variables of an environment: keys only, values with `?reveal=true` and an admin token.
#[utoipa::path(get, path = "/api/v1/apps/{app}/environments/{env}/config", tag = "environments",
    params(EnvPath, RevealQuery),
    responses((status = 200, body = VariableList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_variables(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<EnvPath>,
    Query(query): Query<RevealQuery>,
) -> ApiResult<Json<VariableList>> {
    let env = path.authorize(
        &principal,
        if query.reveal {
            Role::Admin
        } else {
            Role::Read
        },
    )?;
    let variables = state
        .store
        .variables(&env)
        .await?
        .into_iter()
        .map(|v| VariableView {
            key: v.key,
            build: v.build,
            value: query.reveal.then_some(v.value),
        })
        .collect();
    Ok(Json(VariableList { variables }))
}

/// The body of `PATCH .../config`.
#[derive(Deserialize, ToSchema)]
pub struct VariablesRequest {
    /// `{"key": "K", "value": "V", "build": false}` entries.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub set: Vec<Variable>,
    #[serde(default)]
    pub unset: Vec<String>,
}

impl VariablesRequest {
    /// Every key is a variable name; values are anything (and never quoted back).
    pub fn check(&self) -> ApiResult<()> {
        let keys = self.set.iter().map(|v| &v.key).chain(&self.unset);
        for key in keys {
            let valid = !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !key.as_bytes()[0].is_ascii_digit();
            if !valid {
                // The key is named (it is not a secret); the value never is.
                return Err(ApiError::BadRequest(format!(
                    "`{}` is not a valid variable name: use letters, digits and `_`, not starting with a digit",
                    crate::text::shown(key)
                )));
            }
        }
        Ok(())
    }
}

/// Set and unset variables. Runtime variables make a new release at once (a `configure`
/// operation); build variables wait for the next deploy, which they rebuild.
#[utoipa::path(patch, path = "/api/v1/apps/{app}/environments/{env}/config", tag = "environments",
    params(EnvPath), request_body = VariablesRequest,
    responses((status = 200, body = VariablesChanged), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change_variables(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<EnvPath>,
    ApiJson(request): ApiJson<VariablesRequest>,
) -> ApiResult<Json<VariablesChanged>> {
    let env = path.authorize(&principal, Role::Deploy)?;
    request.check()?;
    state.store.ensure_environment(&env).await?;
    state.store.set_variables(&env, &request.set).await?;
    state.store.unset_variables(&env, &request.unset).await?;
    let runtime_change = request.set.iter().any(|v| !v.build) || !request.unset.is_empty();
    let serving = state.store.current_release(&env).await?.is_some();
    let operation = if runtime_change && serving {
        let initiator = principal.initiator(None);
        Some(
            submit(
                &state,
                env,
                OperationKind::Configure,
                None,
                None,
                serde_json::Value::Null,
                initiator,
            )
            .await?,
        )
    } else {
        None
    };
    Ok(Json(VariablesChanged {
        set: request.set.len(),
        unset: request.unset.len(),
        operation,
    }))
}

#[cfg(test)]
mod tests {
    use super::VariablesRequest;
    use crate::server::error::decode_json;

    /// Found by the api_json fuzz target (its oracle, not this code, was wrong): a bad key
    /// is named in the error even when it holds the same text as a value; the value
    /// itself is never quoted.
    #[test]
    fn a_bad_key_is_named_and_its_value_is_not() {
        let body = br#"{"set":[{"key":"DATA\u007fSECRETpostgres012345678","value":"hunter2-the-value","build":false}]}"#;
        let error = decode_json::<VariablesRequest>(body)
            .and_then(|r| r.check())
            .unwrap_err()
            .to_string();
        assert!(error.contains("SECRETpostgres012345678"), "{error}");
        assert!(error.contains("is not a valid variable name"), "{error}");
        assert!(!error.contains("hunter2-the-value"), "{error}");
    }
}
