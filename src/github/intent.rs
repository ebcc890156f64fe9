//! Which environments a trigger deploys to, given the repository's configuration at that
//! commit (`environments` in `slipway.yml`). Pure: no IO, unit-tested.

use crate::config::model::AppConfig;
use crate::github::glob;
use crate::github::trigger::Trigger;

/// The environments a trigger deploys to, and the preview environments it would have
/// deployed to but may not because the pull request comes from a fork.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub deploy: Vec<String>,
    /// Previews withheld from a fork: no build or hook with the app's variables runs.
    pub withheld_from_fork: Vec<String>,
}

/// The name of a pull request's preview environment.
pub fn preview_environment(number: u64) -> String {
    format!("pr-{number}")
}

pub fn targets(trigger: &Trigger, config: &AppConfig) -> Targets {
    let mut targets = Targets::default();
    let rules = config.environments.iter();
    match trigger {
        Trigger::BranchPush { branch, .. } => {
            targets.deploy = rules
                .filter(|(_, r)| r.branches.iter().any(|g| glob::matches(g, branch)))
                .map(|(n, _)| n.clone())
                .collect();
        }
        Trigger::Tag { tag, .. } => {
            targets.deploy = rules
                .filter(|(_, r)| r.tags.iter().any(|g| glob::matches(g, tag)))
                .map(|(n, _)| n.clone())
                .collect();
        }
        Trigger::PullRequest {
            number, from_fork, ..
        } => {
            let previews: Vec<_> = rules.filter(|(_, r)| r.pull_requests).collect();
            if !previews.is_empty() {
                // Several rules may say `pull_requests: true`; a pull request still has one preview.
                let trusted = !from_fork || previews.iter().any(|(_, r)| r.trust_forks);
                let name = preview_environment(*number);
                if trusted {
                    targets.deploy.push(name);
                } else {
                    targets.withheld_from_fork.push(name);
                }
            }
        }
        // Only environments the app names: a `github-pages` deployment is not Slipway's.
        Trigger::Deployment { environment, .. }
            if config.environments.contains_key(environment) =>
        {
            targets.deploy.push(environment.clone());
        }
        _ => {}
    }
    targets
}

/// Whether a pull request may run the build (with the app's build variables) in its
/// validation: never for a fork, unless an environment trusts forks.
pub fn may_build_pull_request(config: &AppConfig, from_fork: bool) -> bool {
    !from_fork || config.environments.values().any(|r| r.trust_forks)
}

#[cfg(test)]
#[path = "intent_tests.rs"]
mod tests;
