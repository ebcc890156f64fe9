//! Configuration values are secrets, end to end with the `examples/hello` app: after
//! `slipway config set GREETING=...` the app answers with the value through the router,
//! while no operation log (hooks echo it; they are masked), no API answer, no error
//! message, no CLI output and no file the server writes besides its database holds it.
//! Only `config list --reveal` with an admin token shows it.

mod api_support;
mod common;

use std::path::Path;

use api_support::{call, get};
use common::Workspace;
use serde_json::{json, Value};

const SECRET: &str = "s3cr3t-Greeting-4217";
const HOST: &str = "hello-staging.localhost";

/// `examples/hello`, with hooks that print the variable.
fn hello_app(ws: &Workspace) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello");
    let dir = ws.path("hello");
    std::fs::create_dir_all(&dir).expect("the app folder");
    for file in ["app.py", "VERSION", "slipway.yml"] {
        std::fs::copy(source.join(file), dir.join(file)).expect("copy the example");
    }
    let yml = std::fs::read_to_string(dir.join("slipway.yml")).expect("slipway.yml");
    let yml = yml.replace(
        "hooks:\n",
        "hooks:\n  after_configure_success: [\"echo configured with $GREETING\"]\n  after_restart_success: [\"echo greeting is $GREETING\"]\n",
    );
    std::fs::write(dir.join("slipway.yml"), yml).expect("slipway.yml");
    dir
}

/// Every file under `dir`, except the database that keeps the values.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("slipway.db"))
        {
            out.push(path);
        }
    }
}

#[test]
fn a_variable_reaches_the_app_and_nothing_else() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = hello_app(&ws);
    let mut outputs = Vec::new();
    outputs.push(
        ws.cli(
            &server,
            &["deploy", dir.to_str().unwrap(), "--env", "staging"],
        )
        .ok()
        .to_string(),
    );
    let set = ws
        .cli(
            &server,
            &[
                "config",
                "set",
                &format!("GREETING={SECRET}"),
                "--app",
                "hello",
                "--env",
                "staging",
            ],
        )
        .ok();
    outputs.push(set.to_string());

    let answer = server
        .app_json(HOST)
        .expect("the app answers through the router");
    assert_eq!(answer["greeting"], SECRET, "the app got the value");
    outputs.push(
        ws.cli(&server, &["restart", "--app", "hello", "--env", "staging"])
            .ok()
            .to_string(),
    );

    // The values are shown to an admin who asks, and to no one else.
    let listed = ws
        .cli(
            &server,
            &["config", "list", "--app", "hello", "--env", "staging"],
        )
        .ok()
        .stdout;
    assert!(listed.contains("GREETING=****"), "{listed}");
    let revealed = ws
        .cli(
            &server,
            &[
                "config", "list", "--reveal", "--app", "hello", "--env", "staging",
            ],
        )
        .ok()
        .stdout;
    assert!(
        revealed.contains(&format!("GREETING={SECRET}")),
        "{revealed}"
    );
    let deployer = call(
        "POST",
        &server.api,
        "/api/v1/tokens",
        &server.token,
        Some(json!({ "name": "ci", "role": "deploy", "environments": ["*"] })),
    );
    let deployer = deployer.json()["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let refused = get(
        &server.api,
        "/api/v1/apps/hello/environments/staging/config?reveal=true",
        &deployer,
    );
    assert_eq!(refused.status, 403);
    outputs.push(refused.body);

    // Every log of every operation: the hooks ran, and their output is masked.
    let ops = get(&server.api, "/api/v1/operations", &server.token);
    outputs.push(ops.body.clone());
    let mut logs = String::new();
    for op in ops.json().as_array().expect("operations") {
        let id = op["id"].as_i64().expect("an id");
        for path in [
            format!("/api/v1/operations/{id}"),
            format!("/api/v1/operations/{id}/log"),
            format!("/api/v1/operations/{id}/log/stream"),
        ] {
            logs.push_str(&get(&server.api, &path, &server.token).body);
        }
        logs.push_str(&common::log_of(&ws, &server, id));
    }
    assert!(
        logs.contains("configured with ****"),
        "the after_configure_success hook ran, masked:\n{logs}"
    );
    assert!(
        logs.contains("greeting is ****"),
        "the after_restart_success hook ran, masked:\n{logs}"
    );
    outputs.push(logs);

    // Every other answer of the API.
    for path in [
        "/api/v1/apps",
        "/api/v1/environments",
        "/api/v1/apps/hello/environments/staging",
        "/api/v1/apps/hello/environments/staging/releases",
        "/api/v1/apps/hello/environments/staging/config",
        "/api/v1/activity",
        "/api/v1/activity.csv",
        "/api/v1/tokens",
        "/metrics",
    ] {
        let answer = get(&server.api, path, &server.token);
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        outputs.push(answer.body);
    }

    // Error messages about requests that carry the value.
    for body in [
        json!({ "set": [{ "key": "1BAD", "value": SECRET, "build": false }] }),
        json!({ "set": [{ "key": "OK", "value": SECRET, "build": "yes" }] }),
        json!({ "set": [{ "key": "OK", "value": SECRET }], "unknown": SECRET }),
        json!({ "set": SECRET }),
    ] {
        let answer = call(
            "PATCH",
            &server.api,
            "/api/v1/apps/hello/environments/staging/config",
            &server.token,
            Some(body),
        );
        assert_eq!(answer.status, 400, "{answer:?}");
        outputs.push(answer.body);
    }
    let broken = api_support::runtime().block_on(async {
        let response = api_support::http()
            .patch(format!(
                "{}/api/v1/apps/hello/environments/staging/config",
                server.api
            ))
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body(format!(
                "{{\"set\": [{{\"key\": \"OK\", \"value\": \"{SECRET}\""
            )) // cut short
            .send()
            .await
            .expect("an answer");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    });
    assert_eq!(broken.0, 400);
    outputs.push(broken.1);

    for (i, output) in outputs.iter().enumerate() {
        assert!(
            !output.contains(SECRET),
            "output {i} shows the value:\n{output}"
        );
    }
    // No file the server wrote (its own log on stderr, instance and build logs, reports)
    // holds the value; only its database does. The hello app prints its greeting as it
    // starts: its instance log has it masked.
    let mut files = vec![ws.path("server.stderr")];
    files_under(&ws.data_dir(), &mut files);
    let instance_logs: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with(ws.data_dir().join("logs")))
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    assert!(
        instance_logs
            .iter()
            .any(|log| log.contains("****: version")),
        "the app's greeting reaches its instance log, masked: {instance_logs:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "{} holds the value", file.display());
    }
    let metrics: Value = Value::String(get(&server.api, "/metrics", "").body);
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m
                .contains("slipway_operations_total{kind=\"configure\",state=\"succeeded\"} 1")),
        "{metrics}"
    );
}
