//! Asking the router, from the outside, which release answers an environment: a real
//! `GET /` to the router's own address with `X-Slipway-Debug: release`, so the answer
//! proves the whole path a user's request takes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::RouterBody;
use super::headers::{X_SLIPWAY_DEBUG, X_SLIPWAY_RELEASE};
use super::table::default_host;
use super::Inner;
use crate::ids::{EnvKey, ReleaseNumber};

/// How much of an unexpected answer's body is quoted back.
const QUOTED_BODY: usize = 200;

pub(crate) async fn probe(inner: &Inner, env: &EnvKey) -> Result<ReleaseNumber, String> {
    let address = reachable(inner.listen);
    let host = HeaderValue::try_from(default_host(env))
        .map_err(|_| format!("{env} has no valid host name"))?;
    let mut request = Request::new(RouterBody::Empty);
    *request.uri_mut() = Uri::from_static("/");
    request.headers_mut().insert(header::HOST, host);
    request
        .headers_mut()
        .insert(X_SLIPWAY_DEBUG, HeaderValue::from_static("release"));

    let limit = inner.options.upstream_timeout + inner.options.connect_timeout;
    let response = match tokio::time::timeout(limit, send(address, request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Err(format!("could not reach the router at {address}: {error}")),
        Err(_) => {
            return Err(format!(
                "the router at {address} did not answer within {limit:?}"
            ))
        }
    };
    let status = response.status();
    if let Some(release) = response.headers().get(X_SLIPWAY_RELEASE) {
        return release
            .to_str()
            .map_err(|_| "the release header is not text".to_owned())?
            .parse::<ReleaseNumber>();
    }
    // No instance answered: the router's own page says why.
    let body = Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await;
    let text = body
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text[..text.len().min(QUOTED_BODY)])
        .trim()
        .to_owned();
    Err(format!("{status} from {}: {text}", default_host(env)))
}

/// One request on a connection of its own: probes are rare, and must not share a pool
/// with the requests they check.
async fn send(
    address: SocketAddr,
    request: Request<RouterBody>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(address).await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    // The connection ends with the response's body (read or dropped) and the sender.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "the probe's connection ended with an error");
        }
    });
    Ok(sender.send_request(request).await?)
}

/// The listen address as something to connect to: `0.0.0.0` means this machine.
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}
