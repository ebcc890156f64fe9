//! The routing table: an immutable snapshot from host name to an environment's backends,
//! rebuilt from the router's record of environments on every change and swapped in whole,
//! so a request sees either the old backends or the new ones, never a mix.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::http::uri::Authority;

use super::hold::HoldGate;
use super::inflight::InFlight;
use super::pool::Pool;
use super::workers::Padded;
use crate::ids::EnvKey;
use crate::pipeline::traits::Backend;

/// One backend, parsed once at switch time so requests only clone reference counts.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub backend: Backend,
    pub authority: Authority,
    /// `v<N>`, for `X-Slipway-Release`.
    pub release_header: HeaderValue,
    pub inflight: Arc<InFlight>,
    /// Its keep-alive connections.
    pub pool: Arc<Pool>,
}

/// Where one environment's requests go.
#[derive(Debug)]
pub(crate) struct Route {
    pub env: EnvKey,
    pub upstreams: Vec<Arc<Upstream>>,
    /// The release switched away from, kept running through a watch: not routed to, only
    /// tried by a GET or HEAD that could not reach any of `upstreams`.
    pub standby: Vec<Arc<Upstream>>,
    /// Each worker's round-robin position, alone on its cache line.
    next: Box<[Padded<AtomicUsize>]>,
    pub hold: Arc<HoldGate>,
    /// The 503 body, written once per table rather than per request.
    pub no_healthy_body: Bytes,
}

impl Route {
    /// The next backend, round-robin (each worker taking its own turns, so that no
    /// counter is written by every core on every request).
    pub(crate) fn pick(&self) -> Option<&Arc<Upstream>> {
        match self.upstreams.len() {
            0 => None,
            1 => self.upstreams.first(),
            count => {
                let next = &self.next[super::workers::current() % self.next.len()];
                self.upstreams
                    .get(next.0.fetch_add(1, Ordering::Relaxed) % count)
            }
        }
    }

    /// Where a request that `failed` goes for its second try: another routed backend,
    /// else one on standby, else the same one again (a switch may just have replaced
    /// the table, or its connection was stale).
    pub(crate) fn pick_retry(&self, failed: &Backend) -> Option<&Arc<Upstream>> {
        let other = match self.pick()? {
            first if first.backend != *failed => return Some(first),
            first if self.upstreams.len() == 1 => first,
            _ => self.pick()?,
        };
        if other.backend != *failed {
            return Some(other);
        }
        let standby = match self.standby.len() {
            0 => None,
            count => self.standby.get(super::workers::current() % count),
        };
        standby.or(Some(other))
    }
}

/// A snapshot of every route.
#[derive(Debug, Default)]
pub(crate) struct Table {
    by_host: HashMap<Box<str>, Arc<Route>>,
    by_env: HashMap<EnvKey, Arc<Route>>,
}

impl Table {
    /// The route of a `Host` header value (any case, port ignored).
    pub(crate) fn route_for_host(&self, host: &str) -> Option<&Arc<Route>> {
        self.by_host.get(normalize_host(host).as_ref())
    }

    pub(crate) fn route_for_env(&self, env: &EnvKey) -> Option<&Arc<Route>> {
        self.by_env.get(env)
    }
}

/// `Host` without its port or a trailing dot, lowercased (allocating only when it has
/// upper-case letters).
pub(crate) fn normalize_host(raw: &str) -> Cow<'_, str> {
    let without_port = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        rest.split(']').next().unwrap_or(rest)
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => raw,
        }
    };
    let name = without_port.strip_suffix('.').unwrap_or(without_port);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The host name an environment always answers to.
pub(crate) fn default_host(env: &EnvKey) -> String {
    format!("{}-{}.localhost", env.app, env.env).to_ascii_lowercase()
}

/// An environment as the router knows it.
#[derive(Debug, Default)]
struct EnvEntry {
    backends: Vec<Backend>,
    standby: Vec<Backend>,
    domains: Vec<String>,
    hold: Arc<HoldGate>,
}

/// The router's record of environments: written under a lock by the pipeline (rarely),
/// turned into a fresh [`Table`] after every change.
#[derive(Debug)]
pub(crate) struct Environments {
    envs: BTreeMap<EnvKey, EnvEntry>,
    /// What outlives one table, by backend: kept while anything can still use it, so
    /// `drain` finds a backend that was switched away from, and a switch back finds its
    /// connections.
    backends: HashMap<Backend, Kept>,
    /// The router's workers, each with its own slot in every pool.
    workers: usize,
}

/// A backend's in-flight counter and connection pool.
#[derive(Debug)]
struct Kept {
    inflight: Arc<InFlight>,
    pool: Arc<Pool>,
}

impl Kept {
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.inflight) > 1 || Arc::strong_count(&self.pool) > 1
    }
}

impl Environments {
    pub(crate) fn new(workers: usize) -> Environments {
        Environments {
            envs: BTreeMap::new(),
            backends: HashMap::new(),
            workers,
        }
    }

    /// Routes the environment to `backends`; whatever was on standby is not any more.
    pub(crate) fn set_backends(&mut self, env: &EnvKey, backends: Vec<Backend>) {
        let entry = self.envs.entry(env.clone()).or_default();
        entry.backends = backends;
        entry.standby.clear();
    }

    /// Keeps `backends` for the second try of requests that could not reach the routed
    /// ones (none: ends it).
    pub(crate) fn set_standby(&mut self, env: &EnvKey, backends: Vec<Backend>) {
        self.envs.entry(env.clone()).or_default().standby = backends;
    }

    pub(crate) fn set_domains(&mut self, env: &EnvKey, domains: Vec<String>) {
        let domains = domains
            .iter()
            .map(|domain| normalize_host(domain.trim()).into_owned())
            .collect();
        self.envs.entry(env.clone()).or_default().domains = domains;
    }

    /// The first domain of an environment, if it has one.
    pub(crate) fn domain_of(&self, env: &EnvKey) -> Option<String> {
        self.envs.get(env)?.domains.first().cloned()
    }

    /// The hold gate of an environment, creating the environment if needed.
    pub(crate) fn hold_gate(&mut self, env: &EnvKey) -> Arc<HoldGate> {
        Arc::clone(&self.envs.entry(env.clone()).or_default().hold)
    }

    /// Forgets an environment; returns its hold gate so waiting requests can be let go.
    pub(crate) fn remove(&mut self, env: &EnvKey) -> Option<Arc<HoldGate>> {
        self.envs.remove(env).map(|entry| entry.hold)
    }

    /// The counters of these backends that anything could still be counting on.
    pub(crate) fn counters_for(&self, backends: &[Backend]) -> Vec<Arc<InFlight>> {
        backends
            .iter()
            .filter_map(|backend| self.backends.get(backend))
            .map(|kept| Arc::clone(&kept.inflight))
            .collect()
    }

    /// A new snapshot of every route.
    pub(crate) fn build(&mut self) -> Table {
        let mut table = Table::default();
        let mut routed: HashSet<Backend> = HashSet::new();
        for (env, entry) in &self.envs {
            let mut upstreams_of = |backends: &[Backend]| {
                backends
                    .iter()
                    .filter_map(|backend| {
                        let upstream = parse_upstream(backend, &mut self.backends, self.workers);
                        if upstream.is_none() {
                            tracing::warn!(%env, address = %backend.address, "backend address is not host:port; not routing to it");
                        }
                        upstream
                    })
                    .collect::<Vec<_>>()
            };
            let upstreams = upstreams_of(&entry.backends);
            let standby = upstreams_of(&entry.standby);
            // A standby's connections stay open: they are what a retry would use.
            routed.extend(entry.backends.iter().chain(&entry.standby).cloned());
            let route = Arc::new(Route {
                env: env.clone(),
                upstreams,
                standby,
                next: (0..self.workers.max(1))
                    .map(|_| Padded::default())
                    .collect(),
                hold: Arc::clone(&entry.hold),
                no_healthy_body: Bytes::from(format!("no healthy instance of {env}\n")),
            });
            for host in std::iter::once(default_host(env)).chain(entry.domains.iter().cloned()) {
                if let Some(previous) = table
                    .by_host
                    .insert(host.clone().into_boxed_str(), Arc::clone(&route))
                {
                    tracing::warn!(%host, first = %previous.env, second = %env, "two environments claim one host; the second wins");
                }
            }
            table.by_env.insert(env.clone(), route);
        }
        // What no table and no request refers to any more can go: nothing can enter it.
        self.backends
            .retain(|backend, kept| routed.contains(backend) || kept.in_use());
        for (backend, kept) in &self.backends {
            if !routed.contains(backend) {
                kept.pool.close_idle();
            }
        }
        table
    }
}

fn parse_upstream(
    backend: &Backend,
    kept: &mut HashMap<Backend, Kept>,
    workers: usize,
) -> Option<Arc<Upstream>> {
    let address = backend.address.trim();
    let address = address
        .strip_prefix("http://")
        .unwrap_or(address)
        .trim_end_matches('/');
    let authority = Authority::try_from(address).ok()?;
    authority.port_u16()?;
    let release_header = HeaderValue::try_from(backend.release.to_string()).ok()?;
    let kept = kept.entry(backend.clone()).or_insert_with(|| Kept {
        inflight: Arc::default(),
        pool: Arc::new(Pool::new(authority.as_str(), workers)),
    });
    Some(Arc::new(Upstream {
        backend: backend.clone(),
        authority,
        release_header,
        inflight: Arc::clone(&kept.inflight),
        pool: Arc::clone(&kept.pool),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ReleaseNumber;

    fn backend(address: &str) -> Backend {
        Backend {
            address: address.to_owned(),
            release: ReleaseNumber(1),
            instance: address.to_owned(),
        }
    }

    #[test]
    fn hosts_are_matched_without_port_and_case() {
        assert_eq!(
            normalize_host("Shop-Staging.localhost:8080"),
            "shop-staging.localhost"
        );
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert!(matches!(
            normalize_host("shop-staging.localhost"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_table_routes_default_hosts_and_domains() {
        let env = EnvKey::new("shop", "staging");
        let mut envs = Environments::new(1);
        envs.set_backends(
            &env,
            vec![backend("127.0.0.1:1"), backend("http://127.0.0.1:2/")],
        );
        envs.set_domains(&env, vec!["Shop.Example.com".to_owned()]);
        let table = envs.build();
        let route = table
            .route_for_host("SHOP-staging.localhost:3000")
            .expect("default host");
        assert_eq!(route.upstreams.len(), 2);
        assert!(table.route_for_host("shop.example.com").is_some());
        assert!(table.route_for_host("other-staging.localhost").is_none());
        let picked: Vec<_> = (0..4)
            .map(|_| route.pick().map(|u| u.authority.port_u16()))
            .collect();
        assert_eq!(
            picked,
            vec![Some(Some(1)), Some(Some(2)), Some(Some(1)), Some(Some(2))]
        );
    }

    #[test]
    fn unparseable_addresses_are_skipped() {
        let env = EnvKey::new("shop", "staging");
        let mut envs = Environments::new(1);
        envs.set_backends(&env, vec![backend("not an address"), backend("127.0.0.1")]);
        let table = envs.build();
        assert!(table
            .route_for_env(&env)
            .expect("route")
            .upstreams
            .is_empty());
    }
}
