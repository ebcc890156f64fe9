//! Tokens scoped to environments, against the real server: a `staging` token cannot see
//! or act on production (404, as if it did not exist), its lists and activity show only
//! staging, a `read` token cannot deploy (403), token management needs an admin, a
//! revoked token stops working, and only a token's hash is stored.

mod api_support;
mod common;

use api_support::{call, get};
use common::{Server, Workspace};
use serde_json::{json, Value};

/// Starts an operation as the admin; returns its id.
fn restart(server: &Server, env: &str) -> i64 {
    let answer = call(
        "POST",
        &server.api,
        &format!("/api/v1/apps/shop/environments/{env}/operations"),
        &server.token,
        Some(json!({ "kind": "restart" })),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.json()["id"].as_i64().expect("an id")
}

/// `slipway tokens create ...`: prints the token text on stdout.
fn create_token(ws: &Workspace, server: &Server, args: &[&str]) -> String {
    let mut full = vec!["tokens", "create"];
    full.extend_from_slice(args);
    let out = ws.cli(server, &full).ok();
    let token = out.stdout.trim().to_owned();
    assert!(token.starts_with("slw_"), "{out}");
    token
}

fn envs_of(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|op| {
            format!(
                "{}/{}",
                op["env"]["app"].as_str().unwrap_or("?"),
                op["env"]["env"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[test]
fn a_staging_token_sees_and_acts_on_staging_only() {
    let ws = Workspace::new();
    let server = ws.serve();
    let staging_op = restart(&server, "staging");
    let production_op = restart(&server, "production");

    let viewer = create_token(
        &ws,
        &server,
        &["--env", "staging", "--role", "read", "--name", "viewer"],
    );
    let ci = create_token(
        &ws,
        &server,
        &[
            "--env", "staging", "--app", "shop", "--role", "deploy", "--name", "ci",
        ],
    );

    // Production does not exist, as far as a staging token can tell.
    for token in [&viewer, &ci] {
        for path in [
            "/api/v1/apps/shop/environments/production",
            "/api/v1/apps/shop/environments/production/releases",
            "/api/v1/apps/shop/environments/production/config",
            &format!("/api/v1/operations/{production_op}"),
            &format!("/api/v1/operations/{production_op}/log"),
            "/api/v1/operations?app=shop&env=production",
        ] {
            let answer = get(&server.api, path, token);
            assert_eq!(answer.status, 404, "GET {path}: {answer:?}");
        }
        let nowhere = get(
            &server.api,
            "/api/v1/apps/shop/environments/nowhere/releases",
            token,
        );
        let production = get(
            &server.api,
            "/api/v1/apps/shop/environments/production/releases",
            token,
        );
        assert_eq!(
            nowhere.body.replace("nowhere", "X"),
            production.body.replace("production", "X"),
            "the same answer as for an environment that does not exist"
        );
        let act = call(
            "POST",
            &server.api,
            "/api/v1/apps/shop/environments/production/operations",
            token,
            Some(json!({ "kind": "restart" })),
        );
        assert_eq!(act.status, 404, "{act:?}");
        let cancel = call(
            "POST",
            &server.api,
            &format!("/api/v1/operations/{production_op}/cancel"),
            token,
            None,
        );
        assert_eq!(cancel.status, 404, "{cancel:?}");

        // Staging is there.
        assert_eq!(
            get(
                &server.api,
                "/api/v1/apps/shop/environments/staging/releases",
                token
            )
            .status,
            200
        );
        assert_eq!(
            get(
                &server.api,
                &format!("/api/v1/operations/{staging_op}"),
                token
            )
            .status,
            200
        );
        let ops = get(&server.api, "/api/v1/operations", token).json();
        assert_eq!(envs_of(&ops), ["shop/staging"]);
        let environments = get(&server.api, "/api/v1/environments", token).json();
        assert_eq!(
            environments.as_array().map(Vec::len),
            Some(1),
            "{environments}"
        );
        assert_eq!(environments[0]["env"], "staging");
        let activity = get(&server.api, "/api/v1/activity?format=json", token).json();
        assert_eq!(envs_of(&activity), ["shop/staging"]);
        let csv = get(&server.api, "/api/v1/activity.csv", token).body;
        assert!(!csv.contains("production"), "{csv}");
        assert!(csv.contains(",shop,staging,restart,"), "{csv}");
    }
    // The admin sees both.
    let all = get(&server.api, "/api/v1/operations", &server.token).json();
    assert_eq!(envs_of(&all).len(), 2);

    // A read token cannot act on what it sees; a deploy token can, and is recorded.
    let denied = call(
        "POST",
        &server.api,
        "/api/v1/apps/shop/environments/staging/operations",
        &viewer,
        Some(json!({ "kind": "restart" })),
    );
    assert_eq!(denied.status, 403, "{denied:?}");
    let denied = call(
        "PATCH",
        &server.api,
        "/api/v1/apps/shop/environments/staging/config",
        &viewer,
        Some(json!({ "set": [] })),
    );
    assert_eq!(denied.status, 403, "{denied:?}");
    let allowed = call(
        "POST",
        &server.api,
        "/api/v1/apps/shop/environments/staging/operations",
        &ci,
        Some(json!({ "kind": "restart", "initiator": "github action" })),
    );
    assert_eq!(allowed.status, 201, "{allowed:?}");
    assert_eq!(allowed.json()["initiator"], "token ci via github action");

    // Values and tokens are for admins.
    assert_eq!(
        get(
            &server.api,
            "/api/v1/apps/shop/environments/staging/config?reveal=true",
            &ci
        )
        .status,
        403
    );
    assert_eq!(get(&server.api, "/api/v1/tokens", &ci).status, 403);
    let escalate = call(
        "POST",
        &server.api,
        "/api/v1/tokens",
        &ci,
        Some(json!({ "role": "admin", "environments": ["*"] })),
    );
    assert_eq!(escalate.status, 403, "{escalate:?}");

    // The CLI with a scoped token: production is not there.
    let mut command = std::process::Command::new(common::SLIPWAY);
    let out = command
        .args(["ops", "--app", "shop", "--env", "production", "--json"])
        .env("SLIPWAY_SERVER", &server.api)
        .env("SLIPWAY_TOKEN", &viewer)
        .current_dir(ws.root())
        .output()
        .expect("the CLI runs");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tokens_are_listed_revoked_and_stored_only_as_hashes() {
    let ws = Workspace::new();
    let server = ws.serve();
    let token = create_token(
        &ws,
        &server,
        &["--env", "*", "--role", "read", "--name", "dash"],
    );
    assert_eq!(get(&server.api, "/api/v1/environments", &token).status, 200);
    assert_eq!(
        get(&server.api, "/api/v1/environments", "slw_1_0000").status,
        401
    );
    assert_eq!(get(&server.api, "/api/v1/environments", "").status, 401);

    let listed = ws.cli(&server, &["tokens", "list", "--json"]).ok().json();
    assert_eq!(listed[0]["name"], "dash");
    assert_eq!(listed[0]["role"], "read");
    assert_eq!(listed[0]["environments"], json!(["*"]));
    assert!(listed[0].get("token").is_none() && !listed.to_string().contains(&token));

    // Only the hash is in the database (its file and its write-ahead log).
    let mut stored = Vec::new();
    for file in ["slipway.db", "slipway.db-wal"] {
        stored.extend(std::fs::read(ws.data_dir().join(file)).unwrap_or_default());
    }
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(token.as_bytes()),
        "the token's text is in the database"
    );
    let secret_part = token.rsplit('_').next().expect("a secret part");
    assert!(
        !contains(secret_part.as_bytes()),
        "the token's secret is in the database"
    );
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    assert!(contains(hash.as_bytes()), "the token's sha256 is stored");

    let id = listed[0]["id"].as_i64().expect("an id").to_string();
    ws.cli(&server, &["tokens", "revoke", &id]).ok();
    assert_eq!(get(&server.api, "/api/v1/environments", &token).status, 401);
}

#[test]
fn metrics_and_health_need_no_token_and_the_openapi_document_covers_every_route() {
    let ws = Workspace::new();
    let server = ws.serve();
    restart(&server, "staging");
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the restart ends",
        || {
            let ops = get(&server.api, "/api/v1/operations", &server.token).json();
            ops[0]["finished_at"].is_i64()
        },
    );
    assert_eq!(get(&server.api, "/healthz", "").body, "ok");
    let metrics = get(&server.api, "/metrics", "");
    assert_eq!(metrics.status, 200);
    for series in [
        "slipway_operations_total{kind=\"restart\",state=\"failed\"} 1",
        "slipway_operation_duration_seconds_bucket{kind=\"restart\",le=\"+Inf\"} 1",
        "slipway_operation_duration_seconds_count{kind=\"restart\"} 1",
        "slipway_queue_depth{app=\"shop\",env=\"staging\"} 0",
        "slipway_router_requests_total ",
    ] {
        assert!(
            metrics.body.contains(series),
            "no `{series}` in:\n{}",
            metrics.body
        );
    }

    let document = get(&server.api, "/api/v1/openapi.json", "").json();
    let paths = document["paths"].as_object().expect("paths");
    // Every documented route is mounted: without a token it answers 401, not 404/405.
    for (path, item) in paths {
        let concrete = path
            .replace("{app}", "shop")
            .replace("{env}", "staging")
            .replace("{id}", "1");
        for method in item.as_object().expect("methods").keys() {
            let answer = call(&method.to_uppercase(), &server.api, &concrete, "", None);
            let expected = if path == "/api/v1/openapi.json" {
                200
            } else {
                401
            };
            assert_eq!(answer.status, expected, "{method} {path}: {answer:?}");
        }
    }
    // And what the product promises is documented.
    for (path, method) in [
        ("/api/v1/apps", "get"),
        ("/api/v1/environments", "get"),
        ("/api/v1/apps/{app}/environments/{env}", "get"),
        ("/api/v1/apps/{app}/environments/{env}/uploads", "post"),
        ("/api/v1/apps/{app}/environments/{env}/operations", "post"),
        ("/api/v1/apps/{app}/environments/{env}/releases", "get"),
        ("/api/v1/apps/{app}/environments/{env}/config", "get"),
        ("/api/v1/apps/{app}/environments/{env}/config", "patch"),
        ("/api/v1/operations", "get"),
        ("/api/v1/operations/{id}", "get"),
        ("/api/v1/operations/{id}/cancel", "post"),
        ("/api/v1/operations/{id}/log", "get"),
        ("/api/v1/operations/{id}/log/stream", "get"),
        ("/api/v1/activity", "get"),
        ("/api/v1/activity.csv", "get"),
        ("/api/v1/tokens", "get"),
        ("/api/v1/tokens", "post"),
        ("/api/v1/tokens/{id}", "delete"),
        ("/api/v1/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    assert!(
        document["components"]["schemas"]["OperationView"]["properties"]["initiator"].is_object()
    );
}
