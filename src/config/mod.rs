//! App configuration: `slipway.yml` / `.slipway.yml`, a `Procfile`, an `.aptible.yml`,
//! parsed into the typed model of `model` and validated before anything runs.
//!
//! Every error names the file, line and column, and says what is allowed. The YAML is
//! read into private serde structs (`raw`, `hooks`) whose value rules (`values`) run
//! inside serde visitors, so that serde_yaml attaches the position of the offending
//! value; `assemble` then merges the files into one `model::AppConfig`.

mod assemble;
mod duration;
mod error;
mod expansion;
mod hooks;
pub mod model;
mod paths;
mod procfile;
mod raw;
mod values;

#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::Path;

pub use assemble::{sanitize_app_name, ConfigSources, SourceText, MAX_CONFIG_BYTES};
pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, ConfigErrors};

/// The names `slipway.yml` may have; both at once is an error.
pub const SLIPWAY_FILE_NAMES: [&str; 2] = ["slipway.yml", ".slipway.yml"];

/// Loads an app dir: `slipway.yml` or `.slipway.yml` (both present = error), a `Procfile`,
/// an `.aptible.yml`. `default_app` is used when the config has no `app:` (the folder or
/// repository name).
pub fn load_dir(dir: &Path, default_app: &str) -> Result<model::AppConfig, ConfigErrors> {
    let mut sources = ConfigSources {
        missing_file_name: dir.join("slipway.yml").display().to_string(),
        ..ConfigSources::default()
    };
    if !dir.is_dir() {
        return Err(ConfigError::at_start(
            dir.display().to_string(),
            "this is not a directory; give the app's directory",
        )
        .into());
    }
    let mut errors = Vec::new();
    let mut read = |name: &str| {
        read_source(dir, &dir.join(name))
            .map_err(|e| errors.push(e))
            .ok()
            .flatten()
    };
    let plain = read(SLIPWAY_FILE_NAMES[0]);
    let dotted = read(SLIPWAY_FILE_NAMES[1]);
    sources.procfile = read("Procfile");
    sources.aptible_yml = read(".aptible.yml");
    match (plain, dotted) {
        (Some(_), Some(dotted)) => errors.push(ConfigError::at_start(
            dotted.file_name,
            "both slipway.yml and .slipway.yml exist; keep one of them (Slipway never merges the two)",
        )),
        (plain, dotted) => sources.slipway_yml = plain.or(dotted),
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let config = assemble::assemble(&sources, default_app)?;
    paths::check_dockerfile(dir, sources.slipway_yml.as_ref(), &config)?;
    Ok(config)
}

/// Validates one file (slipway.yml/.slipway.yml, a Procfile, or an .aptible.yml, chosen by
/// file name) — what `slipway validate FILE` uses.
///
/// The `Procfile` and `.aptible.yml` next to the file are read too (when the file is not
/// itself one of them), because what a deploy would see depends on them: a `slipway.yml`
/// without `services:` is valid only next to a Procfile.
pub fn load_file(path: &Path, default_app: &str) -> Result<model::AppConfig, ConfigErrors> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let named = match read_source(&dir, path)? {
        Some(source) => source,
        None => {
            return Err(ConfigError::at_start(
                path.display().to_string(),
                "the file does not exist",
            )
            .into());
        }
    };
    let mut sources = ConfigSources {
        missing_file_name: named.file_name.clone(),
        ..ConfigSources::default()
    };
    let mut errors = Vec::new();
    let mut sibling = |name: &str| {
        read_source(&dir, &dir.join(name))
            .map_err(|e| errors.push(e))
            .ok()
            .flatten()
    };
    if file_name == "Procfile" || file_name.starts_with("Procfile.") {
        sources.aptible_yml = sibling(".aptible.yml");
        sources.procfile = Some(named);
    } else if file_name == ".aptible.yml" {
        sources.procfile = sibling("Procfile");
        sources.aptible_yml = Some(named);
    } else {
        sources.procfile = sibling("Procfile");
        sources.aptible_yml = sibling(".aptible.yml");
        sources.slipway_yml = Some(named);
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let config = assemble::assemble(&sources, default_app)?;
    paths::check_dockerfile(&dir, sources.slipway_yml.as_ref(), &config)?;
    Ok(config)
}

/// Parses from text (for tests, fuzzing and configs read from a git commit); `file_name`
/// is what errors print. With no `services:` this is an error, as there is no Procfile
/// to fall back on: use `parse_sources` when you have the other files too.
pub fn parse_slipway_yml(
    text: &str,
    file_name: &str,
    default_app: &str,
) -> Result<model::AppConfig, ConfigErrors> {
    let sources = ConfigSources {
        slipway_yml: Some(SourceText::new(file_name, text)),
        missing_file_name: file_name.to_owned(),
        ..ConfigSources::default()
    };
    assemble::assemble(&sources, default_app)
}

/// Parses the config files of an app from text (e.g. read from a git commit).
pub fn parse_sources(
    sources: &ConfigSources,
    default_app: &str,
) -> Result<model::AppConfig, ConfigErrors> {
    assemble::assemble(sources, default_app)
}

/// Reads a config file of the app dir `root` if it exists; refuses one over
/// `MAX_CONFIG_BYTES` without reading it all, one that is not UTF-8, and one that is
/// not a regular file inside `root`.
///
/// A symbolic link is followed only when it stays inside the app dir: a repository (or a
/// pull request from a fork) could otherwise name `slipway.yml -> ../../admin.token`,
/// and the config check would quote the server's own files back in its errors.
fn read_source(root: &Path, path: &Path) -> Result<Option<SourceText>, ConfigError> {
    let file_name = path.display().to_string();
    let at_start = |message: String| ConfigError::at_start(&file_name, message);
    let link = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.file_type().is_symlink(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at_start(format!("cannot read the file: {e}"))),
    };
    if link {
        paths::check_inside(root, path).map_err(at_start)?;
    }
    // Looked at before opening: opening a FIFO would wait for a writer forever.
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(at_start("this is a directory, not a config file".into()));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(at_start(
                "this is not a regular file (a device or a pipe); a config is a text file".into(),
            ));
        }
        Ok(meta) if meta.len() > MAX_CONFIG_BYTES as u64 => return Err(too_large(&file_name)),
        Ok(_) => {}
        Err(e) => return Err(at_start(format!("cannot read the file: {e}"))),
    }
    let file =
        std::fs::File::open(path).map_err(|e| at_start(format!("cannot read the file: {e}")))?;
    // `take` guards against a file that grows between the size check and the read.
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| at_start(format!("cannot read the file: {e}")))?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(too_large(&file_name));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| at_start("the file is not UTF-8 text; save it as UTF-8".into()))?;
    Ok(Some(SourceText { file_name, text }))
}

fn too_large(file_name: &str) -> ConfigError {
    ConfigError::at_start(
        file_name,
        "the file is larger than the 1 MiB a config may be; a config this large is refused",
    )
}
