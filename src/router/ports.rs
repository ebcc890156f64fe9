//! The fixed ports of environments (`environments.<env>.port`): a listener each, served by
//! the router's workers like the shared address, every request on it going to its
//! environment whatever its `Host`. Opened when a release that names the port is about to
//! take traffic, closed when a release without it does or the environment is torn down,
//! and all closed with the shared listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::net::TcpListener;
use tokio_util::sync::DropGuard;

use super::Router;
use crate::ids::EnvKey;

/// The open fixed ports, by environment.
#[derive(Debug, Default)]
pub(crate) struct Ports {
    open: Mutex<HashMap<EnvKey, Open>>,
}

/// One environment's port; dropping it stops its listener.
#[derive(Debug)]
struct Open {
    port: u16,
    _stop: DropGuard,
}

impl Ports {
    fn open(&self) -> MutexGuard<'_, HashMap<EnvKey, Open>> {
        // Every edit is one insert or remove: a panic cannot leave the map half-done.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn port_of(&self, env: &EnvKey) -> Option<u16> {
        self.open().get(env).map(|open| open.port)
    }

    /// The other environment that listens on `port`, if one does.
    fn holder_other_than(&self, env: &EnvKey, port: u16) -> Option<EnvKey> {
        self.open()
            .iter()
            .find(|(holder, open)| open.port == port && *holder != env)
            .map(|(holder, _)| holder.clone())
    }

    /// Stops listening on the environment's own port, if it has one.
    pub(crate) fn close(&self, env: &EnvKey) {
        if self.open().remove(env).is_some() {
            tracing::info!(%env, "closed the environment's own port");
        }
    }
}

impl Router {
    /// Listens on `port` for `env` alone (`None`: on no port of its own), closing the port
    /// it had before. A port that cannot be listened on changes nothing.
    pub(crate) async fn set_port(&self, env: &EnvKey, port: Option<u16>) -> Result<(), String> {
        let ports = &self.inner.ports;
        if ports.port_of(env) == port {
            return Ok(());
        }
        let Some(port) = port else {
            ports.close(env);
            return Ok(());
        };
        if let Some(holder) = ports.holder_other_than(env, port) {
            return Err(format!(
                "port {port} is already the port of {holder} (its environments.{}.port); give {env} another one (environments.{}.port)",
                holder.env, env.env
            ));
        }
        let address = SocketAddr::new(self.inner.listen.ip(), port);
        let listener = TcpListener::bind(address).await.map_err(|error| {
            format!(
                "cannot listen on {address} for {env} (environments.{}.port): {error}; choose another port, or stop what listens there",
                env.env
            )
        })?;
        let stop = self.inner.closing.child_token();
        let serving = self.clone().serve_environment(env.clone(), listener, {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        let env_name = env.clone();
        self.inner.port_listeners.spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(env = %env_name, %error, "an environment's own port stopped serving");
            }
        });
        let open = Open {
            port,
            _stop: stop.drop_guard(),
        };
        // The port the environment had before, if any, closes as its `Open` is dropped.
        ports.open().insert(env.clone(), open);
        Ok(())
    }
}
