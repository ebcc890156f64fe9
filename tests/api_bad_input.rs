//! Bad API input against the real `slipway serve` on loopback: wrong, malformed and
//! revoked tokens (401), another environment's operations and names (404, never 403),
//! path traversal in names (400), config paths that leave the app dir (refused with
//! `FILE:LINE:COL`), and huge or deeply nested JSON bodies (413/400), each with a body
//! that says what is wrong.

mod api_support;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;

use api_support::{call, get, runtime};
use common::{log_of, Server, Workspace};
use serde_json::{json, Value};

fn error_of(answer: &api_support::Answer) -> String {
    answer.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` in {answer:?}"))
        .to_owned()
}

/// A GET with a raw `Authorization` value (or none); returns status, error, and
/// whether the answer names the scheme in `WWW-Authenticate`.
fn get_with_authorization(server: &Server, value: Option<&[u8]>) -> (u16, String, bool) {
    let mut head = b"GET /api/v1/operations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    if let Some(value) = value {
        head.extend_from_slice(b"Authorization: ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let (status, headers, body) = raw(server, &head);
    let error = serde_json::from_str::<Value>(&body).map_or(String::new(), |v| {
        v["error"].as_str().unwrap_or_default().to_owned()
    });
    let challenge = headers
        .to_ascii_lowercase()
        .contains("www-authenticate: bearer");
    (status, error, challenge)
}

/// Sends bytes as they are (no URL normalization) and reads the answer to its end.
fn raw(server: &Server, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(server.api.trim_start_matches("http://")).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (headers, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, headers.to_owned(), body.to_owned())
}

fn raw_get(server: &Server, path: &str) -> (u16, String) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        server.token
    );
    let (status, _, body) = raw(server, request.as_bytes());
    let error = serde_json::from_str::<Value>(&body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, error)
}

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

fn create_token(ws: &Workspace, server: &Server, args: &[&str]) -> String {
    let mut full = vec!["tokens", "create"];
    full.extend_from_slice(args);
    let out = ws.cli(server, &full).ok();
    out.stdout.trim().to_owned()
}

#[test]
fn wrong_malformed_and_revoked_tokens_get_401_saying_what_to_send() {
    let ws = Workspace::new();
    let server = ws.serve();
    let revoked = create_token(
        &ws,
        &server,
        &["--env", "staging", "--role", "read", "--name", "old"],
    );
    let id = revoked.split('_').nth(1).unwrap().to_owned();
    ws.cli(&server, &["tokens", "revoke", &id]).ok();
    let wrong_secret = format!("slw_{id}_{}", "0".repeat(48));
    let long = format!("Bearer {}", "x".repeat(8000));

    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("no header", None),
        ("an empty bearer", Some(b"Bearer ".to_vec())),
        (
            "another scheme",
            Some(format!("Basic {}", server.token).into_bytes()),
        ),
        ("no scheme", Some(server.token.clone().into_bytes())),
        ("a made-up token", Some(b"Bearer not-a-token".to_vec())),
        (
            "an id that does not exist",
            Some(b"Bearer slw_999999_abc".to_vec()),
        ),
        (
            "a wrong secret",
            Some(format!("Bearer {wrong_secret}").into_bytes()),
        ),
        (
            "a revoked token",
            Some(format!("Bearer {revoked}").into_bytes()),
        ),
        ("bytes that are not text", Some(b"Bearer \xff\xfe".to_vec())),
        ("a very long token", Some(long.into_bytes())),
    ];
    for (what, value) in cases {
        let (status, error, challenge) = get_with_authorization(&server, value.as_deref());
        assert_eq!(status, 401, "{what}: {error}");
        assert!(
            error.contains("send `Authorization: Bearer <token>`"),
            "{what}: {error}"
        );
        assert!(challenge, "{what}: no WWW-Authenticate");
    }
    // The scheme is case-insensitive; the admin token works in any case of it.
    let (status, error, _) =
        get_with_authorization(&server, Some(format!("bearer {}", server.token).as_bytes()));
    assert_eq!(status, 200, "{error}");
}

#[test]
fn another_environments_operations_and_names_are_404_like_what_does_not_exist() {
    let ws = Workspace::new();
    let server = ws.serve();
    restart(&server, "staging");
    let production_op = restart(&server, "production");
    let staging = create_token(
        &ws,
        &server,
        &["--env", "staging", "--role", "admin", "--name", "ci"],
    );

    let missing = 999_999;
    for (method, path) in [
        ("GET", "/api/v1/operations/{id}"),
        ("GET", "/api/v1/operations/{id}/log"),
        ("GET", "/api/v1/operations/{id}/log/stream"),
        ("POST", "/api/v1/operations/{id}/cancel"),
    ] {
        let theirs = call(
            method,
            &server.api,
            &path.replace("{id}", &production_op.to_string()),
            &staging,
            None,
        );
        let nobodys = call(
            method,
            &server.api,
            &path.replace("{id}", &missing.to_string()),
            &staging,
            None,
        );
        assert_eq!(
            (theirs.status, nobodys.status),
            (404, 404),
            "{method} {path}: {theirs:?}"
        );
        assert_eq!(
            error_of(&theirs).replace(&production_op.to_string(), "N"),
            error_of(&nobodys).replace(&missing.to_string(), "N"),
            "{method} {path}: the answers tell the two apart"
        );
    }
    for (method, path, body) in [
        ("GET", "/api/v1/apps/shop/environments/production", None),
        (
            "GET",
            "/api/v1/apps/shop/environments/production/releases",
            None,
        ),
        (
            "GET",
            "/api/v1/apps/shop/environments/production/config",
            None,
        ),
        (
            "PATCH",
            "/api/v1/apps/shop/environments/production/config",
            Some(json!({"set": [{"key": "A", "value": "b", "build": false}]})),
        ),
        (
            "POST",
            "/api/v1/apps/shop/environments/production/operations",
            Some(json!({"kind": "restart"})),
        ),
        (
            "PUT",
            "/api/v1/apps/shop/environments/production/maintenance",
            Some(json!({"on": true})),
        ),
    ] {
        let answer = call(method, &server.api, path, &staging, body);
        assert_eq!(answer.status, 404, "{method} {path}: {answer:?}");
        assert_eq!(error_of(&answer), "no environment shop/production");
    }
}

#[test]
fn traversal_in_names_is_refused_with_400_before_it_reaches_a_path() {
    let ws = Workspace::new();
    let server = ws.serve();
    for (segment, shown) in [
        ("..", "`..`"),
        ("%2e%2e", "`..`"),
        ("..%2Fx", "`../x`"),
        ("a%2Fb", "`a/b`"),
        ("x%00", "`x\\u{0}`"),
        ("Shop", "`Shop`"),
        ("%2Fetc%2Fpasswd", "`/etc/passwd`"),
    ] {
        for path in [
            format!("/api/v1/apps/{segment}/environments/staging/releases"),
            format!("/api/v1/apps/shop/environments/{segment}/config"),
        ] {
            let (status, error) = raw_get(&server, &path);
            assert_eq!(status, 400, "{path}: {error}");
            assert!(error.contains(shown), "{path}: {error}");
            assert!(error.contains("is not a valid"), "{path}: {error}");
        }
    }
    let (status, error) = raw_get(&server, "/api/v1/apps/%ff/environments/staging/releases");
    assert_eq!(status, 400);
    assert!(error.contains("not UTF-8"), "{error}");
    let (status, error) = raw_get(&server, "/api/v1/operations/..%2F1");
    assert_eq!(status, 400);
    assert!(error.contains("is not a number"), "{error}");
    // `..` as its own segments matches no route: a JSON 404 that says where routes are.
    let (status, error) = raw_get(&server, "/api/v1/apps/../../etc/environments/x/config");
    assert_eq!(status, 404);
    assert!(error.contains("openapi.json"), "{error}");
    // And nothing was made of any of it.
    let apps = get(&server.api, "/api/v1/apps", &server.token);
    assert_eq!(apps.json(), json!([]), "{apps:?}");
}

/// Uploads `dir` as it is (the CLI would refuse a wrong config before sending it).
fn upload(server: &Server, dir: &std::path::Path) -> i64 {
    let tarball = slipway::source::upload::pack(dir).expect("pack");
    runtime().block_on(async {
        let response = api_support::http()
            .post(format!(
                "{}/api/v1/apps/shop/environments/staging/uploads",
                server.api
            ))
            .bearer_auth(&server.token)
            .header("content-type", "application/gzip")
            .body(tarball)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status().as_u16(), 201);
        let body: Value = response.json().await.expect("json");
        body["id"].as_i64().expect("an id")
    })
}

fn wait_for_failure(ws: &Workspace, server: &Server, id: i64) -> String {
    let op = common::wait_for_end(ws, server, "shop", "staging", id);
    assert_eq!(common::state_of(&op), "failed", "{op}");
    log_of(ws, server, id)
}

#[test]
fn config_paths_that_leave_the_app_dir_are_refused_by_the_server_at_their_position() {
    let ws = Workspace::new();
    let server = ws.serve();
    let admin_token = server.token.clone();

    // build.dockerfile outside the app dir.
    let app = ws.path("escape");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("slipway.yml"),
        "services:\n  web: { command: exec python3 -m http.server $PORT }\nbuild:\n  dockerfile: ../../etc/passwd\n",
    )
    .unwrap();
    let log = wait_for_failure(&ws, &server, upload(&server, &app));
    assert!(
        log.contains(
            "slipway.yml:4:15: build.dockerfile: `../../etc/passwd` leaves the app directory"
        ),
        "{log}"
    );

    // slipway.yml a link to the server's own admin token: refused, and never read.
    let app = ws.path("linked");
    std::fs::create_dir_all(&app).unwrap();
    symlink(ws.data_dir().join("admin.token"), app.join("slipway.yml")).unwrap();
    let log = wait_for_failure(&ws, &server, upload(&server, &app));
    assert!(
        log.contains(
            "slipway.yml:1:1: this is a symbolic link to a file outside the app directory"
        ),
        "{log}"
    );
    assert!(
        !log.contains(&admin_token),
        "the admin token leaked into the log"
    );
}

#[test]
fn huge_or_deeply_nested_json_is_refused_with_bounded_memory() {
    let ws = Workspace::new();
    let server = ws.serve();
    let path = "/api/v1/apps/shop/environments/staging/config";

    // Nested deeper than serde_json's 128 levels.
    let deep = format!(
        "{{\"kind\":\"restart\",\"args\":{}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let answer = runtime().block_on(async {
        let response = api_support::http()
            .post(format!(
                "{}/api/v1/apps/shop/environments/staging/operations",
                server.api
            ))
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body(deep)
            .send()
            .await
            .unwrap();
        api_support::Answer {
            status: response.status().as_u16(),
            body: response.text().await.unwrap(),
        }
    });
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        error_of(&answer).contains("nests deeper than 128 levels"),
        "{answer:?}"
    );

    // A 200 MB body announced in Content-Length is refused having read at most 1 MiB.
    let before = peak_rss_kib(server.pid());
    let mut stream = TcpStream::connect(server.api.trim_start_matches("http://")).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"set\":[{{\"key\":\"A\",\"value\":\"",
        server.token,
        200 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'v'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 200 * 1024 * 1024 && writer.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("larger than the 1024 KiB a JSON request may be"),
        "{answer}"
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let sent = sender.join().unwrap();
    assert!(sent < 200 * 1024 * 1024, "the server read all 200 MB");
    let grown_mib = peak_rss_kib(server.pid()).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 32,
        "the server's peak memory grew by {grown_mib} MiB"
    );

    // Nothing was set.
    let list = get(&server.api, path, &server.token).json();
    assert_eq!(list["variables"], json!([]), "{list}");
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
