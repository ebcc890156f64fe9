//! Sending a request to an instance: one try with a deadline for the response headers,
//! and for a request that can safely be sent twice (GET or HEAD without a body) a second
//! try on another instance when the first could not be reached or died before answering —
//! the case of an old instance stopped at the end of a drain, or of a new one that crashed
//! during its watch (the second try then goes to the old release, on standby). A request
//! that was never written (its pooled connection had been closed by the instance while
//! idle) goes on a fresh connection, whatever its method.
//!
//! The exchange itself, HTTP/1.1 on the wire, is `h1.rs`.

use std::sync::Arc;

use hyper::{Response, StatusCode};

use super::body::RouterBody;
use super::h1;
use super::inflight::InFlightGuard;
use super::pool::{ConnectError, Lease};
use super::proxy::{seconds, text};
use super::table::{Route, Upstream};
use super::Inner;

/// Why a request got no answer from an instance.
pub(crate) enum SendError {
    Connect(ConnectError),
    Failed(h1::Error),
    TimedOut,
}

impl SendError {
    /// Whether the instance cannot have answered: it was not reached, or its connection
    /// ended before a byte of an answer. (A timeout is not: the instance may be working.)
    fn worth_retrying(&self) -> bool {
        match self {
            SendError::Connect(_) => true,
            SendError::Failed(error) => {
                matches!(error, h1::Error::Closed(_) | h1::Error::Unsent(_))
            }
            SendError::TimedOut => false,
        }
    }
}

/// The answer of an instance, with the instance that gave it, its in-flight guard and the
/// connection it came on.
pub(crate) struct Sent {
    pub upstream: Arc<Upstream>,
    pub guard: InFlightGuard,
    pub outcome: Result<(h1::Head, Lease), SendError>,
}

impl Inner {
    /// Sends `request` to `upstream`, and once more to another instance when it is
    /// `replayable` (a GET or HEAD without a body: its head, kept whole, is all of it)
    /// and the first could not have answered.
    pub(crate) async fn send(
        &self,
        route: &Route,
        upstream: Arc<Upstream>,
        mut request: h1::Request,
        replayable: bool,
    ) -> Sent {
        let guard = upstream.inflight.enter();
        let outcome = self.send_once(&upstream, &mut request).await;
        let first = Sent {
            upstream,
            guard,
            outcome,
        };
        match &first.outcome {
            // Boxed: a retry is rare, and must not weigh on every request's future.
            Err(error) if replayable && error.worth_retrying() => {
                Box::pin(self.retry(route, first, request)).await
            }
            _ => first,
        }
    }

    /// The second try, on another instance of the current table (or on standby).
    async fn retry(&self, route: &Route, first: Sent, mut replay: h1::Request) -> Sent {
        // Re-read the table: a switch may just have replaced the instance that failed.
        let current = self.table.load().route_for_env(&route.env).cloned();
        let Some(next) = current
            .as_deref()
            .and_then(|current| current.pick_retry(&first.upstream.backend))
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
        let guard = next.inflight.enter();
        drop(first);
        let outcome = self.send_once(&next, &mut replay).await;
        Sent {
            upstream: next,
            guard,
            outcome,
        }
    }

    /// One try: a connection (pooled or new) and the request on it, with its response
    /// head within the upstream timeout — the one timer a request costs.
    async fn send_once(
        &self,
        upstream: &Upstream,
        request: &mut h1::Request,
    ) -> Result<(h1::Head, Lease), SendError> {
        let exchange = self.exchange(upstream, request);
        match tokio::time::timeout(self.options.upstream_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SendError::TimedOut),
        }
    }

    async fn exchange(
        &self,
        upstream: &Upstream,
        request: &mut h1::Request,
    ) -> Result<(h1::Head, Lease), SendError> {
        loop {
            let mut lease = upstream
                .pool
                .lease(self.options.connect_timeout)
                .await
                .map_err(SendError::Connect)?;
            match lease.conn.exchange(request).await {
                Ok(head) => {
                    lease.answered();
                    return Ok((head, lease));
                }
                // Never written: the instance had closed this idle connection. Each pass
                // takes another idle connection or, at last, a new one.
                Err(h1::Error::Unsent(_)) if lease.reused => {}
                Err(error) => return Err(SendError::Failed(error)),
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
            SendError::Failed(h1::Error::Invalid(_)) => {
                tracing::warn!(%env, %instance, error = %problem, "the instance answered with something that is not HTTP/1.1");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("an instance of {env} sent an answer that is not valid HTTP/1.1\n"),
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
    match error {
        SendError::Connect(error) => error.to_string(),
        SendError::Failed(error) => error.to_string(),
        SendError::TimedOut => "no response headers in time".to_owned(),
    }
}
