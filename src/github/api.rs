//! The one place that speaks HTTP to GitHub's REST API: sends a request and says whether
//! it worked, failed for good, or should be retried (and when, from GitHub's
//! `retry-after` and `x-ratelimit-*` headers).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// May work later: an outage, a 5xx, a rate limit. `after`: what GitHub asked for.
    #[error("{why}")]
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// Will not work by retrying (a 4xx other than a rate limit).
    #[error("{0}")]
    Permanent(String),
}

/// A client of one GitHub API base URL (`https://api.github.com`, or an Enterprise one).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let http = reqwest::Client::builder()
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Sends one request. `body: None` sends no body. The token is a secret: it is
    /// never part of an error.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        bearer: &str,
    ) -> Result<Value, SendError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| SendError::Permanent(format!("bad method {method}")))?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| SendError::Retry {
            after: None,
            why: format!(
                "{method} {path}: GitHub could not be reached: {}",
                without_url(&e)
            ),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let why = format!("{method} {path}: GitHub answered {status} {message}");
        Err(classify(status, &headers, why, now_secs()))
    }
}

/// Rate limits (429, or 403 with `x-ratelimit-remaining: 0` or a `retry-after`) and
/// server errors are retried; other 4xx are not.
pub fn classify(status: StatusCode, headers: &HeaderMap, why: String, now_secs: i64) -> SendError {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok());
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (exhausted || retry_after.is_some()));
    if rate_limited {
        let after = retry_after.or_else(|| {
            // GitHub: when the limit is used up, wait until the reset time (epoch seconds).
            reset
                .filter(|_| exhausted)
                .map(|reset| Duration::from_secs((reset - now_secs).max(0) as u64 + 1))
        });
        return SendError::Retry { after, why };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return SendError::Retry {
            after: retry_after,
            why,
        };
    }
    SendError::Permanent(why)
}

fn without_url(error: &reqwest::Error) -> String {
    // The URL holds no secret, but the error's text is long; keep what matters.
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_owned()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().expect("header"));
        }
        map
    }

    #[test]
    fn rate_limits_wait_for_retry_after_or_the_reset_time() {
        let limited = classify(
            StatusCode::FORBIDDEN,
            &headers(&[("retry-after", "7")]),
            "x".into(),
            100,
        );
        assert_eq!(
            limited,
            SendError::Retry {
                after: Some(Duration::from_secs(7)),
                why: "x".into()
            }
        );
        let reset = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "130")]);
        let limited = classify(StatusCode::FORBIDDEN, &reset, "x".into(), 100);
        assert_eq!(
            limited,
            SendError::Retry {
                after: Some(Duration::from_secs(31)),
                why: "x".into()
            }
        );
        assert!(matches!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                &HeaderMap::new(),
                "x".into(),
                0
            ),
            SendError::Retry { after: None, .. }
        ));
    }

    #[test]
    fn server_errors_are_retried_and_other_client_errors_are_not() {
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "x".into(), 0),
            SendError::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &HeaderMap::new(), "x".into(), 0),
            SendError::Permanent(_)
        ));
        assert!(matches!(
            classify(
                StatusCode::UNPROCESSABLE_ENTITY,
                &HeaderMap::new(),
                "x".into(),
                0
            ),
            SendError::Permanent(_)
        ));
    }
}
