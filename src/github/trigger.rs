//! What a webhook delivery asks for, read from its event name and JSON payload: a pure
//! function, so that every event of GitHub's table is unit-tested on real payloads.
//! Which environments it deploys to depends on the repository's `slipway.yml` at that
//! commit, and is decided by `intent::plan`.

use serde_json::Value;

/// The repository a delivery is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// `owner/name`, as GitHub spells it.
    pub full_name: String,
    /// The GitHub App installation that sent it, if any.
    pub installation: Option<i64>,
}

impl Repository {
    /// The repository's name without its owner: the app's default name.
    pub fn name(&self) -> &str {
        self.full_name.rsplit('/').next().unwrap_or(&self.full_name)
    }
}

/// What a delivery asks Slipway to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    Ping,
    /// A push of commits to a branch.
    BranchPush {
        repo: Repository,
        branch: String,
        sha: String,
    },
    /// A tag pushed (`sha` known) or created (`create` event: resolve it from git).
    Tag {
        repo: Repository,
        tag: String,
        sha: Option<String>,
    },
    /// A branch or tag deleted: nothing is deployed, no status is posted.
    Deleted {
        repo: Repository,
        reference: String,
    },
    /// A pull request opened, synchronized or reopened.
    PullRequest {
        repo: Repository,
        number: u64,
        head_sha: String,
        from_fork: bool,
    },
    PullRequestClosed {
        repo: Repository,
        number: u64,
    },
    /// "Re-run" on one of Slipway's check runs.
    Rerun {
        repo: Repository,
        check_run_id: i64,
        name: String,
        head_sha: String,
    },
    /// The `Roll back` button of one of Slipway's check runs.
    Rollback {
        repo: Repository,
        check_run_id: i64,
        name: String,
        head_sha: String,
    },
    /// A GitHub deployment created by someone else (not by Slipway).
    Deployment {
        repo: Repository,
        environment: String,
        sha: String,
    },
    /// Accepted, logged, not acted on.
    Ignored(String),
}

/// The identifier of the check run action that rolls an environment back.
pub const ROLLBACK_ACTION: &str = "rollback";
/// The key Slipway puts in the payload of the deployments it creates, so that their
/// `deployment` webhooks are not taken for a request to deploy again (a loop).
pub const DEPLOYMENT_MARKER: &str = "slipway_operation";
/// A sha of forty zeros: the "after" of a deleted ref.
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// Reads a delivery. `Err` says why a payload of a known event lacks what it needs.
pub fn read(event: &str, payload: &Value) -> Result<Trigger, String> {
    let action = payload
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match event {
        "ping" => Ok(Trigger::Ping),
        "push" => push(payload),
        "create" => {
            if text(payload, "/ref_type")? != "tag" {
                return Ok(Trigger::Ignored(
                    "a branch was created; its pushes deploy".into(),
                ));
            }
            Ok(Trigger::Tag {
                repo: repository(payload)?,
                tag: text(payload, "/ref")?.to_owned(),
                sha: None,
            })
        }
        "pull_request" => pull_request(payload, action),
        "check_run" => check_run(payload, action),
        "deployment" => deployment(payload),
        other => Ok(Trigger::Ignored(format!(
            "`{other}` events are not acted on"
        ))),
    }
}

fn push(payload: &Value) -> Result<Trigger, String> {
    let repo = repository(payload)?;
    let reference = text(payload, "/ref")?.to_owned();
    let after = text(payload, "/after")?;
    if payload
        .get("deleted")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || after == ZERO_SHA
    {
        return Ok(Trigger::Deleted { repo, reference });
    }
    let sha = after.to_owned();
    if let Some(branch) = reference.strip_prefix("refs/heads/") {
        return Ok(Trigger::BranchPush {
            branch: branch.to_owned(),
            repo,
            sha,
        });
    }
    if let Some(tag) = reference.strip_prefix("refs/tags/") {
        return Ok(Trigger::Tag {
            tag: tag.to_owned(),
            repo,
            sha: Some(sha),
        });
    }
    Ok(Trigger::Ignored(format!(
        "a push to `{reference}`, neither a branch nor a tag"
    )))
}

fn pull_request(payload: &Value, action: &str) -> Result<Trigger, String> {
    let repo = repository(payload)?;
    let number = payload
        .pointer("/pull_request/number")
        .or_else(|| payload.get("number"))
        .and_then(Value::as_u64)
        .ok_or("a pull_request payload without a number")?;
    match action {
        "opened" | "synchronize" | "reopened" => {
            let head_repo = payload
                .pointer("/pull_request/head/repo/full_name")
                .and_then(Value::as_str);
            // A deleted fork has no head repository: treat it as a fork, the safe side.
            let from_fork =
                head_repo.is_none_or(|head| !head.eq_ignore_ascii_case(&repo.full_name));
            let head_sha = text(payload, "/pull_request/head/sha")?.to_owned();
            Ok(Trigger::PullRequest {
                repo,
                number,
                head_sha,
                from_fork,
            })
        }
        "closed" => Ok(Trigger::PullRequestClosed { repo, number }),
        other => Ok(Trigger::Ignored(format!(
            "pull_request `{other}` is not acted on"
        ))),
    }
}

fn check_run(payload: &Value, action: &str) -> Result<Trigger, String> {
    let repo = repository(payload)?;
    let check_run_id = payload
        .pointer("/check_run/id")
        .and_then(Value::as_i64)
        .ok_or("a check_run without an id")?;
    let name = text(payload, "/check_run/name")?.to_owned();
    let head_sha = text(payload, "/check_run/head_sha")?.to_owned();
    if !name.starts_with("slipway/") {
        return Ok(Trigger::Ignored(format!(
            "check run `{name}` is not Slipway's"
        )));
    }
    match action {
        "rerequested" => Ok(Trigger::Rerun {
            repo,
            check_run_id,
            name,
            head_sha,
        }),
        "requested_action" => {
            let identifier = text(payload, "/requested_action/identifier")?;
            if identifier != ROLLBACK_ACTION {
                return Ok(Trigger::Ignored(format!(
                    "check run action `{identifier}` is not Slipway's"
                )));
            }
            Ok(Trigger::Rollback {
                repo,
                check_run_id,
                name,
                head_sha,
            })
        }
        other => Ok(Trigger::Ignored(format!(
            "check_run `{other}` is not acted on"
        ))),
    }
}

fn deployment(payload: &Value) -> Result<Trigger, String> {
    if payload
        .pointer(&format!("/deployment/payload/{DEPLOYMENT_MARKER}"))
        .is_some()
    {
        return Ok(Trigger::Ignored(
            "a deployment Slipway created itself".into(),
        ));
    }
    Ok(Trigger::Deployment {
        repo: repository(payload)?,
        environment: text(payload, "/deployment/environment")?.to_owned(),
        sha: text(payload, "/deployment/sha")?.to_owned(),
    })
}

fn repository(payload: &Value) -> Result<Repository, String> {
    Ok(Repository {
        full_name: text(payload, "/repository/full_name")?.to_owned(),
        installation: payload.pointer("/installation/id").and_then(Value::as_i64),
    })
}

fn text<'a>(payload: &'a Value, pointer: &str) -> Result<&'a str, String> {
    payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the payload has no `{}`", &pointer[1..]))
}

/// The summary fields stored with a delivery: action, repository, head sha, installation.
pub fn summary(payload: &Value) -> (Option<String>, Option<String>, Option<String>, Option<i64>) {
    let action = payload
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let repository = payload
        .pointer("/repository/full_name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let head_sha = [
        "/after",
        "/pull_request/head/sha",
        "/check_run/head_sha",
        "/check_suite/head_sha",
        "/deployment/sha",
    ]
    .iter()
    .find_map(|p| payload.pointer(p).and_then(Value::as_str))
    .map(str::to_owned);
    let installation = payload.pointer("/installation/id").and_then(Value::as_i64);
    (action, repository, head_sha, installation)
}

#[cfg(test)]
#[path = "trigger_tests.rs"]
mod tests;
