//! Bearer tokens and what they may do. The admin token is generated on first start,
//! written to `<data>/admin.token` (mode 0600) and kept in memory only as a hash; it has
//! every role on every environment. Other tokens (`slipway tokens create`) are rows of
//! `api_tokens` holding a sha256, a role and `app/env` patterns. Their text is
//! `slw_<id>_<secret>`: the id finds the row, the hash is compared in constant time.
//!
//! **Invariant:** a token never learns that an environment outside its scope exists:
//! every such request answers 404, the same as for an environment that does not exist.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::EnvKey;
use crate::server::error::ApiError;
use crate::server::AppState;

/// The sha256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads `<data>/admin.token`, creating it with a fresh random token when missing.
pub fn load_or_create_admin_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let token = format!("slw_{}", hex::encode(rand::random::<[u8; 24]>()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// What a token may do, each role including the ones before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// GET requests.
    Read,
    /// Operations (deploy, redeploy, restart, scale, rollback, cancel) and setting variables.
    Deploy,
    /// Everything: tokens, and variable values (`config list --reveal`).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Deploy => "deploy",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "deploy" => Some(Role::Deploy),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Whether an `app/env` pattern (`*` for a whole part, or `*` alone for everything)
/// covers an environment.
pub fn pattern_matches(pattern: &str, env: &EnvKey) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some((app, name)) = pattern.split_once('/') else {
        return false;
    };
    (app == "*" || app == env.app.as_str()) && (name == "*" || name == env.env.as_str())
}

/// Whether a pattern is well formed: `*`, or `APP/ENV` where each part is `*` or a name.
pub fn valid_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some((app, env)) = pattern.split_once('/') else {
        return false;
    };
    [app, env]
        .iter()
        .all(|part| *part == "*" || crate::server::api::is_dns_label(part))
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    /// `admin token`, or `token <name>`: recorded as the initiator of its operations.
    pub label: String,
    pub role: Role,
    /// `app/env` patterns; the admin token has `*`.
    pub environments: Vec<String>,
}

impl Principal {
    fn admin() -> Principal {
        Principal {
            label: "admin token".into(),
            role: Role::Admin,
            environments: vec!["*".into()],
        }
    }

    /// Whether the token's scope covers an environment.
    pub fn sees(&self, env: &EnvKey) -> bool {
        self.environments
            .iter()
            .any(|pattern| pattern_matches(pattern, env))
    }

    /// Whether the token covers every environment (needed to manage tokens).
    pub fn sees_everything(&self) -> bool {
        self.environments.iter().any(|p| p == "*" || p == "*/*")
    }

    /// Allows an action on an environment: 404 outside the scope (whether or not it
    /// exists), 403 when the environment is visible but the role is too small.
    pub fn require(&self, env: &EnvKey, role: Role) -> Result<(), ApiError> {
        if !self.sees(env) {
            return Err(not_found_env(env));
        }
        self.require_role(role)
    }

    pub fn require_role(&self, role: Role) -> Result<(), ApiError> {
        if self.role < role {
            return Err(ApiError::Forbidden(format!(
                "this token has the `{}` role; this needs `{}` (ask an admin for a token with that role)",
                self.role.as_str(),
                role.as_str()
            )));
        }
        Ok(())
    }

    /// Token management: the admin role on every environment, so a token can never mint
    /// one wider than itself.
    pub fn require_token_admin(&self) -> Result<(), ApiError> {
        self.require_role(Role::Admin)?;
        if !self.sees_everything() {
            return Err(ApiError::Forbidden(
                "managing tokens needs an admin token for all environments (`*`)".into(),
            ));
        }
        Ok(())
    }

    /// The initiator recorded on an operation: who, and through what client when it said.
    pub fn initiator(&self, client: Option<&str>) -> String {
        let client = client.map(str::trim).filter(|c| {
            !c.is_empty() && c.len() <= 40 && c.chars().all(|ch| ch.is_ascii_graphic() || ch == ' ')
        });
        match client {
            Some(client) => format!("{} via {client}", self.label),
            None => self.label.clone(),
        }
    }
}

/// The answer for an environment the token may not see, and for one that does not exist.
pub fn not_found_env(env: &EnvKey) -> ApiError {
    ApiError::NotFound(format!("no environment {env}"))
}

/// The bearer token of a request.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110); the token is not.
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// Finds who a token is: the admin token, or a stored token that is not revoked.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let given = hash_token(token);
    if constant_time_eq(&given, &state.admin_hash) {
        return Ok(Principal::admin());
    }
    let id = token
        .strip_prefix("slw_")
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(id, _)| id.parse::<i64>().ok())
        .ok_or(ApiError::Unauthorized)?;
    let record = state
        .sqlite
        .token(id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if record.revoked_at.is_some()
        || !constant_time_eq(hex::encode(given).as_bytes(), record.hash.as_bytes())
    {
        return Err(ApiError::Unauthorized);
    }
    let role = Role::parse(&record.role)
        .ok_or_else(|| ApiError::Internal(format!("token {} has an unknown role", record.id)))?;
    Ok(Principal {
        label: format!("token {}", record.name),
        role,
        environments: record.environments,
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        authenticate(state, token).await
    }
}

/// A new token's text: `slw_<id>_<48 hex digits>`.
pub fn new_token_text(id: i64) -> String {
    format!("slw_{id}_{}", hex::encode(rand::random::<[u8; 24]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_cover_what_they_name() {
        let staging = EnvKey::new("shop", "staging");
        assert!(pattern_matches("*", &staging));
        assert!(pattern_matches("*/staging", &staging));
        assert!(pattern_matches("shop/*", &staging));
        assert!(pattern_matches("shop/staging", &staging));
        assert!(!pattern_matches("shop/production", &staging));
        assert!(!pattern_matches("blog/*", &staging));
        assert!(!pattern_matches("staging", &staging));
        assert!(valid_pattern("*/staging") && !valid_pattern("Shop/x") && !valid_pattern("a/b/c"));
    }

    #[test]
    fn a_scoped_token_gets_404_outside_and_403_for_a_missing_role() {
        let token = Principal {
            label: "token ci".into(),
            role: Role::Read,
            environments: vec!["*/staging".into()],
        };
        let production = EnvKey::new("shop", "production");
        assert!(matches!(
            token.require(&production, Role::Read),
            Err(ApiError::NotFound(_))
        ));
        let staging = EnvKey::new("shop", "staging");
        assert!(token.require(&staging, Role::Read).is_ok());
        assert!(matches!(
            token.require(&staging, Role::Deploy),
            Err(ApiError::Forbidden(_))
        ));
        assert_eq!(token.initiator(Some("cli")), "token ci via cli");
        assert_eq!(token.initiator(Some("bad\nlabel")), "token ci");
    }
}
