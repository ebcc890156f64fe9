//! Maintenance: an operator holds an environment's requests at the router (the same
//! mechanism a `deploy` hook uses), and releases them when the work is done. It is kept in
//! the database, so a server restart does not lift it.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::api::EnvPath;
use crate::server::auth::{Principal, Role};
use crate::server::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::server::AppState;

/// How long a request waits in maintenance before it gets a 503 that says so.
pub const MAINTENANCE_WAIT: Duration = Duration::from_secs(30);

#[derive(Deserialize, ToSchema)]
pub struct MaintenanceRequest {
    /// `true`: hold requests; `false`: release them.
    pub on: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MaintenanceState {
    pub maintenance: bool,
}

/// Turn maintenance on or off.
#[utoipa::path(put, path = "/api/v1/apps/{app}/environments/{env}/maintenance", tag = "environments",
    params(EnvPath), request_body = MaintenanceRequest,
    responses((status = 200, body = MaintenanceState), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn set_maintenance(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<EnvPath>,
    ApiJson(request): ApiJson<MaintenanceRequest>,
) -> ApiResult<Json<MaintenanceState>> {
    let env = path.authorize(&principal, Role::Deploy)?;
    // Recorded first: a restart restores it (see `server::start`).
    state.sqlite.set_maintenance(&env, request.on).await?;
    state
        .router
        .maintenance(&env, request.on.then_some(MAINTENANCE_WAIT));
    Ok(Json(MaintenanceState {
        maintenance: state.router.in_maintenance(&env),
    }))
}
