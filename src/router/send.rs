//! Sending a request to an instance: one try with a deadline for the response headers,
//! and for a request that can safely be sent twice (GET or HEAD without a body) a second
//! try on another instance when the first could not be reached or died before answering —
//! the case of an old instance stopped at the end of a drain.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::http::uri::{PathAndQuery, Scheme};
use hyper::{Method, Request, Response, StatusCode, Uri};

use super::body::RouterBody;
use super::inflight::InFlightGuard;
use super::proxy::{seconds, text};
use super::table::{Route, Upstream};
use super::Inner;

/// Why a request got no answer from an instance.
pub(crate) enum SendError {
    Connect(hyper_util::client::legacy::Error),
    Failed(hyper_util::client::legacy::Error),
    TimedOut,
}

impl SendError {
    /// Whether the instance cannot have answered: it was not reached, or its connection
    /// closed before a response began. (A timeout is not: the instance may be working.)
    fn worth_retrying(&self) -> bool {
        match self {
            SendError::Connect(_) => true,
            SendError::Failed(error) => std::error::Error::source(error)
                .and_then(|cause| cause.downcast_ref::<hyper::Error>())
                .is_some_and(|cause| cause.is_incomplete_message() || cause.is_canceled()),
            SendError::TimedOut => false,
        }
    }
}

/// What a second try of a bodiless GET or HEAD needs. Kept only for those requests: the
/// header copy is the one allocation the retry costs.
pub(crate) struct Replay {
    pub method: Method,
    pub headers: HeaderMap,
}

/// The answer of an instance, with the instance that gave it and its in-flight guard.
pub(crate) struct Sent {
    pub upstream: Arc<Upstream>,
    pub guard: InFlightGuard,
    pub outcome: Result<Response<Incoming>, SendError>,
}

impl Inner {
    /// Sends `request` (whose URI is only a path) to `upstream`, and once more to another
    /// instance when `replay` allows it and the first could not have answered.
    pub(crate) async fn send(
        &self,
        route: &Route,
        upstream: Arc<Upstream>,
        mut request: Request<RouterBody>,
        replay: Option<Replay>,
    ) -> Sent {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = upstream_uri(&upstream, path.clone());
        let guard = upstream.inflight.enter();
        let outcome = self.send_once(request).await;
        let first = Sent {
            upstream,
            guard,
            outcome,
        };
        let (Err(error), Some(replay)) = (&first.outcome, replay) else {
            return first;
        };
        if !error.worth_retrying() {
            return first;
        }
        // Re-read the table: a switch may just have replaced the instance that failed.
        let current = self.table.load().route_for_env(&route.env).cloned();
        let Some(next) = current
            .as_deref()
            .and_then(|current| current.pick_other(&first.upstream.backend))
            .cloned()
        else {
            return first;
        };
        tracing::info!(
            env = %route.env,
            failed = %first.upstream.backend.instance,
            next = %next.backend.instance,
            error = %describe(error),
            "retrying a request whose instance did not answer",
        );
        let mut retry = Request::new(RouterBody::Empty);
        *retry.method_mut() = replay.method;
        *retry.headers_mut() = replay.headers;
        *retry.uri_mut() = upstream_uri(&next, path);
        let guard = next.inflight.enter();
        drop(first);
        let outcome = self.send_once(retry).await;
        Sent {
            upstream: next,
            guard,
            outcome,
        }
    }

    async fn send_once(
        &self,
        request: Request<RouterBody>,
    ) -> Result<Response<Incoming>, SendError> {
        match tokio::time::timeout(self.options.upstream_timeout, self.client.request(request))
            .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) if error.is_connect() => Err(SendError::Connect(error)),
            Ok(Err(error)) => Err(SendError::Failed(error)),
            Err(_) => Err(SendError::TimedOut),
        }
    }

    /// The router's answer when no instance answered.
    pub(crate) fn failure(
        &self,
        route: &Route,
        upstream: &Upstream,
        error: SendError,
    ) -> Response<RouterBody> {
        let (env, instance) = (&route.env, &upstream.backend.instance);
        let problem = describe(&error);
        match error {
            SendError::Connect(_) => {
                tracing::warn!(%env, %instance, error = %problem, "could not connect to the instance");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("could not connect to an instance of {env}\n"),
                )
            }
            SendError::Failed(_) => {
                tracing::warn!(%env, %instance, error = %problem, "the instance failed the request");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("an instance of {env} closed the request without answering\n"),
                )
            }
            SendError::TimedOut => {
                tracing::warn!(%env, %instance, error = %problem, "the instance did not answer in time");
                let waited = seconds(self.options.upstream_timeout);
                text(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("an instance of {env} did not answer within {waited}\n"),
                )
            }
        }
    }
}

fn upstream_uri(upstream: &Upstream, path: PathAndQuery) -> Uri {
    let mut parts = hyper::http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(upstream.authority.clone());
    parts.path_and_query = Some(path);
    // Scheme, authority and path are all present, so this cannot fail.
    Uri::from_parts(parts).unwrap_or_default()
}

/// An error with its causes, for logs (the client's own message is only "client error").
fn describe(error: &SendError) -> String {
    let error: &dyn std::error::Error = match error {
        SendError::Connect(error) | SendError::Failed(error) => error,
        SendError::TimedOut => return "no response headers in time".to_owned(),
    };
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
