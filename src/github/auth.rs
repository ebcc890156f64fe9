//! Who Slipway is to GitHub: a token (`--github-token`), or a GitHub App whose
//! installation tokens are fetched per installation and cached until shortly before
//! they expire.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

use crate::github::api::{now_secs, Api, SendError};
use crate::github::jwt::AppKey;

/// How long before its expiry an installation token stops being used.
const EXPIRY_MARGIN_SECS: i64 = 5 * 60;

/// The credentials of the GitHub integration. `Debug` shows no secret.
// One value per server: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Credentials {
    Token(String),
    App {
        key: AppKey,
        cache: Mutex<HashMap<i64, CachedToken>>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token(****)"),
            Credentials::App { key, .. } => write!(f, "Credentials::App({key:?})"),
        }
    }
}

#[derive(Clone)]
pub struct CachedToken {
    token: String,
    /// Unix seconds.
    expires_at: i64,
}

impl Credentials {
    pub fn app(key: AppKey) -> Credentials {
        Credentials::App {
            key,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A token to act on a repository of `installation`.
    pub async fn token(&self, api: &Api, installation: Option<i64>) -> Result<String, SendError> {
        match self {
            Credentials::Token(token) => Ok(token.clone()),
            Credentials::App { key, cache } => {
                let installation = installation.ok_or_else(|| {
                    SendError::Permanent("a GitHub App needs the installation of the repository, and the delivery named none".into())
                })?;
                let now = now_secs();
                let mut cache = cache.lock().await;
                if let Some(cached) = cache
                    .get(&installation)
                    .filter(|c| c.expires_at - EXPIRY_MARGIN_SECS > now)
                {
                    return Ok(cached.token.clone());
                }
                let path = format!("/app/installations/{installation}/access_tokens");
                let answer = api.send("POST", &path, None, &key.jwt(now)).await?;
                let token = answer
                    .get("token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| SendError::Retry {
                        after: Some(Duration::from_secs(5)),
                        why: "GitHub answered an installation token request without a token".into(),
                    })?
                    .to_owned();
                let expires_at = answer
                    .get("expires_at")
                    .and_then(Value::as_str)
                    .and_then(|t| {
                        time::OffsetDateTime::parse(
                            t,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .map_or(now + 3600, |t| t.unix_timestamp());
                cache.insert(
                    installation,
                    CachedToken {
                        token: token.clone(),
                        expires_at,
                    },
                );
                Ok(token)
            }
        }
    }

    /// Forgets an installation's cached token (GitHub refused it).
    pub async fn forget(&self, installation: Option<i64>) {
        if let (Credentials::App { cache, .. }, Some(installation)) = (self, installation) {
            cache.lock().await.remove(&installation);
        }
    }
}
