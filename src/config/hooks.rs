//! The `hooks:` section and the shape of one hook value.
//!
//! A hook is written three ways, as on Upsun and Aptible: a string (one script for
//! `sh`), a list of strings (commands run in order), or a map `{ run: ..., timeout: 10m }`.
//! The visitor below accepts exactly those, so a wrong shape is reported at the value.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::model::{Hook, HookBody, HookedOperation, Hooks, DEFAULT_DEPLOY_HOLD};
use super::values::{AnyDuration, Checked, CommandRule, PositiveDuration};

const HOOK_SHAPES: &str =
    "a hook: a script (a string), a list of commands, or a map like `{ run: ..., timeout: 10m }`";

/// One hook as written; the timeout is filled in later because its default depends
/// on which hook it is (the build gets an hour, the others ten minutes).
#[derive(Debug)]
pub(super) struct RawHook {
    pub body: HookBody,
    pub timeout: Option<Duration>,
}

impl RawHook {
    pub fn into_hook(self, default_timeout: Duration) -> Hook {
        Hook {
            body: self.body,
            timeout: self.timeout.unwrap_or(default_timeout),
        }
    }
}

impl<'de> Deserialize<'de> for RawHook {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(HookVisitor { allow_map: true })
    }
}

/// The value of `run:` inside a hook map: a script or a list, never another map.
struct RunValue(HookBody);

impl<'de> Deserialize<'de> for RunValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(HookVisitor { allow_map: false })
            .map(|hook| RunValue(hook.body))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HookMap {
    run: RunValue,
    timeout: Option<Checked<PositiveDuration>>,
}

struct HookVisitor {
    allow_map: bool,
}

impl<'de> Visitor<'de> for HookVisitor {
    type Value = RawHook;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.allow_map {
            f.write_str(HOOK_SHAPES)
        } else {
            f.write_str("a script (a string) or a list of commands")
        }
    }

    fn visit_str<E: de::Error>(self, script: &str) -> Result<RawHook, E> {
        if script.trim().is_empty() {
            return Err(E::custom(
                "the hook script is empty; write a script, or remove the hook",
            ));
        }
        Ok(RawHook {
            body: HookBody::Script(script.to_owned()),
            timeout: None,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawHook, A::Error> {
        let mut commands = Vec::new();
        while let Some(Checked(command, _)) = seq.next_element::<Checked<CommandRule>>()? {
            commands.push(command);
        }
        if commands.is_empty() {
            return Err(de::Error::custom(
                "the hook has an empty list of commands; add a command, or remove the hook",
            ));
        }
        Ok(RawHook {
            body: HookBody::Commands(commands),
            timeout: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHook, A::Error> {
        if !self.allow_map {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        }
        let fields = HookMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(RawHook {
            body: fields.run.0,
            timeout: fields.timeout.map(|t| t.0),
        })
    }
}

/// `hooks:` as written. `build` is not here: the build hook lives under `build.hook`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map from hook names to hooks")]
pub(super) struct RawHooks {
    pub before_release: Option<RawHook>,
    pub pre_start: Option<RawHook>,
    pub deploy: Option<RawHook>,
    pub post_deploy: Option<RawHook>,
    pub deploy_hold: Option<Checked<AnyDuration>>,
    pub after_deploy_success: Option<RawHook>,
    pub after_deploy_failure: Option<RawHook>,
    pub after_restart_success: Option<RawHook>,
    pub after_restart_failure: Option<RawHook>,
    pub after_configure_success: Option<RawHook>,
    pub after_configure_failure: Option<RawHook>,
    pub after_scale_success: Option<RawHook>,
    pub after_scale_failure: Option<RawHook>,
}

/// The hooks of an `.aptible.yml`: Aptible's own file has only these keys.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map from hook names to lists of commands, as in Aptible"
)]
pub(super) struct RawAptibleHooks {
    pub before_release: Option<RawHook>,
    pub after_deploy_success: Option<RawHook>,
    pub after_deploy_failure: Option<RawHook>,
    pub after_restart_success: Option<RawHook>,
    pub after_restart_failure: Option<RawHook>,
    pub after_configure_success: Option<RawHook>,
    pub after_configure_failure: Option<RawHook>,
    pub after_scale_success: Option<RawHook>,
    pub after_scale_failure: Option<RawHook>,
}

impl From<RawAptibleHooks> for RawHooks {
    fn from(aptible: RawAptibleHooks) -> Self {
        RawHooks {
            before_release: aptible.before_release,
            after_deploy_success: aptible.after_deploy_success,
            after_deploy_failure: aptible.after_deploy_failure,
            after_restart_success: aptible.after_restart_success,
            after_restart_failure: aptible.after_restart_failure,
            after_configure_success: aptible.after_configure_success,
            after_configure_failure: aptible.after_configure_failure,
            after_scale_success: aptible.after_scale_success,
            after_scale_failure: aptible.after_scale_failure,
            ..RawHooks::default()
        }
    }
}

impl RawHooks {
    /// Fills every hook this one leaves unset from `fallback` (an `.aptible.yml`):
    /// a hook written in `slipway.yml` wins over the same hook in `.aptible.yml`.
    pub fn or(self, fallback: RawHooks) -> RawHooks {
        RawHooks {
            before_release: self.before_release.or(fallback.before_release),
            pre_start: self.pre_start.or(fallback.pre_start),
            deploy: self.deploy.or(fallback.deploy),
            post_deploy: self.post_deploy.or(fallback.post_deploy),
            deploy_hold: self.deploy_hold.or(fallback.deploy_hold),
            after_deploy_success: self.after_deploy_success.or(fallback.after_deploy_success),
            after_deploy_failure: self.after_deploy_failure.or(fallback.after_deploy_failure),
            after_restart_success: self
                .after_restart_success
                .or(fallback.after_restart_success),
            after_restart_failure: self
                .after_restart_failure
                .or(fallback.after_restart_failure),
            after_configure_success: self
                .after_configure_success
                .or(fallback.after_configure_success),
            after_configure_failure: self
                .after_configure_failure
                .or(fallback.after_configure_failure),
            after_scale_success: self.after_scale_success.or(fallback.after_scale_success),
            after_scale_failure: self.after_scale_failure.or(fallback.after_scale_failure),
        }
    }

    /// The typed hooks, each with its timeout (10m unless the hook sets one).
    pub fn into_hooks(self, default_timeout: Duration) -> Hooks {
        let hook = |raw: Option<RawHook>| raw.map(|raw| raw.into_hook(default_timeout));
        let mut after_success = BTreeMap::new();
        let mut after_failure = BTreeMap::new();
        let afters = [
            (
                HookedOperation::Deploy,
                self.after_deploy_success,
                self.after_deploy_failure,
            ),
            (
                HookedOperation::Restart,
                self.after_restart_success,
                self.after_restart_failure,
            ),
            (
                HookedOperation::Configure,
                self.after_configure_success,
                self.after_configure_failure,
            ),
            (
                HookedOperation::Scale,
                self.after_scale_success,
                self.after_scale_failure,
            ),
        ];
        for (operation, success, failure) in afters {
            if let Some(success) = hook(success) {
                after_success.insert(operation, success);
            }
            if let Some(failure) = hook(failure) {
                after_failure.insert(operation, failure);
            }
        }
        Hooks {
            before_release: hook(self.before_release),
            pre_start: hook(self.pre_start),
            deploy: hook(self.deploy),
            post_deploy: hook(self.post_deploy),
            deploy_hold: self.deploy_hold.map(|d| d.0).unwrap_or(DEFAULT_DEPLOY_HOLD),
            after_success,
            after_failure,
        }
    }
}
