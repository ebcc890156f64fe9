//! One request through the router: find the route, wait out a hold, pick a backend, pass
//! the request on with its body streaming, and pass the answer back the same way. The
//! router's own answers (404, 502, 503, 504) are short plain-text bodies.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::http::uri::{PathAndQuery, Scheme};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::RouterBody;
use super::headers;
use super::hold::HoldOutcome;
use super::table::{Route, Upstream};
use super::{upgrade, Inner};
use crate::ids::EnvKey;

/// What a request knows of the connection it came on.
pub(crate) struct Connection {
    /// The client's address, ready for `X-Forwarded-For`.
    pub client_ip: HeaderValue,
    /// Set on an environment's fixed port: every request goes there.
    pub env: Option<EnvKey>,
    /// Where upgraded connections (WebSockets) run, and how they are told to stop.
    pub tunnels: TaskTracker,
    pub closing: CancellationToken,
}

/// Why a request did not reach an answer from a backend.
enum SendError {
    Connect(hyper_util::client::legacy::Error),
    Failed(hyper_util::client::legacy::Error),
    TimedOut,
}

impl Inner {
    pub(crate) async fn handle(
        &self,
        mut request: Request<Incoming>,
        connection: &Connection,
    ) -> Response<RouterBody> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(mut route) = self.route(&request, connection) else {
            return unrouted(&request, connection);
        };
        if route.hold.is_held() {
            match route.hold.wait().await {
                // The backends may have changed while the request waited: the new release.
                HoldOutcome::Released => match self.route(&request, connection) {
                    Some(current) => route = current,
                    None => return unrouted(&request, connection),
                },
                HoldOutcome::TimedOut(waited) => {
                    return text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "deploy in progress: request held for {}; try again\n",
                            seconds(waited)
                        ),
                    )
                }
            }
        }
        let Some(upstream) = route.pick().cloned() else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                route.no_healthy_body.clone(),
            );
        };

        let upgrading = headers::is_upgrade(request.headers());
        let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut request));
        let wants_release = headers::wants_release(request.headers());
        let (mut parts, body) = request.into_parts();
        let original_host = parts.headers.get(header::HOST).cloned();
        headers::strip_hop_by_hop(&mut parts.headers, upgrading);
        headers::set_forwarded(
            &mut parts.headers,
            &connection.client_ip,
            original_host.clone(),
        );
        if original_host.is_none() {
            // An HTTP/2 request names its host in the URI; HTTP/1.1 to the instance needs it.
            if let Some(host) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(header::HOST, host);
            }
        }
        parts.version = Version::HTTP_11;
        parts.extensions.clear();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));

        // Only a request without a body can be sent twice; keep what a second try needs.
        let replayable = matches!(parts.method, Method::GET | Method::HEAD)
            && body.is_end_stream()
            && !upgrading;
        let retry = replayable.then(|| (parts.method.clone(), parts.headers.clone()));
        let body = if replayable {
            RouterBody::Empty
        } else {
            RouterBody::stream(body, None)
        };
        parts.uri = upstream_uri(&upstream, path.clone());

        let guard = upstream.inflight.enter();
        let mut outcome = self.send(Request::from_parts(parts, body)).await;
        let mut upstream = upstream;
        let mut guard = guard;
        if let (Err(SendError::Connect(error)), Some((method, headers))) = (&outcome, retry) {
            tracing::warn!(env = %route.env, instance = %upstream.backend.instance, error = %chain(error), "could not connect; trying another instance");
            // Re-read the table: a switch may just have replaced the instance that died.
            let current = self.table.load().route_for_env(&route.env).cloned();
            if let Some(next) = current
                .as_deref()
                .and_then(|route| route.pick_other(&upstream.backend))
                .cloned()
            {
                let mut retry = Request::new(RouterBody::Empty);
                *retry.method_mut() = method;
                *retry.headers_mut() = headers;
                *retry.uri_mut() = upstream_uri(&next, path);
                guard = next.inflight.enter();
                upstream = next;
                outcome = self.send(retry).await;
            }
        }

        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => return self.failure(&route, &upstream, error),
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                upgrade::spawn_tunnel(connection, client_upgrade, upstream_upgrade, guard);
                let (mut parts, _) = response.into_parts();
                headers::strip_hop_by_hop(&mut parts.headers, true);
                if wants_release {
                    parts
                        .headers
                        .insert(headers::X_SLIPWAY_RELEASE, upstream.release_header.clone());
                }
                return Response::from_parts(parts, RouterBody::Empty);
            }
        }
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        if wants_release {
            parts
                .headers
                .insert(headers::X_SLIPWAY_RELEASE, upstream.release_header.clone());
        }
        Response::from_parts(parts, RouterBody::stream(body, Some(guard)))
    }

    /// The route of a request: its connection's environment, else its `Host`.
    fn route(&self, request: &Request<Incoming>, connection: &Connection) -> Option<Arc<Route>> {
        let table = self.table.load();
        match &connection.env {
            Some(env) => table.route_for_env(env).cloned(),
            None => request_host(request).and_then(|host| table.route_for_host(host).cloned()),
        }
    }
}

/// The router's answer to a request it has no route for.
fn unrouted(request: &Request<Incoming>, connection: &Connection) -> Response<RouterBody> {
    match (&connection.env, request_host(request)) {
        (Some(env), _) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no healthy instance of {env}\n"),
        ),
        (None, Some(host)) => text(
            StatusCode::NOT_FOUND,
            format!("no app is routed at {host}\n"),
        ),
        (None, None) => text(
            StatusCode::NOT_FOUND,
            "no app is routed at a request without a Host header\n",
        ),
    }
}

/// The host a request names: its `Host` header, or (HTTP/2) its URI's authority.
fn request_host(request: &Request<Incoming>) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        })
}

impl Inner {
    async fn send(&self, request: Request<RouterBody>) -> Result<Response<Incoming>, SendError> {
        match tokio::time::timeout(self.options.upstream_timeout, self.client.request(request))
            .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) if error.is_connect() => Err(SendError::Connect(error)),
            Ok(Err(error)) => Err(SendError::Failed(error)),
            Err(_) => Err(SendError::TimedOut),
        }
    }

    fn failure(
        &self,
        route: &Route,
        upstream: &Upstream,
        error: SendError,
    ) -> Response<RouterBody> {
        let (env, instance) = (&route.env, &upstream.backend.instance);
        match error {
            SendError::Connect(error) => {
                tracing::warn!(%env, %instance, error = %chain(&error), "could not connect to the instance");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("could not connect to an instance of {env}\n"),
                )
            }
            SendError::Failed(error) => {
                tracing::warn!(%env, %instance, error = %chain(&error), "the instance failed the request");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("an instance of {env} closed the request without answering\n"),
                )
            }
            SendError::TimedOut => {
                let waited = seconds(self.options.upstream_timeout);
                tracing::warn!(%env, %instance, %waited, "the instance did not answer in time");
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

/// A response the router writes itself.
pub(crate) fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<RouterBody> {
    let mut response = Response::new(RouterBody::text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `30s`, or `300ms` when not whole seconds.
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// An error with its causes, for logs (the client's own message is only "Connect").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
