//! `/api/v1/apps` and `/api/v1/environments`: what exists, as far as the token sees.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;

use crate::ids::EnvKey;
use crate::server::api::EnvPath;
use crate::server::auth::{not_found_env, Principal, Role};
use crate::server::error::{ApiPath, ApiResult, ErrorBody};
use crate::server::views::{AppView, EnvironmentView};
use crate::server::AppState;

async fn visible_environments(state: &AppState, principal: &Principal) -> ApiResult<Vec<EnvKey>> {
    let all = state.store.environments().await?;
    Ok(all.into_iter().filter(|env| principal.sees(env)).collect())
}

async fn view(state: &AppState, env: &EnvKey) -> ApiResult<EnvironmentView> {
    let current = state
        .store
        .current_release(env)
        .await?
        .map(|r| r.number.to_string());
    Ok(EnvironmentView {
        app: env.app.to_string(),
        env: env.env.to_string(),
        url: state.router_url(env),
        current_release: current,
    })
}

/// The apps with an environment the token sees.
#[utoipa::path(get, path = "/api/v1/apps", tag = "environments",
    responses((status = 200, body = Vec<AppView>), (status = 401, body = ErrorBody)))]
pub async fn list_apps(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<AppView>>> {
    let mut apps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for env in visible_environments(&state, &principal).await? {
        apps.entry(env.app.to_string())
            .or_default()
            .push(env.env.to_string());
    }
    Ok(Json(
        apps.into_iter()
            .map(|(name, environments)| AppView { name, environments })
            .collect(),
    ))
}

/// The environments the token sees, with their URL and current release.
#[utoipa::path(get, path = "/api/v1/environments", tag = "environments",
    responses((status = 200, body = Vec<EnvironmentView>), (status = 401, body = ErrorBody)))]
pub async fn list_environments(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<EnvironmentView>>> {
    let mut views = Vec::new();
    for env in visible_environments(&state, &principal).await? {
        views.push(view(&state, &env).await?);
    }
    Ok(Json(views))
}

/// One environment.
#[utoipa::path(get, path = "/api/v1/apps/{app}/environments/{env}", tag = "environments", params(EnvPath),
    responses((status = 200, body = EnvironmentView), (status = 404, body = ErrorBody)))]
pub async fn get_environment(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<EnvPath>,
) -> ApiResult<Json<EnvironmentView>> {
    let env = path.key()?;
    principal.require(&env, Role::Read)?;
    if !state.store.environments().await?.contains(&env) {
        return Err(not_found_env(&env));
    }
    Ok(Json(view(&state, &env).await?))
}
