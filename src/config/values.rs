//! Leaf values of `slipway.yml` that carry a rule: durations, bounded numbers, names, paths.
//!
//! Every check runs inside a serde `Visitor`. That is deliberate: serde_yaml attaches the
//! line and column of the value being visited to an error returned from the visitor,
//! while an error raised after `deserialize` has returned would point at the enclosing
//! mapping instead. So a rule written here is reported exactly where the user wrote
//! the value.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::duration::parse_duration;
use super::model::MAX_STOP_TIMEOUT;

/// A rule for one kind of value: what to accept, and how to describe it.
pub(super) trait Rule {
    type Value;
    /// Completes "expected ..." in type errors.
    const EXPECTING: &'static str;
    /// Text values read any scalar as text (`app: 2024` is the name "2024", and
    /// `timeout: 10` reaches the duration parser, which asks for a unit); numbers
    /// read the scalar as YAML typed it.
    const TEXT: bool;
    fn from_str(text: &str) -> Result<Self::Value, String> {
        Err(format!("`{text}` is not {}", Self::EXPECTING))
    }
    fn from_u64(number: u64) -> Result<Self::Value, String> {
        Err(format!("{number} is not {}", Self::EXPECTING))
    }
}

/// A value that passed its rule `R`.
pub(super) struct Checked<R: Rule>(pub R::Value, pub PhantomData<R>);

impl<R: Rule> fmt::Debug for Checked<R>
where
    R::Value: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, R: Rule> Deserialize<'de> for Checked<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if R::TEXT {
            deserializer.deserialize_str(RuleVisitor::<R>(PhantomData))
        } else {
            deserializer.deserialize_any(RuleVisitor::<R>(PhantomData))
        }
    }
}

struct RuleVisitor<R>(PhantomData<R>);

impl<'de, R: Rule> Visitor<'de> for RuleVisitor<R> {
    type Value = Checked<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(R::EXPECTING)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        R::from_str(text)
            .map(|v| Checked(v, PhantomData))
            .map_err(|message| E::custom(quoted_shortly(message, text)))
    }
    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
        R::from_u64(number)
            .map(|v| Checked(v, PhantomData))
            .map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
        match u64::try_from(number) {
            Ok(number) => self.visit_u64(number),
            Err(_) => Err(E::custom(format!(
                "{number} is negative; expected {}",
                R::EXPECTING
            ))),
        }
    }
    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
        Err(E::custom(format!(
            "{number} is not a whole number; expected {}",
            R::EXPECTING
        )))
    }
}

/// A rule's message quotes the value it refuses; a huge or binary value is quoted
/// shortened and escaped instead (see `crate::text::shown`), here once for every rule.
fn quoted_shortly(message: String, text: &str) -> String {
    if text.is_empty() || !crate::text::needs_shortening(text) {
        return message;
    }
    message.replace(text, &crate::text::shown(text))
}

/// Any duration, zero included (`watch: 0s` turns the watch off).
pub(super) struct AnyDuration;
impl Rule for AnyDuration {
    type Value = Duration;
    const EXPECTING: &'static str = "a duration like `500ms`, `10s`, `15m` or `1h30m`";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<Duration, String> {
        parse_duration(text)
    }
}

/// A duration that must be longer than zero: timeouts, intervals, deadlines.
pub(super) struct PositiveDuration;
impl Rule for PositiveDuration {
    type Value = Duration;
    const EXPECTING: &'static str = AnyDuration::EXPECTING;
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<Duration, String> {
        match parse_duration(text)? {
            Duration::ZERO => Err(format!(
                "`{}` is zero; use a duration longer than zero, e.g. `10s`",
                text.trim()
            )),
            duration => Ok(duration),
        }
    }
}

/// `stop_timeout`: how long SIGTERM gets before SIGKILL; at most 15 minutes, like Aptible.
pub(super) struct StopTimeout;
impl Rule for StopTimeout {
    type Value = Duration;
    const EXPECTING: &'static str = AnyDuration::EXPECTING;
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<Duration, String> {
        let duration = parse_duration(text)?;
        if duration > MAX_STOP_TIMEOUT {
            return Err(format!(
                "{} is longer than the 15m maximum; use a value up to 15m",
                text.trim()
            ));
        }
        Ok(duration)
    }
}

/// `instances`: from 1 to 100 per service.
pub(super) struct Instances;
impl Rule for Instances {
    type Value = u32;
    const EXPECTING: &'static str = "a whole number of instances from 1 to 100";
    const TEXT: bool = false;
    fn from_u64(number: u64) -> Result<u32, String> {
        match number {
            0 => Err("0 instances is not allowed; use a number from 1 to 100 (remove the service to stop it)".to_owned()),
            1..=100 => Ok(number as u32),
            _ => Err(format!("{number} is more than the 100 instances allowed; use a number from 1 to 100")),
        }
    }
}

/// The largest `size` we accept: 1 TiB, far above any machine we run on, but it keeps
/// the value inside what container runtimes accept.
const MAX_SIZE_MB: u64 = 1024 * 1024;

/// `size`: memory in MB.
pub(super) struct SizeMb;
impl Rule for SizeMb {
    type Value = u32;
    const EXPECTING: &'static str = "a memory size in MB, e.g. 512";
    const TEXT: bool = false;
    fn from_u64(number: u64) -> Result<u32, String> {
        match number {
            0 => Err(
                "a size of 0 MB is not allowed; use a size in MB from 1 to 1048576, e.g. 512"
                    .to_owned(),
            ),
            1..=MAX_SIZE_MB => Ok(number as u32),
            _ => Err(format!(
                "{number} MB is more than the 1048576 MB allowed; use a size in MB, e.g. 512"
            )),
        }
    }
}

/// A TCP port, 1 to 65535.
pub(super) struct Port;
impl Rule for Port {
    type Value = u16;
    const EXPECTING: &'static str = "a port number from 1 to 65535";
    const TEXT: bool = false;
    fn from_u64(number: u64) -> Result<u16, String> {
        match u16::try_from(number) {
            Ok(0) | Err(_) => Err(format!(
                "port {number} is not allowed; use a port from 1 to 65535"
            )),
            Ok(port) => Ok(port),
        }
    }
}

/// `retain`: how many releases' artifacts to keep; the serving one and its predecessor
/// are never pruned, so fewer than 2 cannot be honoured.
pub(super) struct Retain;
impl Rule for Retain {
    type Value = usize;
    const EXPECTING: &'static str = "a whole number of releases, 2 or more";
    const TEXT: bool = false;
    fn from_u64(number: u64) -> Result<usize, String> {
        match usize::try_from(number) {
            Ok(n) if n >= 2 => Ok(n),
            _ => Err(format!(
                "{number} is too few; the serving release and its predecessor are always kept, so use 2 or more"
            )),
        }
    }
}

/// Names that become part of a host name (`<app>-<env>.localhost`): one DNS label.
pub(super) fn check_dns_label(text: &str, what: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a valid {what}; use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-' (it becomes part of a host name)"
        ))
    }
}

/// `app:`.
pub(super) struct AppNameRule;
impl Rule for AppNameRule {
    type Value = String;
    const EXPECTING: &'static str = "an app name";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        check_dns_label(text, "app name")
    }
}

/// A key of `environments:`. `pr-<number>` is taken by pull-request previews.
pub(super) struct EnvironmentNameRule;
impl Rule for EnvironmentNameRule {
    type Value = String;
    const EXPECTING: &'static str = "an environment name";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        let name = check_dns_label(text, "environment name")?;
        let preview_like = name
            .strip_prefix("pr-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if preview_like {
            return Err(format!(
                "`{name}` is reserved for pull-request previews; name the environment differently and set `pull_requests: true` on it"
            ));
        }
        Ok(name)
    }
}

/// A key of `services:`, like a Procfile process type.
pub(super) struct ServiceNameRule;
impl Rule for ServiceNameRule {
    type Value = String;
    const EXPECTING: &'static str = "a service name";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        check_service_name(text)
    }
}

/// Service names follow Procfile process types: letters, digits, `-` and `_`.
pub(super) fn check_service_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && text.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a valid service name; use 1 to 63 letters, digits, '-' and '_', starting with a letter or digit"
        ))
    }
}

/// A command line: a service's `command`, a health `command`.
pub(super) struct CommandRule;
impl Rule for CommandRule {
    type Value = String;
    const EXPECTING: &'static str = "a command, e.g. `exec python3 app.py`";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        if text.trim().is_empty() {
            return Err(
                "the command is empty; write the command to run, e.g. `exec python3 app.py`"
                    .to_owned(),
            );
        }
        Ok(text.to_owned())
    }
}

/// An HTTP health-check path.
pub(super) struct HealthPath;
impl Rule for HealthPath {
    type Value = String;
    const EXPECTING: &'static str = "a path like `/healthcheck`";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "`{text}` does not start with '/'; write a path like `/{}`",
                text.trim_start_matches('/')
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "`{text}` contains a space; write a URL path like `/healthcheck`"
            ));
        }
        Ok(text.to_owned())
    }
}

/// `build.dockerfile`: relative to the app dir and never outside it.
pub(super) struct DockerfilePath;
impl Rule for DockerfilePath {
    type Value = String;
    const EXPECTING: &'static str = "a path to a Dockerfile relative to the app directory";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        let path = std::path::Path::new(text);
        if text.trim().is_empty() {
            return Err("the Dockerfile path is empty; write a path relative to the app directory, e.g. `Dockerfile`".to_owned());
        }
        if path.is_absolute() || text.starts_with('/') || text.starts_with('\\') {
            return Err(format!("`{text}` is an absolute path; use a path relative to the app directory, e.g. `Dockerfile`"));
        }
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
            || text.split(['/', '\\']).any(|part| part == "..")
        {
            return Err(format!(
                "`{text}` leaves the app directory; use a path inside it, without `..`"
            ));
        }
        Ok(text.to_owned())
    }
}

/// `image:` a registry reference without a tag or digest-specific rules; the source
/// module resolves tags. We only refuse what can never be an image reference.
pub(super) struct ImageRule;
impl Rule for ImageRule {
    type Value = String;
    const EXPECTING: &'static str = "an image name like `registry.example.com/acme/shop`";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "`{text}` is not an image name; write one like `registry.example.com/acme/shop`"
            ));
        }
        Ok(text.to_owned())
    }
}

/// An environment's `domain`: a host name the router answers for.
pub(super) struct DomainRule;
impl Rule for DomainRule {
    type Value = String;
    const EXPECTING: &'static str = "a host name like `shop.example.com`";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        let labels_ok = text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if text.len() > 253 || !labels_ok {
            return Err(format!(
                "`{text}` is not a host name; write one like `shop.example.com` (no scheme, port or path)"
            ));
        }
        Ok(text.to_ascii_lowercase())
    }
}

/// A branch or tag glob.
pub(super) struct GlobRule;
impl Rule for GlobRule {
    type Value = String;
    const EXPECTING: &'static str = "a branch or tag name, or a glob like `release/*`";
    const TEXT: bool = true;
    fn from_str(text: &str) -> Result<String, String> {
        if text.trim().is_empty() {
            return Err(
                "an empty pattern matches nothing; write a name or a glob like `release/*`"
                    .to_owned(),
            );
        }
        Ok(text.to_owned())
    }
}
