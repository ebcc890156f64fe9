//! Deploys from GitHub, end to end, where several deliveries meet: a tag's `push` and
//! `create` deploy once, pushes that queue up behind a held deploy are superseded with
//! their statuses, a GitHub App buys and caches installation tokens, and
//! `--github-repos` keeps other repositories out. The real `slipway serve`, real git
//! repositories, and a fake GitHub that checks every request against GitHub's schema.

mod common;
mod fake_github;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::app::{git_commit_all, yaml_str};
use common::{wait_until, App, Workspace};
use fake_github::harness::*;
use fake_github::{FakeGitHub, Recorded};
use serde_json::{json, Value};

/// Rewrites the app in the work tree with these environments and commits it.
fn commit_app(ws: &Workspace, app: &App, environments: &str, message: &str) -> String {
    let work = ws.path("work/shop");
    app.write(&work);
    std::fs::write(
        work.join("slipway.yml"),
        format!("{}environments:\n{environments}", app.slipway_yml()),
    )
    .expect("slipway.yml");
    git_commit_all(&work, message)
}

/// A fixture payload of `shared/fixtures/github-webhooks`.
fn fixture(path: &str) -> Value {
    let file = format!(
        "{}/../shared/fixtures/github-webhooks/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(file).expect("fixture")).expect("json")
}

fn send(server: &Server, event: &str, delivery: &str, payload: &[u8]) {
    let (status, body) = deliver(server, event, delivery, payload, "application/json");
    assert_eq!(status, 202, "{body}");
}

fn ops_of_commit(server: &Server, sha: &str) -> Vec<Value> {
    operations(server)
        .into_iter()
        .filter(|op| op["commit"] == sha)
        .collect()
}

#[test]
fn a_tag_pushed_to_github_deploys_once_though_push_and_create_both_arrive() {
    let ws = Workspace::new();
    repository(&ws, &App::new("shop", "v1"));
    let sha = commit_app(
        &ws,
        &App::new("shop", "tagged"),
        "  production: { tags: [\"simple-*\"] }\n",
        "release",
    );
    git_push(&ws, "HEAD:refs/heads/main");
    git_push(&ws, "HEAD:refs/tags/simple-tag");
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    // GitHub's own payloads of a tag push (GHES 3.5) and of the tag's creation.
    let mut push = fixture("push/ghes-35/payload.json");
    assert_eq!(push["ref"], "refs/tags/simple-tag");
    push["after"] = json!(sha);
    push["repository"]["full_name"] = json!(REPO);
    push["repository"]["name"] = json!("shop");
    let mut create = fixture("create/payload.json");
    assert_eq!(create["ref_type"], "tag");
    assert_eq!(create["ref"], "simple-tag");
    create["repository"]["full_name"] = json!(REPO);
    create["repository"]["name"] = json!("shop");
    let create = create.to_string();

    send(&server, "push", "tag-push", push.to_string().as_bytes());
    send(&server, "create", "tag-create", create.as_bytes());
    let started = wait_for_outcome(&ws, "tag-push");
    assert!(started.contains("started operation"), "{started}");
    let skipped = wait_for_outcome(&ws, "tag-create");
    assert!(
        skipped.contains("skipped") && skipped.contains(&sha),
        "the create delivery says why it started nothing: {skipped}"
    );
    let got = wait_for_report(&fake, "success");
    assert_eq!(
        server
            .app_json("shop-production.localhost")
            .map(|a| a["version"].clone()),
        Some(json!("tagged"))
    );

    // The same body again under a new id is a replay (GitHub's redeliveries keep their
    // id): answered, not acted on.
    let (status, body) = deliver(
        &server,
        "create",
        "tag-create-replayed",
        create.as_bytes(),
        "application/json",
    );
    assert_eq!(status, 200, "{body}");
    // The tag created again later (another event, so another body): the tag is what
    // production serves already.
    let mut recreated: Value = serde_json::from_str(&create).expect("json");
    recreated["sender"]["login"] = json!("another-user");
    send(
        &server,
        "create",
        "tag-create-again",
        recreated.to_string().as_bytes(),
    );
    let again = wait_for_outcome(&ws, "tag-create-again");
    assert!(again.contains("production already serves"), "{again}");

    let ops = operations(&server);
    assert_eq!(ops.len(), 1, "one deploy for the tag: {ops:#?}");
    assert_eq!(of(&got, CREATE_DEPLOYMENT).len(), 1);
    assert_eq!(
        states(&of(&fake.accepted(), STATUS)),
        ["pending", "pending", "success"]
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn pushes_queued_behind_a_held_deploy_are_superseded_and_github_hears_it() {
    let ws = Workspace::new();
    let gate = ws.path("let-the-first-deploy-go");
    let app = App::new("shop", "v1").hook(
        "before_release",
        yaml_str(&format!(
            "while [ ! -f '{}' ]; do sleep 0.05; done",
            gate.display()
        )),
    );
    let staging = "  staging: { branches: [main] }\n";
    let first = commit_app(&ws, &app, staging, "v1");
    let middle = commit_app(&ws, &app.clone().version("v2"), staging, "v2");
    let last = commit_app(&ws, &app.clone().version("v3"), staging, "v3");
    // The repository has all three commits; the deliveries name each in turn.
    repository_with_work_tree(&ws);
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    send(&server, "push", "push-1", &push_payload(&first));
    wait_until(
        Duration::from_secs(60),
        "the first deploy runs (held in before_release)",
        || {
            ops_of_commit(&server, &first)
                .first()
                .is_some_and(|op| op["state"] == "running")
        },
    );
    send(&server, "push", "push-2", &push_payload(&middle));
    // GitHub hears that the second push is queued before the third supersedes it (one
    // superseded before GitHub heard of it gets its final status alone: the test below).
    wait_until(
        Duration::from_secs(30),
        "GitHub hears that the second push is queued",
        || {
            of(&fake.accepted(), STATUS).iter().any(|r| {
                r.path.ends_with(&format!("/statuses/{middle}")) && r.body["state"] == "pending"
            })
        },
    );
    send(&server, "push", "push-3", &push_payload(&last));
    wait_for_outcome(&ws, "push-2");
    wait_for_outcome(&ws, "push-3");
    std::fs::write(&gate, "").expect("open the gate");

    wait_until(
        Duration::from_secs(120),
        "the newest push is deployed",
        || {
            ops_of_commit(&server, &last)
                .first()
                .is_some_and(|op| op["state"] == "succeeded")
        },
    );
    let skipped = ops_of_commit(&server, &middle);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["state"], "superseded", "{:#?}", skipped[0]);
    assert_eq!(
        server
            .app_json("shop-staging.localhost")
            .map(|a| a["version"].clone()),
        Some(json!("v3"))
    );

    // GitHub hears the end of the superseded push: a final commit status that says so,
    // a check run that is `skipped`, and an `inactive` deployment.
    let statuses = final_statuses(&fake, &middle);
    assert_eq!(states(&statuses), ["pending", "error"], "{statuses:#?}");
    let last_status = &statuses[1].body;
    assert!(
        last_status["description"]
            .as_str()
            .is_some_and(|d| d.contains("superseded")),
        "{last_status}"
    );
    assert_eq!(last_status["context"], "slipway/staging");
    let check = of(&fake.accepted(), CREATE_CHECK)
        .into_iter()
        .find(|r| r.body["head_sha"] == middle.as_str())
        .expect("a check run for the superseded commit");
    assert_eq!(check.body["status"], "completed");
    assert_eq!(check.body["conclusion"], "skipped");
    wait_until(
        Duration::from_secs(30),
        "the superseded deployment is inactive",
        || {
            of(&fake.accepted(), DEPLOYMENT_STATUS).iter().any(|r| {
                r.body["state"] == "inactive"
                    && r.body["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("superseded"))
            })
        },
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// The commit statuses GitHub got for `sha`, once one of them is final.
fn final_statuses(fake: &FakeGitHub, sha: &str) -> Vec<Recorded> {
    let for_it = |r: &Recorded| r.path.ends_with(&format!("/statuses/{sha}"));
    wait_until(
        Duration::from_secs(30),
        "the superseded commit gets its final status",
        || {
            of(&fake.accepted(), STATUS)
                .iter()
                .any(|r| for_it(r) && r.body["state"] != "pending")
        },
    );
    of(&fake.accepted(), STATUS)
        .into_iter()
        .filter(for_it)
        .collect()
}

/// Makes the bare repository's `main` the work tree's HEAD (when `repository` was not
/// used to create it).
fn repository_with_work_tree(ws: &Workspace) {
    bare_repository(ws, REPO, &ws.path("work/shop"));
}

/// An RSA key as GitHub hands an app's out (PEM), made with openssl.
fn app_key(ws: &Workspace) -> std::path::PathBuf {
    let path = ws.path("app-key.pem");
    let out = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&path)
        .arg("2048")
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Checks a GitHub App JWT: RS256, signed by the key, issued by the app, valid for at
/// most ten minutes.
fn assert_app_jwt(authorization: &str, key_file: &std::path::Path, app_id: &str) {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::Verifier;

    let jwt = authorization.strip_prefix("Bearer ").expect("a bearer JWT");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    };
    assert_eq!(decode(parts[0])["alg"], "RS256");
    let claims = decode(parts[1]);
    assert_eq!(claims["iss"], app_id);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let exp = claims["exp"].as_i64().expect("exp");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(
        exp > now - 60 && exp - iat <= 600 && exp <= now + 600,
        "{claims}"
    );
    let pem = std::fs::read_to_string(key_file).expect("the key");
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(&pem))
        .expect("an RSA key");
    let verifying = VerifyingKey::<sha2::Sha256>::new(private.to_public_key());
    let signature = Signature::try_from(
        URL_SAFE_NO_PAD
            .decode(parts[2])
            .expect("base64url")
            .as_slice(),
    )
    .expect("a signature");
    verifying
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the JWT verifies against the app's public key");
}

#[test]
fn a_github_app_buys_an_installation_token_with_a_signed_jwt_and_caches_it() {
    let ws = Workspace::new();
    let first = repository(&ws, &App::new("shop", "v1"));
    let key = app_key(&ws);
    let fake = FakeGitHub::start();
    let flags = [
        "--github-app-id".to_owned(),
        "4242".to_owned(),
        "--github-private-key".to_owned(),
        key.display().to_string(),
    ];
    let server = serve_with(&ws, &fake, &flags, None);
    let with_installation = |sha: &str| {
        let mut payload: Value = serde_json::from_slice(&push_payload(sha)).expect("json");
        payload["installation"] = json!({ "id": 77 });
        payload.to_string().into_bytes()
    };

    send(&server, "push", "app-1", &with_installation(&first));
    wait_for_report(&fake, "success");
    let tokens: Vec<Recorded> = fake
        .accepted()
        .into_iter()
        .filter(|r| r.path.ends_with("/access_tokens"))
        .collect();
    assert_eq!(tokens.len(), 1, "{tokens:#?}");
    assert_eq!(tokens[0].path, "/app/installations/77/access_tokens");
    assert_app_jwt(
        tokens[0].authorization.as_deref().unwrap_or_default(),
        &key,
        "4242",
    );
    let installation_token = "Bearer ghs_fake_installation_77";
    let others: Vec<Recorded> = fake
        .accepted()
        .into_iter()
        .filter(|r| !r.path.ends_with("/access_tokens"))
        .collect();
    assert!(!others.is_empty());
    assert!(
        others
            .iter()
            .all(|r| r.authorization.as_deref() == Some(installation_token)),
        "every other request uses the installation token"
    );

    // A second delivery: the cached token is used, none is bought.
    let second = commit_app(
        &ws,
        &App::new("shop", "v2"),
        "  staging: { branches: [main] }\n",
        "v2",
    );
    git_push(&ws, "HEAD:refs/heads/main");
    send(&server, "push", "app-2", &with_installation(&second));
    wait_until(
        Duration::from_secs(120),
        "the second deploy is reported",
        || {
            states(&of(&fake.accepted(), DEPLOYMENT_STATUS))
                .iter()
                .filter(|s| *s == "success")
                .count()
                == 2
        },
    );
    let token_requests = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/access_tokens"))
        .count();
    assert_eq!(token_requests, 1, "the token is cached");
    assert!(fake
        .accepted()
        .iter()
        .filter(|r| !r.path.ends_with("/access_tokens"))
        .all(|r| r.authorization.as_deref() == Some(installation_token)));
    assert_eq!(fake.violations(), Vec::<String>::new());
    let stderr = std::fs::read_to_string(ws.path("server.stderr")).unwrap_or_default();
    assert!(
        !stderr.contains("ghs_fake_installation"),
        "no token in the log"
    );
}

#[test]
fn a_repository_outside_the_github_repos_globs_starts_nothing() {
    let ws = Workspace::new();
    let sha = repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let flags = [
        "--github-repos".to_owned(),
        "other/*".to_owned(),
        "acme/sh*".to_owned(),
    ];
    let server = serve_with(&ws, &fake, &flags, Some(TOKEN));

    let mut elsewhere: Value = serde_json::from_slice(&push_payload(&sha)).expect("json");
    elsewhere["repository"]["full_name"] = json!("elsewhere/shop");
    send(
        &server,
        "push",
        "elsewhere-1",
        elsewhere.to_string().as_bytes(),
    );
    let outcome = wait_for_outcome(&ws, "elsewhere-1");
    assert!(
        outcome.contains("ignored: elsewhere/shop is not in --github-repos"),
        "{outcome}"
    );
    assert!(operations(&server).is_empty());
    assert!(fake.requests().is_empty(), "GitHub heard nothing");

    // The same push from a repository the globs name deploys.
    send(&server, "push", "acme-1", &push_payload(&sha));
    wait_for_report(&fake, "success");
    assert_eq!(operations(&server).len(), 1);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn of_pushes_waiting_together_only_the_last_of_the_branch_is_fetched_and_deployed() {
    let ws = Workspace::new();
    let app = App::new("shop", "v1");
    let staging = "  staging: { branches: [main] }\n";
    let first = commit_app(&ws, &app, staging, "v1");
    let middle = commit_app(&ws, &app.clone().version("v2"), staging, "v2");
    let last = commit_app(&ws, &app.clone().version("v3"), staging, "v3");
    repository_with_work_tree(&ws);
    let fake = FakeGitHub::start();

    // A server that stores and answers deliveries but is killed before working on them.
    let paused = serve_with_env(
        &ws,
        &fake,
        &[],
        Some(TOKEN),
        &[("SLIPWAY_TEST_PAUSE_AT", "delivery-accepted")],
    );
    for (delivery, sha) in [("push-1", &first), ("push-2", &middle), ("push-3", &last)] {
        send(&paused, "push", delivery, &push_payload(sha));
    }
    // A later push to another branch supersedes nothing on `main`.
    let mut feature: Value = serde_json::from_slice(&push_payload(&last)).expect("json");
    feature["ref"] = json!("refs/heads/feature");
    send(&paused, "push", "push-4", feature.to_string().as_bytes());
    wait_until(
        Duration::from_secs(30),
        "the server pauses before working on them",
        || ws.data_dir().join("paused-at-delivery-accepted").exists(),
    );
    drop(paused);

    let server = serve(&ws, &fake);
    wait_until(
        Duration::from_secs(120),
        "the last push is deployed",
        || {
            ops_of_commit(&server, &last)
                .first()
                .is_some_and(|op| op["state"] == "succeeded")
        },
    );
    for (sha, delivery) in [(&first, "push-1"), (&middle, "push-2")] {
        let ops = ops_of_commit(&server, sha);
        assert_eq!(ops.len(), 1, "{ops:#?}");
        assert_eq!(ops[0]["state"], "superseded", "{:#?}", ops[0]);
        assert!(
            wait_for_outcome(&ws, delivery).contains("superseded by delivery push-3"),
            "{}",
            wait_for_outcome(&ws, delivery)
        );
        // Never fetched nor extracted: only the last commit's files are on disk.
        assert!(!ws.data_dir().join(format!("sources/git-{sha}")).exists());
    }
    assert!(ws.data_dir().join(format!("sources/git-{last}")).exists());
    assert!(
        wait_for_outcome(&ws, "push-4").contains("no environment of shop deploys this"),
        "{}",
        wait_for_outcome(&ws, "push-4")
    );
    let ids: Vec<i64> = [&first, &middle, &last]
        .iter()
        .map(|sha| ops_of_commit(&server, sha)[0]["id"].as_i64().expect("id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in push order: {ids:?}"
    );
    assert_eq!(
        server
            .app_json("shop-staging.localhost")
            .map(|a| a["version"].clone()),
        Some(json!("v3"))
    );

    // Each superseded commit still hears its end on GitHub: one final commit status
    // that says so, and nothing else (it was never deployed, no check ran).
    for sha in [&first, &middle] {
        let statuses = final_statuses(&fake, sha);
        assert_eq!(states(&statuses), ["error"], "{statuses:#?}");
        assert!(statuses[0].body["description"]
            .as_str()
            .is_some_and(|d| d.contains("superseded")));
        assert_eq!(statuses[0].body["context"], "slipway/staging");
        let accepted = fake.accepted();
        assert!(
            !of(&accepted, CREATE_CHECK)
                .iter()
                .any(|r| r.body["head_sha"] == sha.as_str()),
            "a check run for the superseded {sha}"
        );
        assert!(
            !of(&accepted, CREATE_DEPLOYMENT)
                .iter()
                .any(|r| r.body["ref"] == sha.as_str()),
            "a deployment for the superseded {sha}"
        );
    }
    assert_eq!(fake.violations(), Vec::<String>::new());
}
