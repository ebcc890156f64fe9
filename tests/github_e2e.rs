//! GitHub in the loop, end to end: the real `slipway serve` binary gets signed webhook
//! deliveries (GitHub's own example payloads, pointed at a real local git repository
//! served through `--github-git-url file://...`), deploys with the local runtime, and
//! reports to a fake GitHub API that checks every request against GitHub's schema.

mod common;
mod fake_github;

use std::process::Command;
use std::time::Duration;

use common::{wait_until, App, Workspace, SLIPWAY};
use fake_github::harness::*;
use fake_github::{FakeGitHub, Outage};
use serde_json::json;

#[test]
fn a_signed_push_to_main_deploys_and_github_hears_pending_then_success_in_order() {
    let ws = Workspace::new();
    let sha = repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    // Form-encoded, as a webhook configured with `application/x-www-form-urlencoded` sends it.
    let payload = push_payload(&sha);
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&payload).expect("utf-8"))
        .finish();
    let (status, body) = deliver(
        &server,
        "push",
        "delivery-1",
        form.as_bytes(),
        "application/x-www-form-urlencoded",
    );
    assert_eq!(status, 202, "{body}");
    let (status, _) = deliver(
        &server,
        "push",
        "delivery-1",
        form.as_bytes(),
        "application/x-www-form-urlencoded",
    );
    assert_eq!(status, 200, "a redelivery is answered 200 and not acted on");

    let got = wait_for_report(&fake, "success");
    let ops = operations(&server);
    assert_eq!(ops.len(), 1, "one operation for one delivery: {ops:#?}");
    let op = &ops[0];
    assert_eq!(op["state"], "succeeded");
    assert_eq!(op["initiator"], "github delivery delivery-1");
    let op_id = op["id"].as_i64().expect("id");

    let statuses = of(&got, STATUS);
    assert_eq!(states(&statuses), ["pending", "pending", "success"]);
    for status in &statuses {
        assert!(
            status
                .path
                .ends_with(&format!("/repos/{REPO}/statuses/{sha}")),
            "{}",
            status.path
        );
        assert_eq!(status.body["context"], "slipway/staging");
        assert!(status.body["target_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/api/v1/operations/{op_id}/log"))));
        assert_eq!(
            status.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }

    let created = of(&got, CREATE_CHECK);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["name"], "slipway/staging");
    assert_eq!(created[0].body["status"], "in_progress");
    assert_eq!(created[0].body["head_sha"], sha.as_str());
    let check_run_id = fake
        .requests()
        .iter()
        .position(|r| r.operation().as_deref() == Some(CREATE_CHECK))
        .map(|i| 1000 + i as i64)
        .expect("check run");
    let updates = of(&got, UPDATE_CHECK);
    let last = updates.last().expect("the check run is completed");
    assert!(
        updates
            .iter()
            .all(|u| u.path.ends_with(&format!("/check-runs/{check_run_id}"))),
        "updates go to the created check run"
    );
    assert_eq!(last.body["status"], "completed");
    assert_eq!(last.body["conclusion"], "success");
    let summary = last.body["output"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("| step | result | duration |") && summary.contains("build"),
        "{summary}"
    );
    assert!(last.body["output"]["text"]
        .as_str()
        .is_some_and(|t| t.contains("succeeded")));
    assert_eq!(last.body["actions"][0]["identifier"], "rollback");

    let deployment = &of(&got, CREATE_DEPLOYMENT)[0];
    assert_eq!(deployment.body["ref"], sha.as_str());
    assert_eq!(deployment.body["environment"], "staging");
    let deployment_statuses = of(&got, DEPLOYMENT_STATUS);
    assert_eq!(states(&deployment_statuses), ["in_progress", "success"]);
    assert!(deployment_statuses[1].body["environment_url"]
        .as_str()
        .is_some_and(|u| u.starts_with("http")));

    // In order: pending before the check run, the check run completed before success is
    // written, the deployment created before its statuses.
    let first_pending = position(&got, |r| r.operation().as_deref() == Some(STATUS));
    let success = position(&got, |r| {
        r.operation().as_deref() == Some(STATUS) && r.body["state"] == "success"
    });
    let created_at = position(&got, |r| r.operation().as_deref() == Some(CREATE_CHECK));
    let deployment_at = position(&got, |r| {
        r.operation().as_deref() == Some(CREATE_DEPLOYMENT)
    });
    let in_progress_at = position(&got, |r| {
        r.operation().as_deref() == Some(DEPLOYMENT_STATUS)
    });
    assert!(first_pending < created_at && created_at < success && deployment_at < in_progress_at);

    assert_eq!(
        fake.violations(),
        Vec::<String>::new(),
        "every request fits GitHub's schema"
    );
    assert_no_secret(&ws, &server, &fake);
}

#[test]
fn a_failing_deploy_is_reported_as_failure() {
    let ws = Workspace::new();
    let mut app = App::new("shop", "v1");
    app.broken = true;
    app.deadline = "2s".into();
    let sha = repository(&ws, &app);
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    let (status, body) = deliver(
        &server,
        "push",
        "delivery-broken",
        &push_payload(&sha),
        "application/json",
    );
    assert_eq!(status, 202, "{body}");
    let got = wait_for_report(&fake, "failure");
    assert_eq!(
        states(&of(&got, STATUS)).last().map(String::as_str),
        Some("failure")
    );
    let completed = of(&got, UPDATE_CHECK)
        .last()
        .cloned()
        .expect("the check run is completed");
    assert_eq!(completed.body["conclusion"], "failure");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn a_bad_signature_gets_401_and_nothing_happens() {
    let ws = Workspace::new();
    let sha = repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);
    let payload = push_payload(&sha);

    let forged = slipway::github::signature::sign(b"not the secret", &payload);
    assert_eq!(
        deliver_signed(
            &server,
            "push",
            "forged-1",
            &payload,
            "application/json",
            &forged
        )
        .0,
        401
    );
    assert_eq!(
        deliver_signed(
            &server,
            "push",
            "forged-2",
            &payload,
            "application/json",
            ""
        )
        .0,
        401
    );
    // A malformed body with a good signature is a 400; an unknown event is accepted.
    assert_eq!(
        deliver(
            &server,
            "push",
            "bad-json",
            b"{not json",
            "application/json"
        )
        .0,
        400
    );
    assert_eq!(
        deliver(
            &server,
            "sponsorship",
            "unknown-1",
            b"{\"action\":\"created\"}",
            "application/json"
        )
        .0,
        202
    );

    // The forged push is not recorded: once the unknown event is worked on, still nothing.
    wait_until(
        Duration::from_secs(10),
        "the unknown delivery is worked on",
        || {
            std::fs::read_to_string(ws.path("server.stderr"))
                .unwrap_or_default()
                .contains("`sponsorship` events are not acted on")
        },
    );
    assert!(operations(&server).is_empty());
    assert!(
        fake.requests().is_empty(),
        "GitHub heard nothing: {:#?}",
        fake.requests()
    );
}

#[test]
fn github_enabled_without_a_webhook_secret_refuses_to_start() {
    let ws = Workspace::new();
    let out = Command::new(SLIPWAY)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--router",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(ws.data_dir())
        .args([
            "--github-app-id",
            "1",
            "--github-private-key",
            "/nonexistent",
        ])
        .output()
        .expect("slipway runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--github-webhook-secret"), "{stderr}");
}

fn outage_loses_nothing(outage: Outage) {
    let ws = Workspace::new();
    let sha = repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start_failing(5, outage);
    let server = serve(&ws, &fake);

    assert_eq!(
        deliver(
            &server,
            "push",
            "delivery-outage",
            &push_payload(&sha),
            "application/json"
        )
        .0,
        202
    );
    let got = wait_for_report(&fake, "success");
    assert!(
        fake.requests().iter().filter(|r| r.status >= 400).count() == 5,
        "the fake failed its first requests"
    );
    assert_eq!(
        states(&of(&got, STATUS)),
        ["pending", "pending", "success"],
        "every status once, in order"
    );
    assert_eq!(of(&got, CREATE_CHECK).len(), 1);
    assert_eq!(
        of(&got, UPDATE_CHECK)
            .last()
            .map(|r| r.body["conclusion"].clone()),
        Some(json!("success"))
    );
    assert_eq!(
        states(&of(&got, DEPLOYMENT_STATUS)),
        ["in_progress", "success"]
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn a_github_outage_loses_no_status() {
    outage_loses_nothing(Outage::ServerError);
}

#[test]
fn a_rate_limited_github_gets_every_status_once_it_allows_again() {
    outage_loses_nothing(Outage::RateLimited);
}

/// The fake's schema checks are what make the other tests' "no violations" mean
/// something: it must catch what GitHub refuses.
#[test]
fn the_fake_github_catches_what_github_refuses() {
    let fake = FakeGitHub::start();
    let auth = [
        ("Authorization", "Bearer t".to_owned()),
        ("Content-Type", "application/json".to_owned()),
    ];
    let sha = "a".repeat(40);
    let bad_status = json!({ "state": "done", "description": "x".repeat(141) }).to_string();
    request(
        &fake.url,
        "POST",
        &format!("/repos/{REPO}/statuses/{sha}"),
        &auth,
        bad_status.as_bytes(),
    );
    let no_conclusion = json!({ "name": "n", "head_sha": sha, "status": "completed" }).to_string();
    request(
        &fake.url,
        "POST",
        &format!("/repos/{REPO}/check-runs"),
        &auth,
        no_conclusion.as_bytes(),
    );
    let too_many = json!({ "output": { "summary": "s", "annotations": vec![json!({"path": "p", "start_line": 1, "end_line": 1, "annotation_level": "failure", "message": "m"}); 51] } }).to_string();
    request(
        &fake.url,
        "PATCH",
        &format!("/repos/{REPO}/check-runs/1"),
        &auth,
        too_many.as_bytes(),
    );
    let violations = fake.violations().join("\n");
    for expected in [
        "is not one of",
        "description is too long",
        "oneOf",
        "has 51 items; maximum 50",
    ] {
        assert!(
            violations.contains(expected),
            "`{expected}` not caught in:\n{violations}"
        );
    }
}
