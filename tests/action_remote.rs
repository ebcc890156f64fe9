//! The action in remote mode, run as the Actions runner runs a step, against a real
//! `slipway serve`: a push event (GitHub's example payload) deploys the pushed commit to
//! the environment slipway.yml names for the branch, the log is streamed with one group
//! per step, and the outputs, the summary, masking and the exit code are what a
//! workflow relies on. A broken release fails the step.

mod action;
mod common;
mod fake_github;

use action::{assert_masked_first, groups, Step};
use common::{App, Workspace};
use fake_github::harness;

const GITHUB_TOKEN: &str = "ghs_job_token_never_printed_42";

/// A step of a workflow started by a push of `sha` to main of acme/shop.
fn push_step(ws: &Workspace, sha: &str, server: &common::Server) -> Step {
    let payload: serde_json::Value =
        serde_json::from_slice(&harness::push_payload(sha)).expect("payload");
    Step::new(ws, &ws.path("work/shop"), "push", &payload)
        .var("GITHUB_SHA", sha)
        .var("GITHUB_REF", "refs/heads/main")
        .var("GITHUB_REPOSITORY", harness::REPO)
        .var(
            "GITHUB_SERVER_URL",
            &format!("file://{}", ws.path("git").display()),
        )
        .input("server-url", &server.api)
        .input("api-token", &server.token)
        .input("github-token", GITHUB_TOKEN)
}

#[test]
fn a_push_deploys_the_commit_on_the_server_and_reports_it_to_the_workflow() {
    let ws = Workspace::new();
    let server = ws.serve();
    let sha = harness::repository(&ws, &App::new("shop", "1"));

    let step = push_step(&ws, &sha, &server).input("command", "deploy");
    let ran = step.run();
    assert_eq!(ran.code, 0, "{ran}");
    assert_masked_first(&ran, &server.token);
    assert_masked_first(&ran, GITHUB_TOKEN);
    let titles = groups(&ran);
    for step in [
        "resolve the source",
        "start the new instances",
        "switch traffic",
    ] {
        assert!(
            titles.iter().any(|t| t == step),
            "no group `{step}`: {titles:?}\n{ran}"
        );
    }
    assert_eq!(
        ran.stdout.matches("::group::").count(),
        ran.stdout.matches("::endgroup::").count(),
        "{ran}"
    );

    let outputs = step.outputs();
    assert_eq!(outputs["status"], "succeeded", "{outputs:?}");
    assert_eq!(outputs["release"], "v1");
    let id: i64 = outputs["operation-id"]
        .parse()
        .expect("a numeric operation id");
    assert!(outputs["url"].contains("shop-staging"), "{outputs:?}");
    let op = common::wait_for_end(&ws, &server, "shop", "staging", id);
    assert_eq!(
        op["commit"],
        sha.as_str(),
        "the server deployed the job's commit"
    );
    assert_eq!(
        server
            .app_json("shop-staging.localhost")
            .expect("the app answers")["version"],
        "1"
    );

    let summary = step.summary();
    assert!(
        summary.contains("Slipway deploy of `shop/staging`: succeeded"),
        "{summary}"
    );
    assert!(summary.contains("| Release | v1 |"), "{summary}");
    assert!(
        summary.contains("| Step | Status | Duration | Message |"),
        "{summary}"
    );
    assert!(
        summary.contains("| switch traffic | succeeded |")
            || summary.contains("| switch | succeeded |"),
        "{summary}"
    );

    // Another step of the job: a restart of what the server runs.
    let restart = push_step(&ws, &sha, &server)
        .input("command", "restart")
        .input("environment", "staging");
    let ran = restart.run();
    assert_eq!(ran.code, 0, "{ran}");
    let outputs = restart.outputs();
    assert_eq!(outputs["status"], "succeeded", "{outputs:?}");
    assert_ne!(outputs["operation-id"], id.to_string());
}

#[test]
fn a_failed_deploy_fails_the_step() {
    let ws = Workspace::new();
    let server = ws.serve();
    let mut app = App::new("shop", "1");
    app.broken = true;
    app.deadline = "2s".into();
    let sha = harness::repository(&ws, &app);

    let step = push_step(&ws, &sha, &server)
        .input("command", "deploy")
        .input("environment", "staging");
    let ran = step.run();
    assert_eq!(ran.code, 1, "{ran}");
    let outputs = step.outputs();
    assert_ne!(outputs["status"], "succeeded", "{outputs:?}");
    assert!(!outputs["operation-id"].is_empty());
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with("::error::Slipway: deploy of shop/staging")),
        "{ran}"
    );
    assert!(step.summary().contains("❌"), "{}", step.summary());
}

#[test]
fn half_a_remote_configuration_is_refused() {
    let ws = Workspace::new();
    let server = ws.serve();
    let sha = harness::repository(&ws, &App::new("shop", "1"));
    let payload: serde_json::Value =
        serde_json::from_slice(&harness::push_payload(&sha)).expect("payload");
    let step = Step::new(&ws, &ws.path("work/shop"), "push", &payload)
        .var("GITHUB_SHA", &sha)
        .input("server-url", &server.api);
    let ran = step.run();
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stdout
            .contains("::error::`server-url` is set but `api-token` is not"),
        "{ran}"
    );
    assert_eq!(step.outputs()["status"], "error");
    assert!(common::operations(&ws, &server, "shop", "staging").is_empty());
}
