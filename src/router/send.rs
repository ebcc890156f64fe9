//! Sending a request to an instance: one try with a deadline for the response headers,
//! and for a request that can safely be sent twice (GET or HEAD without a body) a second
//! try on another instance when the first could not be reached or died before answering —
//! the case of an old instance stopped at the end of a drain. A request that was never
//! written (its pooled connection had been closed by the instance while idle) goes on a
//! fresh connection, whatever its method.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode, Uri};

use super::body::RouterBody;
use super::inflight::InFlightGuard;
use super::pool::{ConnectError, Lease};
use super::proxy::{seconds, text};
use super::table::{Route, Upstream};
use super::Inner;

/// Why a request got no answer from an instance.
pub(crate) enum SendError {
    Connect(ConnectError),
    Failed(hyper::Error),
    TimedOut,
}

impl SendError {
    /// Whether the instance cannot have answered: it was not reached, or its connection
    /// closed before a response began. (A timeout is not: the instance may be working.)
    fn worth_retrying(&self) -> bool {
        match self {
            SendError::Connect(_) => true,
            SendError::Failed(error) => error.is_incomplete_message() || error.is_canceled(),
            SendError::TimedOut => false,
        }
    }
}

/// What a second try of a bodiless GET or HEAD needs. Kept only for those requests: the
/// header copy is the one allocation the retry costs.
pub(crate) struct Replay {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// The answer of an instance, with the instance that gave it, its in-flight guard and the
/// connection it came on.
pub(crate) struct Sent {
    pub upstream: Arc<Upstream>,
    pub guard: InFlightGuard,
    pub outcome: Result<(Response<Incoming>, Lease), SendError>,
}

impl Inner {
    /// Sends `request` (in origin form) to `upstream`, and once more to another instance
    /// when `replay` allows it and the first could not have answered.
    pub(crate) async fn send(
        &self,
        route: &Route,
        upstream: Arc<Upstream>,
        request: Request<RouterBody>,
        replay: Option<Replay>,
    ) -> Sent {
        let guard = upstream.inflight.enter();
        let outcome = self.send_once(&upstream, request).await;
        let first = Sent {
            upstream,
            guard,
            outcome,
        };
        match (&first.outcome, replay) {
            // Boxed: a retry is rare, and must not weigh on every request's future.
            (Err(error), Some(replay)) if error.worth_retrying() => {
                Box::pin(self.retry(route, first, replay)).await
            }
            _ => first,
        }
    }

    /// The second try, on another instance of the current table.
    async fn retry(&self, route: &Route, first: Sent, replay: Replay) -> Sent {
        // Re-read the table: a switch may just have replaced the instance that failed.
        let current = self.table.load().route_for_env(&route.env).cloned();
        let Some(next) = current
            .as_deref()
            .and_then(|current| current.pick_other(&first.upstream.backend))
            .cloned()
        else {
            return first;
        };
        if let Err(error) = &first.outcome {
            tracing::info!(
                env = %route.env,
                failed = %first.upstream.backend.instance,
                next = %next.backend.instance,
                error = %describe(error),
                "retrying a request whose instance did not answer",
            );
        }
        let mut retry = Request::new(RouterBody::Empty);
        *retry.method_mut() = replay.method;
        *retry.uri_mut() = replay.uri;
        *retry.headers_mut() = replay.headers;
        let guard = next.inflight.enter();
        drop(first);
        let outcome = self.send_once(&next, retry).await;
        Sent {
            upstream: next,
            guard,
            outcome,
        }
    }

    /// One try: a connection (pooled or new) and the request on it, with its response
    /// headers within the upstream timeout — the one timer a request costs.
    async fn send_once(
        &self,
        upstream: &Upstream,
        request: Request<RouterBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let exchange = self.exchange(upstream, request);
        match tokio::time::timeout(self.options.upstream_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SendError::TimedOut),
        }
    }

    async fn exchange(
        &self,
        upstream: &Upstream,
        mut request: Request<RouterBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        loop {
            let mut lease = upstream
                .pool
                .lease(self.options.connect_timeout)
                .await
                .map_err(SendError::Connect)?;
            match lease.sender().try_send_request(request).await {
                Ok(response) => {
                    lease.answered();
                    return Ok((response, lease));
                }
                Err(mut error) => match error.take_message() {
                    // Never written: the instance had closed this idle connection. Each
                    // pass takes another idle connection or, at last, a new one.
                    Some(unsent) if lease.reused => request = unsent,
                    _ => return Err(SendError::Failed(error.into_error())),
                },
            }
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

/// An error with its causes, for logs.
fn describe(error: &SendError) -> String {
    let error: &dyn std::error::Error = match error {
        SendError::Connect(error) => return error.to_string(),
        SendError::Failed(error) => error,
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
