//! `/api/v1/tokens`: creating (the text is answered once, only its hash is kept),
//! listing and revoking API tokens. Only an admin token for every environment may.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::auth::{hash_token, new_token_text, valid_pattern, Principal, Role};
use crate::server::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::server::AppState;
use crate::store::{NewToken, TokenRecord};

/// The body of `POST /api/v1/tokens`.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// A name for people and for the activity report (`token <name>`); default `token-<id>`.
    pub name: Option<String>,
    pub role: Role,
    /// `app/env` patterns, each part a name or `*`: `["*/staging"]`, `["shop/*"]`,
    /// or `["*"]` for every environment.
    pub environments: Vec<String>,
}

impl TokenRequest {
    /// Patterns and name, before anything is stored (pure; fuzzed).
    pub fn check(&self) -> ApiResult<()> {
        if self.environments.is_empty() {
            return Err(ApiError::BadRequest(
                "name the environments the token may use: `*/staging`, `shop/production`, or `*`"
                    .into(),
            ));
        }
        if let Some(bad) = self.environments.iter().find(|p| !valid_pattern(p)) {
            return Err(ApiError::BadRequest(format!(
                "`{}` is not an environment pattern: use APP/ENV, where each part is a name or `*`, or `*` alone",
                crate::text::shown(bad)
            )));
        }
        let name = self.name.as_deref().unwrap_or_default();
        if name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_. @".contains(c))
        {
            return Err(ApiError::BadRequest(
                "a token name has at most 64 letters, digits, `-`, `_`, `.`, `@` or spaces".into(),
            ));
        }
        Ok(())
    }
}

/// A token as listed (never its text).
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub environments: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<TokenRecord> for TokenView {
    fn from(record: TokenRecord) -> Self {
        TokenView {
            id: record.id,
            name: record.name,
            role: record.role,
            environments: record.environments,
            created_at: record.created_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// A new token: `token` is shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenView,
    pub token: String,
}

/// Create a token (admin token for all environments only).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    principal.require_token_admin()?;
    request.check()?;
    let name = request.name.unwrap_or_default();
    let mut record = state
        .sqlite
        .create_token(NewToken {
            name: &name,
            hash: "",
            role: request.role.as_str(),
            environments: &request.environments,
        })
        .await?;
    // The text names the id, so the row comes first and gets its hash (and its default
    // name) right after; a row left without a hash matches no token.
    let text = new_token_text(record.id);
    if name.is_empty() {
        record.name = format!("token-{}", record.id);
    }
    state
        .sqlite
        .finish_token(record.id, &hex::encode(hash_token(&text)), &record.name)
        .await?;
    tracing::info!(id = record.id, name = %record.name, role = %record.role, by = %principal.label, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: record.into(),
            token: text,
        }),
    ))
}

/// The tokens (their names, roles and scopes; never their text).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<TokenView>>> {
    principal.require_token_admin()?;
    Ok(Json(
        state
            .sqlite
            .tokens()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Revoke a token: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "the token's id")),
    responses((status = 200, body = TokenView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TokenView>> {
    principal.require_token_admin()?;
    let missing = || ApiError::NotFound(format!("no token {id}; `slipway tokens list` lists them"));
    state.sqlite.token(id).await?.ok_or_else(missing)?;
    state.sqlite.revoke_token(id).await?;
    let record = state.sqlite.token(id).await?.ok_or_else(missing)?;
    tracing::info!(id, by = %principal.label, "token revoked");
    Ok(Json(record.into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_are_ordered() {
        use crate::server::auth::Role;
        assert!(Role::Read < Role::Deploy && Role::Deploy < Role::Admin);
    }
}
