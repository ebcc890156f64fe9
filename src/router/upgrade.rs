//! Upgraded connections (WebSockets and anything else answered `101 Switching Protocols`):
//! once both sides have switched, bytes are copied both ways until either closes. The
//! tunnel holds its backend's in-flight guard, so a drain waits for it until its deadline.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::h1::Conn;
use super::inflight::InFlightGuard;
use super::proxy::Connection;

/// Runs the tunnel on the serving loop's task tracker, so shutdown can wait for it and,
/// past its deadline, close it.
pub(crate) fn spawn_tunnel(
    connection: &Connection,
    client: OnUpgrade,
    upstream: Conn,
    guard: InFlightGuard,
) {
    let closing = connection.closing.clone();
    connection.tunnels.spawn(async move {
        // The backend's in-flight count, held as long as the tunnel is open.
        let _guard = guard;
        let client = match client.await {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(%error, "an upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let Conn {
            stream: mut upstream,
            read: early,
        } = upstream;
        // What the instance sent right behind its 101 is the tunnel's first bytes.
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(error) = copied {
                    tracing::debug!(%error, "an upgraded connection ended with an error");
                }
            }
            _ = closing.cancelled() => tracing::debug!("closing an upgraded connection: the router is stopping"),
        }
    });
}
