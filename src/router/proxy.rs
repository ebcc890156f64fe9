//! One request through the router: find the route, wait out a hold, pick a backend, pass
//! the request on with its body streaming, and pass the answer back the same way. The
//! router's own answers (404, 502, 503, 504) are short plain-text bodies.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::RouterBody;
use super::h1;
use super::headers;
use super::hold::HoldOutcome;
use super::inflight::InFlightGuard;
use super::pool::Lease;
use super::send::Sent;
use super::table::{Route, Upstream};
use super::{upgrade, Inner};
use crate::ids::EnvKey;

/// What a request knows of the connection it came on.
pub(crate) struct Connection {
    /// The router it came to.
    pub router: Arc<Inner>,
    /// The client's address, ready for `X-Forwarded-For`.
    pub client_ip: HeaderValue,
    /// Set on an environment's fixed port: every request goes there.
    pub env: Option<EnvKey>,
    /// Where upgraded connections (WebSockets) run, and how they are told to stop.
    pub tunnels: TaskTracker,
    pub closing: CancellationToken,
}

impl Inner {
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        connection: &Connection,
    ) -> Response<RouterBody> {
        self.requests[super::workers::current() % self.requests.len()].bump();
        let Some(route) = self.route(&request, connection) else {
            return unrouted(&request, connection);
        };
        if route.hold.is_held() {
            // Boxed: a held request is rare, and its wait must not weigh on the future
            // of every request.
            return Box::pin(self.held(route, request, connection)).await;
        }
        self.forward(&route, request, connection).await
    }

    /// A request that arrived while its environment's requests are held.
    async fn held(
        &self,
        route: Arc<Route>,
        request: Request<Incoming>,
        connection: &Connection,
    ) -> Response<RouterBody> {
        match route.hold.wait().await {
            // The backends may have changed while the request waited: the new release.
            HoldOutcome::Released => match self.route(&request, connection) {
                Some(current) => self.forward(&current, request, connection).await,
                None => unrouted(&request, connection),
            },
            HoldOutcome::TimedOut {
                waited,
                maintenance,
            } => {
                let body = if maintenance {
                    format!(
                        "down for maintenance: request held for {}; try again later\n",
                        seconds(waited)
                    )
                } else {
                    format!(
                        "deploy in progress: request held for {}; try again\n",
                        seconds(waited)
                    )
                };
                text(StatusCode::SERVICE_UNAVAILABLE, body)
            }
        }
    }

    /// The route of a request: its connection's environment, else its `Host`.
    fn route(&self, request: &Request<Incoming>, connection: &Connection) -> Option<Arc<Route>> {
        let table = self.table.load();
        match &connection.env {
            Some(env) => table.route_for_env(env).cloned(),
            None => request_host(request).and_then(|host| table.route_for_host(host).cloned()),
        }
    }

    async fn forward(
        &self,
        route: &Route,
        request: Request<Incoming>,
        connection: &Connection,
    ) -> Response<RouterBody> {
        let Some(upstream) = route.pick().cloned() else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                route.no_healthy_body.clone(),
            );
        };
        let Outgoing {
            request,
            replayable,
            client_upgrade,
            wants_release,
        } = outgoing(request, &upstream, connection);
        let Sent {
            upstream,
            guard,
            outcome,
        } = self.send(route, upstream, request, replayable).await;
        match outcome {
            Ok((head, lease)) => answer(
                head,
                lease,
                &upstream,
                guard,
                client_upgrade,
                wants_release,
                connection,
            ),
            Err(error) => self.failure(route, &upstream, error),
        }
    }
}

/// A client's request made ready for an instance, with what its answer will need.
struct Outgoing {
    request: h1::Request,
    /// It may be sent again, to another instance, should the first not answer.
    replayable: bool,
    client_upgrade: Option<OnUpgrade>,
    wants_release: bool,
}

/// The request as the instance gets it: hop-by-hop headers removed, `X-Forwarded-*` set,
/// a `Host` always, HTTP/1.1 in origin form, written out. Kept out of the async functions,
/// so none of its temporaries is part of the request's future.
fn outgoing(
    mut request: Request<Incoming>,
    upstream: &Upstream,
    connection: &Connection,
) -> Outgoing {
    let upgrading = headers::is_upgrade(request.headers());
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut request));
    let wants_release = headers::wants_release(request.headers());

    let (mut parts, body) = request.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upgrading);
    // A body of unknown length (chunked from the client, or an HTTP/2 stream) goes
    // chunked; one with a `Content-Length` as it is.
    let body = (!body.is_end_stream()).then(|| h1::RequestBody {
        chunked: !parts.headers.contains_key(header::CONTENT_LENGTH),
        body,
    });
    let chunked = body.as_ref().is_some_and(|body| body.chunked);

    let target = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let host = match parts.headers.get(header::HOST) {
        Some(host) => Some(host.as_bytes()),
        None => parts.uri.authority().map(|a| a.as_str().as_bytes()),
    };
    let head = headers::request_head(
        &parts.method,
        target,
        &parts.headers,
        &connection.client_ip,
        host,
        upstream.authority.as_str().as_bytes(),
    )
    .finish(chunked);
    let is_head = parts.method == Method::HEAD;

    // Only a request without a body can be sent twice.
    let replayable =
        matches!(parts.method, Method::GET | Method::HEAD) && body.is_none() && !upgrading;
    Outgoing {
        request: h1::Request {
            head,
            is_head,
            body,
        },
        replayable,
        client_upgrade,
        wants_release,
    }
}

/// Passes an instance's response back: hop-by-hop headers removed, the release named if
/// asked, the body streamed (and counted) until its end; a 101 becomes a tunnel.
fn answer(
    head: h1::Head,
    lease: Lease,
    upstream: &Upstream,
    guard: InFlightGuard,
    client_upgrade: Option<OnUpgrade>,
    wants_release: bool,
    connection: &Connection,
) -> Response<RouterBody> {
    let h1::Head {
        status,
        mut headers,
        framing,
        keep_alive,
    } = head;
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let client_upgrade = match (switching, client_upgrade) {
        (true, Some(client_upgrade)) => Some(client_upgrade),
        // A switch nobody asked for is not HTTP any more.
        (true, None) => {
            return text(
                StatusCode::BAD_GATEWAY,
                "the instance switched protocols without being asked to\n",
            )
        }
        (false, _) => None,
    };
    headers::strip_hop_by_hop(&mut headers, client_upgrade.is_some());
    if wants_release {
        headers.insert(headers::X_SLIPWAY_RELEASE, upstream.release_header.clone());
    }
    let body = match client_upgrade {
        Some(client_side) => {
            // The tunnel carries the in-flight count until it closes; the connection is
            // the tunnel's now, never the pool's again.
            upgrade::spawn_tunnel(connection, client_side, lease.into_conn(), guard);
            RouterBody::Empty
        }
        None => RouterBody::response(framing, keep_alive, guard, lease),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
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
pub(crate) fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
