//! `slipway.yml` as written: private serde structs that refuse unknown keys.
//!
//! Rules about one value live in `values`; rules that look at several keys of one
//! mapping (a health check is exactly one of `command`, `tcp`, `uptime`) are `MapRule`s,
//! checked inside the mapping's visitor so the error points at that mapping.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::hooks::{RawHook, RawHooks};
use super::model::{HealthCheck, HttpHealth};
use super::values::{
    AnyDuration, AppNameRule, Checked, CommandRule, DockerfilePath, DomainRule,
    EnvironmentNameRule, GlobRule, HealthPath, ImageRule, Instances, Port, PositiveDuration,
    Retain, Rule, ServiceNameRule, SizeMb, StopTimeout,
};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map of settings: app, services, build, image, hooks, environments, retain"
)]
pub(super) struct RawConfig {
    pub app: Option<Checked<AppNameRule>>,
    pub services: Option<Named<ServiceNameRule, RawService>>,
    pub build: Option<CheckedMap<BuildRule>>,
    pub image: Option<Checked<ImageRule>>,
    pub hooks: Option<RawHooks>,
    pub environments: Option<Named<EnvironmentNameRule, Option<CheckedMap<EnvironmentRule>>>>,
    pub retain: Option<Checked<Retain>>,
}

/// A service after its own checks; `http` is `Some` when the service has an `http:` key.
pub(super) type RawService = CheckedMap<ServiceRule>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceFields {
    pub command: Checked<CommandRule>,
    pub instances: Option<Checked<Instances>>,
    pub size: Option<Checked<SizeMb>>,
    pub stop_timeout: Option<Checked<StopTimeout>>,
    pub zero_downtime: Option<bool>,
    /// `http:` with nothing after it means an http service with the defaults.
    #[serde(default, deserialize_with = "null_means_default")]
    pub http: Option<RawHttp>,
    pub health: Option<CheckedMap<HealthRule>>,
}

pub(super) struct ServiceRule;
impl MapRule for ServiceRule {
    type Fields = ServiceFields;
    type Value = ServiceFields;
    const EXPECTING: &'static str = "a service: a map with at least `command`";
    fn check(fields: ServiceFields) -> Result<ServiceFields, String> {
        if fields.http.is_some() && fields.health.is_some() {
            return Err(
                "a service with `http` is health-checked by `http.health`; move the check there, or remove `http` for a non-http service"
                    .to_owned(),
            );
        }
        Ok(fields)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map with `health` and/or `watch`, or nothing for the defaults"
)]
pub(super) struct RawHttp {
    #[serde(default, deserialize_with = "null_means_default")]
    pub health: Option<RawHttpHealth>,
    pub watch: Option<Checked<AnyDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map with path, strict, interval, timeout and/or deadline"
)]
pub(super) struct RawHttpHealth {
    pub path: Option<Checked<HealthPath>>,
    pub strict: Option<bool>,
    pub interval: Option<Checked<PositiveDuration>>,
    pub timeout: Option<Checked<PositiveDuration>>,
    pub deadline: Option<Checked<PositiveDuration>>,
}

impl RawHttpHealth {
    pub fn into_model(self) -> HttpHealth {
        let defaults = HttpHealth::default();
        HttpHealth {
            path: self.path.map(|p| p.0).unwrap_or(defaults.path),
            strict: self.strict.unwrap_or(defaults.strict),
            interval: self.interval.map(|d| d.0).unwrap_or(defaults.interval),
            timeout: self.timeout.map(|d| d.0).unwrap_or(defaults.timeout),
            deadline: self.deadline.map(|d| d.0).unwrap_or(defaults.deadline),
        }
    }
}

/// The health check of a non-http service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HealthFields {
    command: Option<Checked<CommandRule>>,
    tcp: Option<Checked<Port>>,
    uptime: Option<Checked<PositiveDuration>>,
    interval: Option<Checked<PositiveDuration>>,
    timeout: Option<Checked<PositiveDuration>>,
    deadline: Option<Checked<PositiveDuration>>,
}

pub(super) struct HealthRule;
impl MapRule for HealthRule {
    type Fields = HealthFields;
    type Value = HealthCheck;
    const EXPECTING: &'static str =
        "a health check: a map with one of `command`, `tcp` or `uptime`";
    fn check(fields: HealthFields) -> Result<HealthCheck, String> {
        let defaults = HttpHealth::default();
        let timing_set =
            fields.interval.is_some() || fields.timeout.is_some() || fields.deadline.is_some();
        let interval = fields.interval.map(|d| d.0).unwrap_or(defaults.interval);
        let timeout = fields.timeout.map(|d| d.0).unwrap_or(defaults.timeout);
        let deadline = fields.deadline.map(|d| d.0).unwrap_or(defaults.deadline);
        match (fields.command, fields.tcp, fields.uptime) {
            (Some(command), None, None) => Ok(HealthCheck::Command { command: command.0, interval, timeout, deadline }),
            (None, Some(port), None) => Ok(HealthCheck::Tcp { port: port.0, interval, timeout, deadline }),
            (None, None, Some(uptime)) if !timing_set => Ok(HealthCheck::Uptime(uptime.0)),
            (None, None, Some(_)) => Err(
                "an `uptime` check takes no interval, timeout or deadline; remove them, or use a `command` or `tcp` check"
                    .to_owned(),
            ),
            (None, None, None) => Err(
                "a health check needs one of `command: \"...\"`, `tcp: PORT` or `uptime: 30s`".to_owned(),
            ),
            _ => Err("a health check has exactly one of `command`, `tcp` or `uptime`; keep one".to_owned()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BuildFields {
    hook: Option<RawHook>,
    timeout: Option<Checked<PositiveDuration>>,
    dockerfile: Option<Checked<DockerfilePath>>,
}

/// `build:` after its checks: the build hook already carries `build.timeout`.
#[derive(Debug)]
pub(super) struct RawBuild {
    pub hook: Option<RawHook>,
    pub dockerfile: Option<String>,
}

pub(super) struct BuildRule;
impl MapRule for BuildRule {
    type Fields = BuildFields;
    type Value = RawBuild;
    const EXPECTING: &'static str = "a build: a map with `hook`, `timeout` and/or `dockerfile`";
    fn check(fields: BuildFields) -> Result<RawBuild, String> {
        let timeout = fields.timeout.map(|t| t.0);
        let hook = match (fields.hook, timeout) {
            (Some(hook), Some(_)) if hook.timeout.is_some() => {
                return Err("the build timeout is set twice, in `timeout` and in `hook.timeout`; keep one".to_owned())
            }
            (Some(hook), Some(timeout)) => Some(RawHook { timeout: Some(timeout), ..hook }),
            (None, Some(_)) => {
                return Err("`timeout` applies to the build hook, and there is none; add `hook`, or remove `timeout`".to_owned())
            }
            (hook, None) => hook,
        };
        Ok(RawBuild {
            hook,
            dockerfile: fields.dockerfile.map(|d| d.0),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvironment {
    pub branches: Option<Globs>,
    pub tags: Option<Globs>,
    pub pull_requests: Option<bool>,
    pub trust_forks: Option<bool>,
    pub domain: Option<Checked<DomainRule>>,
    pub port: Option<Checked<Port>>,
}

/// An environment whose settings agree with each other.
pub(super) struct EnvironmentRule;
impl MapRule for EnvironmentRule {
    type Fields = RawEnvironment;
    type Value = RawEnvironment;
    const EXPECTING: &'static str =
        "an environment: a map with branches, tags, pull_requests, trust_forks, domain and/or port";
    fn check(environment: RawEnvironment) -> Result<RawEnvironment, String> {
        // Every pull request gets a preview of its own: one port or one domain cannot
        // belong to all of them.
        if environment.pull_requests == Some(true) {
            if let Some(port) = &environment.port {
                return Err(format!(
                    "`port: {}` cannot be shared by the preview of every pull request; remove it (each preview answers at pr-<number>.localhost)",
                    port.0
                ));
            }
            if let Some(domain) = &environment.domain {
                return Err(format!(
                    "`domain: {}` cannot be shared by the preview of every pull request; remove it (each preview answers at pr-<number>.localhost)",
                    domain.0
                ));
            }
        }
        Ok(environment)
    }
}

/// Branch or tag globs: a list, or one string for a single pattern.
#[derive(Debug, Default)]
pub(super) struct Globs(pub Vec<String>);

impl<'de> Deserialize<'de> for Globs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GlobsVisitor;
        impl<'de> Visitor<'de> for GlobsVisitor {
            type Value = Globs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of names or globs, like `[main, \"release/*\"]`")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Globs, E> {
                GlobRule::from_str(text)
                    .map(|glob| Globs(vec![glob]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Globs, A::Error> {
                let mut globs = Vec::new();
                while let Some(Checked(glob, _)) = seq.next_element::<Checked<GlobRule>>()? {
                    globs.push(glob);
                }
                Ok(Globs(globs))
            }
        }
        deserializer.deserialize_any(GlobsVisitor)
    }
}

/// A rule over a whole mapping: deserialize its `Fields`, then `check` them together.
pub(super) trait MapRule {
    type Fields: DeserializeOwned;
    type Value;
    const EXPECTING: &'static str;
    fn check(fields: Self::Fields) -> Result<Self::Value, String>;
}

/// A mapping that passed its `MapRule`. The check runs inside `visit_map`, so serde_yaml
/// reports its error at the mapping (a check after `deserialize` would point at the parent).
pub(super) struct CheckedMap<R: MapRule>(pub R::Value);

impl<R: MapRule> fmt::Debug for CheckedMap<R>
where
    R::Value: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, R: MapRule> Deserialize<'de> for CheckedMap<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<R>(PhantomData<R>);
        impl<'de, R: MapRule> Visitor<'de> for MapVisitor<R> {
            type Value = CheckedMap<R>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(R::EXPECTING)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let fields = R::Fields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                R::check(fields).map(CheckedMap).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_map(MapVisitor::<R>(PhantomData))
    }
}

/// A mapping from checked names to values, in file order; a name given twice is refused,
/// and so is a value that claims what an earlier one has (`Distinct`).
pub(super) struct Named<R: Rule<Value = String>, V>(pub Vec<(String, V)>, PhantomData<R>);

/// What the value of one entry of a `Named` map must not share with another's.
pub(super) trait Distinct {
    /// What `self` claims that `earlier` has already, as `port: 8081`.
    fn claims_as(&self, earlier: &Self) -> Option<String>;
}

impl Distinct for RawService {
    fn claims_as(&self, _earlier: &Self) -> Option<String> {
        None
    }
}

/// One port or one domain routes to one environment.
impl Distinct for Option<CheckedMap<EnvironmentRule>> {
    fn claims_as(&self, earlier: &Self) -> Option<String> {
        let (Some(CheckedMap(mine)), Some(CheckedMap(theirs))) = (self, earlier) else {
            return None;
        };
        if let (Some(mine), Some(theirs)) = (&mine.port, &theirs.port) {
            if mine.0 == theirs.0 {
                return Some(format!("port: {}", mine.0));
            }
        }
        if let (Some(mine), Some(theirs)) = (&mine.domain, &theirs.domain) {
            if mine.0.eq_ignore_ascii_case(&theirs.0) {
                return Some(format!("domain: {}", mine.0));
            }
        }
        None
    }
}

impl<R: Rule<Value = String>, V: fmt::Debug> fmt::Debug for Named<R, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, R: Rule<Value = String>, V: Deserialize<'de> + Distinct> Deserialize<'de>
    for Named<R, V>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedVisitor<R, V>(PhantomData<(R, V)>);
        impl<'de, R: Rule<Value = String>, V: Deserialize<'de> + Distinct> Visitor<'de>
            for NamedVisitor<R, V>
        {
            type Value = Named<R, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a map from {} to its settings", R::EXPECTING)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some(Checked(name, _)) = map.next_key::<Checked<R>>()? {
                    if entries.iter().any(|(seen, _)| *seen == name) {
                        return Err(de::Error::custom(format!(
                            "`{name}` is defined twice; keep one"
                        )));
                    }
                    let value = map.next_value::<V>()?;
                    let clash = entries
                        .iter()
                        .find_map(|(earlier, theirs)| Some((earlier, value.claims_as(theirs)?)));
                    if let Some((earlier, claim)) = clash {
                        return Err(de::Error::custom(format!(
                            "`{name}` has `{claim}`, as `{earlier}` does; give each its own"
                        )));
                    }
                    entries.push((name, value));
                }
                Ok(Named(entries, PhantomData))
            }
        }
        deserializer.deserialize_map(NamedVisitor::<R, V>(PhantomData))
    }
}

/// For keys like `http:` whose mere presence means something: no value means defaults.
fn null_means_default<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// Reads a duration already checked, or a default.
pub(super) fn duration_or<R: Rule<Value = Duration>>(
    value: Option<Checked<R>>,
    default: Duration,
) -> Duration {
    value.map(|v| v.0).unwrap_or(default)
}
