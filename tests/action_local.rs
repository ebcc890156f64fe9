//! The action in local mode (no `server-url`): the pipeline runs inside the job, on the
//! local runtime, and the commit status, check run and deployment go to GitHub — here a
//! fake that checks every request against GitHub's published schema — with the job's
//! token. The step ends only once GitHub has them all.

mod action;
mod common;
mod fake_github;

use action::{assert_masked_first, Step};
use common::{App, Workspace};
use fake_github::harness::{self, of, states};
use fake_github::FakeGitHub;

const JOB_TOKEN: &str = "ghs_local_job_token_never_printed";

fn push_step(ws: &Workspace, sha: &str, fake: &FakeGitHub) -> Step {
    let payload: serde_json::Value =
        serde_json::from_slice(&harness::push_payload(sha)).expect("payload");
    Step::new(ws, &ws.path("work/shop"), "push", &payload)
        .var("GITHUB_SHA", sha)
        .var("GITHUB_REF", "refs/heads/main")
        .var("GITHUB_REPOSITORY", harness::REPO)
        .var("GITHUB_API_URL", &fake.url)
        // The pipeline's data and app processes stay inside the test's workspace.
        .var("TMPDIR", ws.root().to_str().expect("utf-8 path"))
        .input("command", "deploy")
        .input("github-token", JOB_TOKEN)
}

#[test]
fn a_push_deploys_inside_the_job_and_reports_to_github() {
    let ws = Workspace::new();
    let fake = FakeGitHub::start();
    let sha = harness::repository(&ws, &App::new("shop", "1"));

    let step = push_step(&ws, &sha, &fake);
    let ran = step.run();
    assert_eq!(ran.code, 0, "{ran}");
    assert_masked_first(&ran, JOB_TOKEN);
    assert!(
        ran.stdout.contains("::group::start the new instances"),
        "{ran}"
    );
    let outputs = step.outputs();
    assert_eq!(outputs["status"], "succeeded", "{outputs:?}");
    assert_eq!(outputs["release"], "v1");
    assert_eq!(outputs["operation-id"], "1");
    assert!(step
        .summary()
        .contains("✅ Slipway deploy of `shop/staging`: succeeded"));

    // Everything was posted before the step ended: no waiting here.
    let requests = fake.accepted();
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let statuses = of(&requests, harness::STATUS);
    assert_eq!(
        states(&statuses).last().map(String::as_str),
        Some("success"),
        "{statuses:#?}"
    );
    assert!(statuses.iter().all(|r| r.path.ends_with(&sha)
        && r.body["context"] == "slipway/staging"
        && r.path.starts_with("/repos/acme/shop/")));
    let checks = of(&requests, harness::UPDATE_CHECK);
    assert!(
        checks.iter().any(|r| r.body["conclusion"] == "success"),
        "{requests:#?}"
    );
    assert_eq!(of(&requests, harness::CREATE_DEPLOYMENT).len(), 1);
    assert!(states(&of(&requests, harness::DEPLOYMENT_STATUS)).contains(&"success".to_owned()));
    assert!(requests.iter().all(|r| r
        .authorization
        .as_deref()
        .is_some_and(|a| a.ends_with(JOB_TOKEN))));
    let posted =
        serde_json::to_string(&requests.iter().map(|r| r.body.clone()).collect::<Vec<_>>())
            .expect("json");
    assert!(!posted.contains(JOB_TOKEN));

    // The job's processes were stopped with the step.
    assert!(
        common::procs::pids_under(ws.root()).is_empty(),
        "app processes outlived the step: {:?}",
        common::procs::pids_under(ws.root())
    );
}

#[test]
fn a_broken_config_is_refused_before_anything_runs() {
    let ws = Workspace::new();
    let fake = FakeGitHub::start();
    let sha = harness::repository(&ws, &App::new("shop", "1"));
    std::fs::write(
        ws.path("work/shop/slipway.yml"),
        "app: shop\nservices:\n  web:\n    command: exec python3 app.py\n    stop_timeout: forever\n",
    )
    .expect("slipway.yml");
    let step = push_step(&ws, &sha, &fake);
    let ran = step.run();
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with("::error file=slipway.yml,line=5,col=")),
        "{ran}"
    );
    assert_eq!(step.outputs()["status"], "error");
    assert!(
        fake.requests().is_empty(),
        "nothing was deployed, nothing posted"
    );
}

#[test]
fn restart_needs_a_server() {
    let ws = Workspace::new();
    let fake = FakeGitHub::start();
    let sha = harness::repository(&ws, &App::new("shop", "1"));
    let step = push_step(&ws, &sha, &fake)
        .input("command", "restart")
        .input("environment", "staging");
    let ran = step.run();
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stdout
            .contains("::error::`restart` needs a Slipway server"),
        "{ran}"
    );
}
