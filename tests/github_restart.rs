//! GitHub in the loop across restarts and for pull requests: what the outbox holds when
//! the server is killed is sent by the next server, and a pull request's head commit
//! gets a `slipway/validate` check run with annotations on the offending lines.

mod common;
mod fake_github;

use std::time::Duration;

use common::{wait_until, App, Workspace};
use fake_github::harness::*;
use fake_github::{FakeGitHub, Outage};
use serde_json::json;

#[test]
fn statuses_queued_while_github_was_down_are_sent_by_the_next_server() {
    let ws = Workspace::new();
    let sha = repository(&ws, &App::new("shop", "v1"));
    let down = FakeGitHub::start_failing(usize::MAX, Outage::ServerError);
    let server = serve(&ws, &down);
    assert_eq!(
        deliver(
            &server,
            "push",
            "delivery-restart",
            &push_payload(&sha),
            "application/json"
        )
        .0,
        202
    );
    wait_until(
        Duration::from_secs(120),
        "the deploy ends while GitHub is down",
        || {
            operations(&server)
                .first()
                .is_some_and(|op| op["state"] == "succeeded")
        },
    );
    assert!(!down.requests().is_empty() && down.accepted().is_empty());
    drop(server); // SIGKILL: the outbox is all that remembers what GitHub was not told.

    let up = FakeGitHub::start();
    let _server = serve(&ws, &up);
    let got = wait_for_report(&up, "success");
    assert_eq!(states(&of(&got, STATUS)), ["pending", "pending", "success"]);
    assert_eq!(
        of(&got, UPDATE_CHECK)
            .last()
            .map(|r| r.body["conclusion"].clone()),
        Some(json!("success"))
    );
    assert_eq!(up.violations(), Vec::<String>::new());
}

#[test]
fn a_pull_request_with_a_broken_config_gets_a_failing_validate_check_with_annotations() {
    let ws = Workspace::new();
    repository(&ws, &App::new("shop", "v1"));
    let work = ws.path("work/shop");
    let broken = std::fs::read_to_string(work.join("slipway.yml"))
        .expect("yml")
        .replace("    instances: 1\n", "    instances: 1\n    colour: blue\n");
    let colour_line = broken
        .lines()
        .position(|l| l.contains("colour:"))
        .expect("the typo")
        + 1;
    std::fs::write(work.join("slipway.yml"), broken).expect("write");
    let head = common::app::git_commit_all(&work, "a typo");
    git_push(&ws, "HEAD:refs/heads/changes");
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    let file = format!(
        "{}/../shared/fixtures/github-webhooks/pull_request/opened.payload.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut payload: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("fixture")).expect("json");
    payload["pull_request"]["head"]["sha"] = json!(head);
    payload["repository"]["full_name"] = json!(REPO);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(REPO);
    payload["installation"] = serde_json::Value::Null;
    assert_eq!(
        deliver(
            &server,
            "pull_request",
            "pr-1",
            payload.to_string().as_bytes(),
            "application/json"
        )
        .0,
        202
    );

    wait_until(
        Duration::from_secs(60),
        "the validate check run is completed",
        || {
            fake.check_run_id("slipway/validate", &head)
                .is_some_and(|id| !fake.check_run_updates(id).is_empty())
        },
    );
    let created = of(&fake.accepted(), CREATE_CHECK);
    assert_eq!(created.len(), 1, "one validate check run: {created:#?}");
    assert_eq!(created[0].body["name"], "slipway/validate");
    assert_eq!(created[0].body["head_sha"], head.as_str());
    assert_eq!(created[0].body["status"], "in_progress");
    let id = fake
        .check_run_id("slipway/validate", &head)
        .expect("its id");
    let check = &fake.check_run_updates(id)[0];
    assert_eq!(check.body["status"], "completed");
    assert_eq!(check.body["conclusion"], "failure");
    let annotation = &check.body["output"]["annotations"][0];
    assert_eq!(annotation["path"], "slipway.yml");
    assert_eq!(
        annotation["start_line"], colour_line,
        "the line of `colour:`: {annotation}"
    );
    assert!(annotation["message"]
        .as_str()
        .is_some_and(|m| m.contains("colour")));
    assert!(
        operations(&server).is_empty(),
        "nothing deploys a broken configuration"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// The fixture payload of a pull request event, pointed at the test repository.
fn pull_request_payload(action_file: &str, head: &str) -> serde_json::Value {
    let file = format!(
        "{}/../shared/fixtures/github-webhooks/pull_request/{action_file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut payload: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("fixture")).expect("json");
    payload["pull_request"]["head"]["sha"] = json!(head);
    payload["repository"]["full_name"] = json!(REPO);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(REPO);
    payload["installation"] = serde_json::Value::Null;
    payload
}

#[test]
fn a_pull_request_gets_a_preview_that_its_closing_tears_down() {
    let ws = Workspace::new();
    repository(&ws, &App::new("shop", "preview"));
    let work = ws.path("work/shop");
    let yml = std::fs::read_to_string(work.join("slipway.yml")).expect("yml")
        + "  preview: { pull_requests: true }\n";
    std::fs::write(work.join("slipway.yml"), yml).expect("write");
    let head = common::app::git_commit_all(&work, "previews");
    git_push(&ws, "HEAD:refs/heads/changes");
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    // pull_request/opened.payload.json is pull request number 2.
    let opened = pull_request_payload("opened.payload.json", &head);
    let body = opened.to_string();
    assert_eq!(
        deliver(
            &server,
            "pull_request",
            "pr-open",
            body.as_bytes(),
            "application/json"
        )
        .0,
        202
    );
    wait_until(
        Duration::from_secs(90),
        "the preview pr-2 is deployed",
        || {
            operations(&server)
                .iter()
                .any(|op| op["env"]["env"] == "pr-2" && op["state"] == "succeeded")
        },
    );
    let app = server
        .app_json("shop-pr-2.localhost")
        .expect("the preview answers");
    assert_eq!(app["version"], "preview");
    let pid = app["pid"].as_i64().expect("pid") as i32;

    let closed = pull_request_payload("closed.payload.json", &head);
    let body = closed.to_string();
    assert_eq!(
        deliver(
            &server,
            "pull_request",
            "pr-close",
            body.as_bytes(),
            "application/json"
        )
        .0,
        202
    );
    wait_until(Duration::from_secs(60), "the preview is torn down", || {
        operations(&server)
            .iter()
            .any(|op| op["kind"] == "teardown" && op["state"] == "succeeded")
    });
    assert!(
        server.app_json("shop-pr-2.localhost").is_none(),
        "the preview no longer answers"
    );
    wait_until(
        Duration::from_secs(10),
        "the preview's instance is gone",
        || !common::procs::alive(pid),
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn a_validation_whose_build_a_killed_server_left_running_is_completed_by_the_next_server() {
    let ws = Workspace::new();
    let started = ws.path("the-build-started");
    let gate = ws.path("let-the-build-finish");
    let mut app = App::new("shop", "v1");
    app.build_hook = Some(common::app::yaml_str(&format!(
        "touch '{}'; while [ ! -f '{}' ]; do sleep 0.05; done; echo the build went through",
        started.display(),
        gate.display()
    )));
    repository(&ws, &app);
    let head = common::app::git_commit_all(&ws.path("work/shop"), "a change");
    git_push(&ws, "HEAD:refs/heads/changes");
    // GitHub is down for the first server: what it owes GitHub stays in its outbox (a
    // request GitHub accepted just before a kill may be sent twice, which is GitHub's
    // "at least once", not what this test is about).
    let down = FakeGitHub::start_failing(usize::MAX, Outage::ServerError);
    let server = serve(&ws, &down);
    let body = pull_request_payload("opened.payload.json", &head).to_string();
    assert_eq!(
        deliver(
            &server,
            "pull_request",
            "pr-killed",
            body.as_bytes(),
            "application/json"
        )
        .0,
        202
    );
    wait_until(
        Duration::from_secs(60),
        "the validation's build runs",
        || started.exists(),
    );
    drop(server); // SIGKILL while the build waits at the gate.
    assert!(down.accepted().is_empty());

    std::fs::write(&gate, "").expect("open the gate");
    let up = FakeGitHub::start();
    let _server = serve(&ws, &up);
    wait_until(
        Duration::from_secs(60),
        "the next server completes the check run",
        || {
            up.check_run_id("slipway/validate", &head)
                .is_some_and(|id| {
                    up.check_run_updates(id)
                        .iter()
                        .any(|u| u.body["status"] == "completed")
                })
        },
    );
    let id = up
        .check_run_id("slipway/validate", &head)
        .expect("the check run");
    let completed = up.check_run_updates(id).remove(0);
    assert_eq!(
        completed.body["conclusion"], "success",
        "{:#?}",
        completed.body
    );
    assert!(completed.body["output"]["text"]
        .as_str()
        .is_some_and(|t| t.contains("the build went through")));
    let created = of(&up.accepted(), CREATE_CHECK);
    assert_eq!(created.len(), 1, "one check run: {created:#?}");
    assert_eq!(created[0].body["status"], "in_progress");
    assert_eq!(up.violations(), Vec::<String>::new());
}
