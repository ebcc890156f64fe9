//! Driving a `slipway serve` with GitHub enabled from tests: a local bare repository
//! served through `--github-git-url file://...`, the server started against a fake
//! GitHub, deliveries signed as GitHub signs them, and helpers to read what the fake got.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, wait_until, App, Workspace, SLIPWAY};
use crate::fake_github::{FakeGitHub, Recorded};

pub const SECRET: &str = "webhook-secret-never-printed";
pub const TOKEN: &str = "ghp_token_never_printed_0123456789";
pub const REPO: &str = "acme/shop";

/// A bare repository at `<ws>/git/acme/shop.git` with one commit of a web app on `main`.
pub fn repository(ws: &Workspace, app: &App) -> String {
    let work = ws.path("work/shop");
    app.write(&work);
    let yml = format!(
        "{}environments:\n  staging: {{ branches: [main] }}\n",
        app.slipway_yml()
    );
    std::fs::write(work.join("slipway.yml"), yml).expect("slipway.yml");
    let sha = common::app::git_commit_all(&work, "the app");
    bare_repository(ws, REPO, &work);
    sha
}

/// A bare repository at `<ws>/git/<full_name>.git` whose `main` is `work`'s HEAD.
pub fn bare_repository(ws: &Workspace, full_name: &str, work: &Path) -> std::path::PathBuf {
    let bare = ws.path(&format!("git/{full_name}.git"));
    std::fs::create_dir_all(&bare).expect("bare dir");
    git(&bare, &["init", "--quiet", "--bare"]);
    git(
        work,
        &[
            "push",
            "--quiet",
            bare.to_str().expect("utf-8 path"),
            "HEAD:refs/heads/main",
        ],
    );
    bare
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `slipway serve` with GitHub enabled, killed when dropped.
pub struct Server {
    child: Child,
    pub api: String,
    pub router: std::net::SocketAddr,
    pub token: String,
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(ws: &Workspace, fake: &FakeGitHub) -> Server {
    serve_with(ws, fake, &[], Some(TOKEN))
}

/// A server with more flags, and `GITHUB_TOKEN` set to `token` (or not set at all).
pub fn serve_with(
    ws: &Workspace,
    fake: &FakeGitHub,
    flags: &[String],
    token: Option<&str>,
) -> Server {
    serve_with_env(ws, fake, flags, token, &[])
}

/// `serve_with`, with more environment variables for the server.
pub fn serve_with_env(
    ws: &Workspace,
    fake: &FakeGitHub,
    flags: &[String],
    token: Option<&str>,
    vars: &[(&str, &str)],
) -> Server {
    let stderr = std::fs::File::create(ws.path("server.stderr")).expect("stderr file");
    let mut command = Command::new(SLIPWAY);
    command.env_remove("GITHUB_TOKEN");
    if let Some(token) = token {
        command.env("GITHUB_TOKEN", token);
    }
    command.envs(vars.iter().copied());
    let mut child = command
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
            "--github-webhook-secret",
            SECRET,
            "--github-api-url",
            &fake.url,
        ])
        .arg("--github-git-url")
        .arg(format!("file://{}", ws.path("git").display()))
        .args(flags)
        .env("RUST_LOG", "info")
        .current_dir(ws.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("slipway serve starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let kept = lines.clone();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("API on") {
                let _ = tx.send(line.clone());
            }
            kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server prints its addresses");
    let (api, router) = common::parse_addresses(&line).expect("addresses");
    let mut token = String::new();
    wait_until(
        Duration::from_secs(10),
        "the admin token is written",
        || {
            token = std::fs::read_to_string(ws.data_dir().join("admin.token"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            !token.is_empty()
        },
    );
    Server {
        child,
        api,
        router,
        token,
        stdout: lines,
    }
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The JSON body of `/` of an app through the router, when it answers 200.
    pub fn app_json(&self, host: &str) -> Option<Value> {
        match common::http::get_via(self.router, host, "/") {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }
}

/// A raw HTTP/1.1 request; returns the status and body.
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Pushes the work tree's HEAD to the bare repository.
pub fn git_push(ws: &Workspace, refspec: &str) {
    let bare = ws.path(&format!("git/{REPO}.git"));
    git(
        &ws.path("work/shop"),
        &[
            "push",
            "--quiet",
            "--force",
            bare.to_str().expect("utf-8 path"),
            refspec,
        ],
    );
}

/// Posts a delivery signed as GitHub signs it.
pub fn deliver(
    server: &Server,
    event: &str,
    delivery: &str,
    body: &[u8],
    content_type: &str,
) -> (u16, String) {
    let signature = slipway::github::signature::sign(SECRET.as_bytes(), body);
    deliver_signed(server, event, delivery, body, content_type, &signature)
}

pub fn deliver_signed(
    server: &Server,
    event: &str,
    delivery: &str,
    body: &[u8],
    content_type: &str,
    signature: &str,
) -> (u16, String) {
    let headers = [
        ("X-GitHub-Event", event.to_owned()),
        ("X-GitHub-Delivery", delivery.to_owned()),
        ("X-Hub-Signature-256", signature.to_owned()),
        ("Content-Type", content_type.to_owned()),
        ("User-Agent", "GitHub-Hookshot/test".to_owned()),
    ];
    request(&server.api, "POST", "/webhooks/github", &headers, body)
}

/// GitHub's example push payload, made a push of `sha` to `main` of the test repository.
pub fn push_payload(sha: &str) -> Vec<u8> {
    let file = format!(
        "{}/../shared/fixtures/github-webhooks/push/octokit-webhooks.js/push-payload.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut payload: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("fixture")).expect("json");
    payload["ref"] = json!("refs/heads/main");
    payload["after"] = json!(sha);
    payload["head_commit"]["id"] = json!(sha);
    payload["repository"]["full_name"] = json!(REPO);
    payload["repository"]["name"] = json!("shop");
    payload.to_string().into_bytes()
}

pub fn operations(server: &Server) -> Vec<Value> {
    let (status, body) = request(
        &server.api,
        "GET",
        "/api/v1/operations",
        &[("Authorization", format!("Bearer {}", server.token))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .expect("json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn of(requests: &[Recorded], operation: &str) -> Vec<Recorded> {
    requests
        .iter()
        .filter(|r| r.operation().as_deref() == Some(operation))
        .cloned()
        .collect()
}

pub const STATUS: &str = "POST /repos/{owner}/{repo}/statuses/{sha}";
pub const CREATE_CHECK: &str = "POST /repos/{owner}/{repo}/check-runs";
pub const UPDATE_CHECK: &str = "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}";
pub const CREATE_DEPLOYMENT: &str = "POST /repos/{owner}/{repo}/deployments";
pub const DEPLOYMENT_STATUS: &str =
    "POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses";

pub fn states(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.body["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Waits until GitHub has the final deployment status of the operation.
pub fn wait_for_report(fake: &FakeGitHub, final_state: &str) -> Vec<Recorded> {
    wait_until(
        Duration::from_secs(120),
        &format!("GitHub gets the `{final_state}` deployment status"),
        || {
            states(&of(&fake.accepted(), DEPLOYMENT_STATUS))
                .iter()
                .any(|s| s == final_state)
        },
    );
    fake.accepted()
}

pub fn position(requests: &[Recorded], what: impl Fn(&Recorded) -> bool) -> usize {
    requests
        .iter()
        .position(what)
        .unwrap_or_else(|| panic!("missing request among {requests:#?}"))
}

pub fn assert_no_secret(ws: &Workspace, server: &Server, fake: &FakeGitHub) {
    let stderr = std::fs::read_to_string(ws.path("server.stderr")).unwrap_or_default();
    let stdout = server
        .stdout
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .join("\n");
    let posted = serde_json::to_string(
        &fake
            .requests()
            .iter()
            .map(|r| r.body.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    for secret in [SECRET, TOKEN] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret) && !posted.contains(secret),
            "a secret leaked"
        );
    }
}

/// What the server's log says it did with a delivery, once it worked on it.
pub fn delivery_outcome(ws: &Workspace, delivery: &str) -> Option<String> {
    let stderr =
        without_colours(&std::fs::read_to_string(ws.path("server.stderr")).unwrap_or_default());
    stderr
        .lines()
        .find(|l| l.contains(&format!("delivery={delivery} ")) && l.contains("GitHub delivery:"))
        .map(str::to_owned)
}

/// The text of a log without its ANSI colour sequences (`ESC [ ... m`).
pub fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until the server worked on a delivery; returns its log line.
pub fn wait_for_outcome(ws: &Workspace, delivery: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = delivery_outcome(ws, delivery) {
            return line;
        }
        if std::time::Instant::now() > deadline {
            let stderr = std::fs::read_to_string(ws.path("server.stderr")).unwrap_or_default();
            panic!("delivery {delivery} was not worked on within 60s; the server said:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
