//! Paths a config names on disk must stay inside the app dir, symbolic links included.
//!
//! `values::DockerfilePath` already refuses `..` and absolute paths as text; what text
//! cannot tell is a link: `build.dockerfile: docker/Dockerfile` where `docker` links to
//! `/etc`. These checks need the app dir, so they run after the typed pass, when a
//! config is loaded from a directory. An error then points at the value: a second,
//! small pass over `slipway.yml` finds `build.dockerfile` and fails there, so serde_yaml
//! gives its line and column.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::assemble::SourceText;
use super::error::ConfigError;
use super::model::AppConfig;

/// Whether `path`, once every link is followed, is inside `root`; the error says why not.
pub(super) fn check_inside(root: &Path, path: &Path) -> Result<(), String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot read the app directory: {e}"))?;
    match path.canonicalize() {
        Ok(target) if target.starts_with(&root) => Ok(()),
        Ok(_) => Err(
            "this is a symbolic link to a file outside the app directory; Slipway reads only files inside it: make it a regular file, or a link within the app".into(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(
            "this is a symbolic link to a file that does not exist; make it a regular file".into(),
        ),
        Err(e) => Err(format!("cannot follow the symbolic link: {e}")),
    }
}

/// Refuses a `build.dockerfile` that, through links, leads outside `dir`. A Dockerfile
/// that does not exist is not an error here: the docker build says so, and the local
/// runtime never reads it.
pub(super) fn check_dockerfile(
    dir: &Path,
    slipway_yml: Option<&SourceText>,
    config: &AppConfig,
) -> Result<(), ConfigError> {
    let (Some(dockerfile), Some(source)) = (&config.build.dockerfile, slipway_yml) else {
        return Ok(());
    };
    let path = dir.join(dockerfile);
    if std::fs::symlink_metadata(&path).is_err() && path.canonicalize().is_err() {
        return Ok(());
    }
    let Err(why) = check_inside(dir, &path) else {
        return Ok(());
    };
    let message = format!(
        "`{}` leads outside the app directory through a symbolic link ({why})",
        crate::text::shown(dockerfile)
    );
    Err(locate_dockerfile(source, &message))
}

/// The error `message` at the `build.dockerfile` value of `source`.
fn locate_dockerfile(source: &SourceText, message: &str) -> ConfigError {
    let deserializer = serde_yaml::Deserializer::from_str(&source.text);
    match (Find {
        path: &["build", "dockerfile"],
        message,
    })
    .deserialize(deserializer)
    {
        Err(error) => ConfigError::from_yaml(&source.file_name, &error),
        // Not found again (it was, a moment ago): the message still counts.
        Ok(()) => ConfigError::at_start(&source.file_name, format!("build.dockerfile: {message}")),
    }
}

/// Walks maps along `path` and fails with `message` at the value found there.
#[derive(Clone, Copy)]
struct Find<'a> {
    path: &'a [&'a str],
    message: &'a str,
}

impl Find<'_> {
    /// A scalar: the one sought when the path is walked to its end.
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(self.message))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(self.message));
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == *first {
                map.next_value_seed(Find {
                    path: rest,
                    message: self.message,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}
