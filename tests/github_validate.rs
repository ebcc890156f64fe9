//! The `slipway/validate` check run of a pull request, end to end: the real
//! `slipway serve` gets GitHub's `pull_request` payloads pointed at a real local git
//! repository, checks the configuration, builds the head commit (unless the pull
//! request comes from a fork), and completes the check run on a fake GitHub that checks
//! every request against GitHub's schema.

mod common;
mod fake_github;

use common::app::{git_commit_all, yaml_str};
use common::{wait_until, App, Workspace};
use fake_github::harness::*;
use fake_github::{FakeGitHub, Recorded};
use serde_json::{json, Value};
use std::time::Duration;

const VALIDATE: &str = "slipway/validate";

/// GitHub's `pull_request` opened payload (pull request 2) for `head` of the test
/// repository; from a fork when `head_repo` is another repository.
fn opened(head: &str, head_repo: &str) -> Vec<u8> {
    let file = format!(
        "{}/../shared/fixtures/github-webhooks/pull_request/opened.payload.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut payload: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("fixture")).expect("json");
    payload["pull_request"]["head"]["sha"] = json!(head);
    payload["repository"]["full_name"] = json!(REPO);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(head_repo);
    payload["installation"] = Value::Null;
    payload.to_string().into_bytes()
}

/// Commits the work tree as it is now to a branch of the repository; returns the sha.
fn commit_to_branch(ws: &Workspace, branch: &str, message: &str) -> String {
    let sha = git_commit_all(&ws.path("work/shop"), message);
    git_push(ws, &format!("HEAD:refs/heads/{branch}"));
    sha
}

/// Waits until the validate check run of `head` is completed; returns its creation and
/// every update, in order.
fn wait_for_validation(fake: &FakeGitHub, head: &str) -> (Recorded, Vec<Recorded>) {
    let mut found = None;
    wait_until(
        Duration::from_secs(120),
        &format!("the validate check run of {head} is completed"),
        || {
            let Some(id) = fake.check_run_id(VALIDATE, head) else {
                return false;
            };
            let updates = fake.check_run_updates(id);
            if !updates.iter().any(|u| u.body["status"] == "completed") {
                return false;
            }
            let created = fake
                .accepted()
                .into_iter()
                .find(|r| r.answer["id"] == id && r.method == "POST")
                .expect("the creation");
            found = Some((created, updates));
            true
        },
    );
    found.expect("found")
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

#[test]
fn a_pull_request_is_built_in_its_validate_check_run_and_a_failing_build_fails_it() {
    let ws = Workspace::new();
    let mut app = App::new("shop", "v1");
    app.build_hook = Some(yaml_str(
        "echo \"built for $SLIPWAY_ENVIRONMENT at $SLIPWAY_COMMIT\"",
    ));
    repository(&ws, &app);
    let good = commit_to_branch(&ws, "good", "a change that builds");
    app.build_hook = Some(yaml_str("echo about to fail; exit 3"));
    app.write(&ws.path("work/shop"));
    std::fs::write(
        ws.path("work/shop/slipway.yml"),
        app.slipway_yml() + "environments:\n  staging: { branches: [main] }\n",
    )
    .expect("slipway.yml");
    let bad = commit_to_branch(&ws, "bad", "a change that does not build");
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    for (delivery, head) in [("pr-good", &good), ("pr-bad", &bad)] {
        let (status, body) = deliver(
            &server,
            "pull_request",
            delivery,
            &opened(head, REPO),
            "application/json",
        );
        assert_eq!(status, 202, "{body}");
    }

    let (created, updates) = wait_for_validation(&fake, &good);
    assert_eq!(created.body["status"], "in_progress", "{:#?}", created.body);
    let completed = updates.last().expect("completed");
    assert_eq!(
        completed.body["conclusion"], "success",
        "{:#?}",
        completed.body
    );
    let output = &completed.body["output"];
    assert!(
        text(&output["summary"]).contains("the build of")
            && text(&output["summary"]).contains("succeeded"),
        "{output:#}"
    );
    assert!(
        text(&output["text"]).contains(&format!("built for pr-2 at {good}")),
        "the build ran with the preview's build variables, and its log is in the check run: {output:#}"
    );

    let (created, updates) = wait_for_validation(&fake, &bad);
    assert_eq!(created.body["status"], "in_progress");
    let completed = updates.last().expect("completed");
    assert_eq!(
        completed.body["conclusion"], "failure",
        "{:#?}",
        completed.body
    );
    let output = &completed.body["output"];
    assert!(
        text(&output["summary"]).contains("the build failed"),
        "{output:#}"
    );
    assert!(
        text(&output["text"]).contains("about to fail"),
        "{output:#}"
    );

    assert!(
        operations(&server).is_empty(),
        "a validation is no operation, and no environment deploys pull requests"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
    assert_no_secret(&ws, &server, &fake);
}

#[test]
fn a_pull_request_from_a_fork_gets_the_config_check_and_no_build() {
    let ws = Workspace::new();
    let mut app = App::new("shop", "v1");
    let marker = ws.path("the-build-ran");
    app.build_hook = Some(yaml_str(&format!("touch '{}'", marker.display())));
    repository(&ws, &app);
    // GitHub fetches a fork's commits through the base repository; here a branch does.
    let head = commit_to_branch(&ws, "from-a-fork", "a fork's change");
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    let (status, _) = deliver(
        &server,
        "pull_request",
        "pr-fork",
        &opened(&head, "someone-else/shop"),
        "application/json",
    );
    assert_eq!(status, 202);
    let (created, updates) = wait_for_validation(&fake, &head);
    assert_eq!(created.body["status"], "in_progress");
    let completed = updates.last().expect("completed");
    assert_eq!(completed.body["conclusion"], "success");
    let summary = text(&completed.body["output"]["summary"]);
    assert!(
        summary.contains("The build was skipped") && summary.contains("fork"),
        "{summary}"
    );
    assert!(!marker.exists(), "no build ran for a fork");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn every_config_error_is_an_annotation_50_per_request_on_one_check_run() {
    let ws = Workspace::new();
    repository(&ws, &App::new("shop", "v1"));
    // No `services` in slipway.yml: the Procfile is read, and each of its 60 broken
    // lines is an error of its own.
    let work = ws.path("work/shop");
    std::fs::write(
        work.join("slipway.yml"),
        "app: shop\nenvironments:\n  staging: { branches: [main] }\n",
    )
    .expect("slipway.yml");
    let procfile: String = (1..=60)
        .map(|i| format!("not a process line {i}\n"))
        .collect();
    std::fs::write(work.join("Procfile"), procfile).expect("Procfile");
    let head = commit_to_branch(&ws, "broken", "60 broken Procfile lines");
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    let (status, _) = deliver(
        &server,
        "pull_request",
        "pr-broken",
        &opened(&head, REPO),
        "application/json",
    );
    assert_eq!(status, 202);
    let (_, _) = wait_for_validation(&fake, &head);
    let id = fake.check_run_id(VALIDATE, &head).expect("the check run");
    // The annotations' update may still be on its way once the run is completed.
    wait_until(
        Duration::from_secs(30),
        "every annotation reaches GitHub",
        || annotations(&fake.check_run_updates(id)).len() == 60,
    );
    let updates = fake.check_run_updates(id);
    let completed = &updates[0];
    assert_eq!(completed.body["conclusion"], "failure");
    let sizes: Vec<usize> = updates
        .iter()
        .map(|u| {
            u.body["output"]["annotations"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes, [50, 10], "50 per request, on the same check run");
    let lines: Vec<i64> = annotations(&updates)
        .iter()
        .map(|a| a["start_line"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(lines, (1..=60).collect::<Vec<i64>>());
    assert!(annotations(&updates)
        .iter()
        .all(|a| a["path"] == "Procfile"));
    assert_eq!(
        of(&fake.accepted(), CREATE_CHECK).len(),
        1,
        "one validate check run for the pull request"
    );
    assert!(operations(&server).is_empty());
    assert_eq!(fake.violations(), Vec::<String>::new());
}

fn annotations(updates: &[Recorded]) -> Vec<Value> {
    updates
        .iter()
        .flat_map(|u| {
            u.body["output"]["annotations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}
