//! `intent::targets` against a real `slipway.yml`.

use super::*;
use crate::github::trigger::Repository;

fn config(yaml: &str) -> AppConfig {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("slipway.yml"), yaml).expect("write");
    crate::config::load_dir(dir.path(), "shop").expect("valid config")
}

const CONFIG: &str = "services:\n  web:\n    command: python3 app.py\n    http: {}\nenvironments:\n  staging: { branches: [main, 'release/*'] }\n  production: { tags: ['v*'] }\n  preview: { pull_requests: true }\n";

fn repo() -> Repository {
    Repository {
        full_name: "acme/shop".into(),
        installation: None,
    }
}

fn deploys(trigger: Trigger, yaml: &str) -> Targets {
    targets(&trigger, &config(yaml))
}

#[test]
fn branch_pushes_deploy_to_the_environments_naming_the_branch() {
    let push = |branch: &str| Trigger::BranchPush {
        repo: repo(),
        branch: branch.into(),
        sha: "a".repeat(40),
    };
    assert_eq!(deploys(push("main"), CONFIG).deploy, ["staging"]);
    assert_eq!(deploys(push("release/1.2"), CONFIG).deploy, ["staging"]);
    assert!(deploys(push("feature"), CONFIG).deploy.is_empty());
}

#[test]
fn tags_deploy_to_the_environments_naming_the_tag() {
    let tag = |tag: &str| Trigger::Tag {
        repo: repo(),
        tag: tag.into(),
        sha: None,
    };
    assert_eq!(deploys(tag("v1.0.0"), CONFIG).deploy, ["production"]);
    assert!(deploys(tag("nightly"), CONFIG).deploy.is_empty());
}

#[test]
fn pull_requests_get_a_preview_but_forks_only_when_trusted() {
    let pr = |from_fork| Trigger::PullRequest {
        repo: repo(),
        number: 42,
        head_sha: "b".repeat(40),
        from_fork,
    };
    assert_eq!(deploys(pr(false), CONFIG).deploy, ["pr-42"]);
    let fork = deploys(pr(true), CONFIG);
    assert!(fork.deploy.is_empty());
    assert_eq!(fork.withheld_from_fork, ["pr-42"]);
    let trusting = CONFIG.replace(
        "pull_requests: true",
        "pull_requests: true, trust_forks: true",
    );
    assert_eq!(deploys(pr(true), &trusting).deploy, ["pr-42"]);
    assert!(!may_build_pull_request(&config(CONFIG), true));
    assert!(may_build_pull_request(&config(&trusting), true));
    assert!(may_build_pull_request(&config(CONFIG), false));
}

#[test]
fn deployments_deploy_only_to_environments_the_app_names() {
    let deployment = |env: &str| Trigger::Deployment {
        repo: repo(),
        environment: env.into(),
        sha: "c".repeat(40),
    };
    assert_eq!(
        deploys(deployment("production"), CONFIG).deploy,
        ["production"]
    );
    assert!(deploys(deployment("github-pages"), CONFIG)
        .deploy
        .is_empty());
}

#[test]
fn the_repository_name_is_the_default_app_name() {
    assert_eq!(repo().name(), "shop");
}
