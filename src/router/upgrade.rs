//! Upgraded connections (WebSockets and anything else answered `101 Switching Protocols`):
//! once both sides have switched, bytes are copied both ways until either closes. The
//! tunnel holds its backend's in-flight guard, so a drain waits for it until its deadline.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::inflight::InFlightGuard;
use super::pool::Lease;
use super::proxy::Connection;

/// Runs the tunnel on the serving loop's task tracker, so shutdown can wait for it and,
/// past its deadline, close it.
pub(crate) fn spawn_tunnel(
    connection: &Connection,
    client: OnUpgrade,
    upstream: OnUpgrade,
    held: (InFlightGuard, Lease),
) {
    let closing = connection.closing.clone();
    connection.tunnels.spawn(async move {
        // The backend's in-flight count, and the connection's sender: the connection is
        // never lent again, and lives as long as the tunnel does.
        let _held = held;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "an upgrade did not complete");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
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
