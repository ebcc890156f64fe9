//! What a step is about: the app's configuration in the workspace (refused with
//! `::error file=…,line=…,col=…::` annotations, which GitHub shows on the lines of a pull
//! request's diff), the app's name, and the environment — the `environment` input, or
//! the environments `slipway.yml` names for the event that started the workflow.

use std::path::{Path, PathBuf};

use crate::action::inputs::{Context, Inputs};
use crate::action::workflow::{Place, Printer};
use crate::config::model::AppConfig;
use crate::config::{self, ConfigErrors};
use crate::github::{intent, trigger};

/// The app folder: the folder of the `config` input (a file, or a folder), or the workspace.
pub fn app_dir(ctx: &Context, inputs: &Inputs) -> PathBuf {
    match &inputs.config {
        Some(config) => {
            let path = ctx.workspace.join(config);
            if path.is_dir() {
                path
            } else {
                path.parent()
                    .map_or_else(|| ctx.workspace.clone(), Path::to_path_buf)
            }
        }
        None => ctx.workspace.clone(),
    }
}

/// The app's name when the configuration does not give one: the repository's.
fn default_app(ctx: &Context, dir: &Path) -> String {
    match ctx.repository_name() {
        Some(name) => config::sanitize_app_name(name),
        None => crate::cli::commands::folder_name(dir),
    }
}

/// Loads the configuration the `config` input names (a file or a folder), or the
/// workspace's.
pub fn load(ctx: &Context, inputs: &Inputs) -> Result<AppConfig, ConfigErrors> {
    let dir = app_dir(ctx, inputs);
    match &inputs.config {
        Some(config) if !ctx.workspace.join(config).is_dir() => {
            config::load_file(&ctx.workspace.join(config), &default_app(ctx, &dir))
        }
        _ => config::load_dir(&dir, &default_app(ctx, &dir)),
    }
}

/// A file of an error as the repository names it (`deploy/slipway.yml`), which is what
/// an annotation needs to land on the diff.
pub fn repository_path(ctx: &Context, file: &str) -> String {
    let path = Path::new(file);
    let workspace = ctx
        .workspace
        .canonicalize()
        .unwrap_or_else(|_| ctx.workspace.clone());
    let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    for root in [&ctx.workspace, &workspace] {
        for candidate in [path, absolute.as_path()] {
            if let Ok(relative) = candidate.strip_prefix(root) {
                return relative.display().to_string();
            }
        }
    }
    file.trim_start_matches("./").to_owned()
}

/// One `::error file=…,line=…,col=…::` per configuration error.
pub fn annotate(printer: &mut Printer, ctx: &Context, errors: &ConfigErrors) {
    for error in &errors.0 {
        let place = Place {
            file: repository_path(ctx, &error.file),
            line: error.line,
            column: error.column,
        };
        printer.annotation("error", Some(&place), &error.message);
    }
}

/// The environments a deploy goes to: the input, or those the configuration names for
/// this event (a push to a branch, a tag, a pull request's preview).
pub fn environments(ctx: &Context, inputs: &Inputs, config: Option<&AppConfig>) -> Vec<String> {
    if let Some(env) = &inputs.environment {
        return vec![env.clone()];
    }
    let (Some(config), Some(event), Some(payload)) = (config, &ctx.event_name, ctx.event()) else {
        return Vec::new();
    };
    match trigger::read(event, &payload) {
        Ok(trigger) => intent::targets(&trigger, config).deploy,
        Err(_) => Vec::new(),
    }
}

/// The commit the event is about: a pull request's head (GitHub's `GITHUB_SHA` there is
/// a merge commit no one pushed), else `GITHUB_SHA`.
pub fn head_sha(ctx: &Context) -> Option<String> {
    if let (Some(event), Some(payload)) = (&ctx.event_name, ctx.event()) {
        if let Ok(trigger::Trigger::PullRequest { head_sha, .. }) = trigger::read(event, &payload) {
            return Some(head_sha);
        }
    }
    ctx.sha.clone()
}
