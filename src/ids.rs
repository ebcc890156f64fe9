//! Newtype identifiers, so an app name can never be passed where an environment is wanted.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// The name of an app, e.g. `shop`.
    AppName
);
string_id!(
    /// The name of an environment of an app, e.g. `staging` or `pr-42`.
    EnvName
);
string_id!(
    /// The name of a service of an app, e.g. `web`.
    ServiceName
);

/// A database id of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationId(pub i64);

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A release number, per environment: v1, v2, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseNumber(pub i64);

impl fmt::Display for ReleaseNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl std::str::FromStr for ReleaseNumber {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.strip_prefix('v').unwrap_or(text);
        digits
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(ReleaseNumber)
            .ok_or_else(|| format!("`{text}` is not a release number; write it like `v3`"))
    }
}

/// One environment of one app: the unit that operations are queued on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EnvKey {
    pub app: AppName,
    pub env: EnvName,
}

impl EnvKey {
    pub fn new(app: impl Into<String>, env: impl Into<String>) -> Self {
        Self {
            app: AppName(app.into()),
            env: EnvName(env.into()),
        }
    }
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.env)
    }
}
