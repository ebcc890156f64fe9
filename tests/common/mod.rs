//! The end-to-end harness: a workspace (a temporary folder holding a server's data
//! directory, app folders and hook traces), the real `slipway` binary started as a
//! server or run as a CLI command, and polling with deadlines instead of sleeps.
//!
//! Nothing is shared between tests: each one makes its own workspace and server. When a
//! workspace is dropped, every process still running inside it (servers, app instances,
//! hooks, all of which run with their working directory under it) is killed, so a
//! failing test leaks nothing into the next.

#![allow(dead_code)]

pub mod app;
pub mod http;
pub mod procs;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[allow(unused_imports)]
pub use app::App;

/// The binary under test.
pub const SLIPWAY: &str = env!("CARGO_BIN_EXE_slipway");

/// How long any CLI command may take before the test gives up on it.
const CLI_LIMIT: Duration = Duration::from_secs(90);

/// A temporary folder for one test: `data/` is the server's data directory.
pub struct Workspace {
    dir: tempfile::TempDir,
    /// The canonical path, as the processes inside see their working directory.
    root: PathBuf,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("slipway-e2e-")
            .tempdir()
            .expect("a temporary directory");
        let root = dir
            .path()
            .canonicalize()
            .expect("the temporary directory's real path");
        Workspace { dir, root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Starts `slipway serve` on this workspace's data directory, on free ports.
    pub fn serve(&self) -> Server {
        Server::start(&self.root, &self.data_dir())
    }

    /// Runs a CLI command against `server` from the workspace's root.
    pub fn cli(&self, server: &Server, args: &[&str]) -> CliOutput {
        self.cli_in(&self.root, server, args)
    }

    /// Runs a CLI command against `server` from `cwd`.
    pub fn cli_in(&self, cwd: &Path, server: &Server, args: &[&str]) -> CliOutput {
        let mut command = Command::new(SLIPWAY);
        command
            .args(args)
            .current_dir(cwd)
            .env("SLIPWAY_SERVER", &server.api)
            .env("SLIPWAY_TOKEN", &server.token);
        run_bounded(command, &self.root, CLI_LIMIT)
    }

    /// Runs a CLI command that needs no server (`validate`).
    pub fn cli_offline(&self, args: &[&str]) -> CliOutput {
        let mut command = Command::new(SLIPWAY);
        command.args(args).current_dir(&self.root);
        run_bounded(command, &self.root, CLI_LIMIT)
    }

    /// Starts a CLI command against `server` without waiting for it.
    pub fn spawn_cli(&self, server: &Server, args: &[&str]) -> Child {
        Command::new(SLIPWAY)
            .args(args)
            .current_dir(&self.root)
            .env("SLIPWAY_SERVER", &server.api)
            .env("SLIPWAY_TOKEN", &server.token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the slipway binary starts")
    }

    /// The lines of a file the test's hooks append to (empty when it does not exist yet).
    pub fn lines(&self, relative: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(relative))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        procs::kill_everything_under(&self.root);
    }
}

/// What a finished CLI command left.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Panics, showing the output, unless the command exited 0.
    pub fn ok(self) -> CliOutput {
        assert_eq!(self.code, 0, "the command failed:\n{self}");
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to its end, or kills it after `limit`. Output goes through files in
/// `scratch` so a chatty command can never block on a full pipe.
fn run_bounded(mut command: Command, scratch: &Path, limit: Duration) -> CliOutput {
    let name: u64 = rand::random();
    let (out_path, err_path) = (
        scratch.join(format!(".cli-{name:x}.out")),
        scratch.join(format!(".cli-{name:x}.err")),
    );
    let stdout = std::fs::File::create(&out_path).expect("a file for stdout");
    let stderr = std::fs::File::create(&err_path).expect("a file for stderr");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("the slipway binary starts");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the command") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`slipway {:?}` did not finish within {limit:?}",
                command.get_args().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = CliOutput {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    output
}

/// A running `slipway serve`, killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub api: String,
    pub router: SocketAddr,
    pub token: String,
    /// Everything the server printed on stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server and waits until `/healthz` answers.
    pub fn start(cwd: &Path, data_dir: &Path) -> Server {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cwd.join("server.stderr"))
            .expect("a file for the server's stderr");
        let mut child = Command::new(SLIPWAY)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--router",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data_dir)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("slipway serve starts");
        let (api, router, stdout) = read_addresses(&mut child);
        let token = wait_for_token(&data_dir.join("admin.token"));
        let server = Server {
            child: Some(child),
            api,
            router,
            token,
            stdout,
        };
        wait_until(
            Duration::from_secs(20),
            "the server's /healthz answers",
            || {
                http::get_url(&format!("{}/healthz", server.api))
                    .is_ok_and(|(status, _)| status == 200)
            },
        );
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL: the server gets no chance to clean up (a crash, an OOM kill).
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// GET through this server's router with `Host: host`.
    pub fn get(&self, host: &str, path: &str) -> Result<(u16, String), String> {
        http::get_via(self.router, host, path)
    }

    /// The JSON body of `/` of an app through the router, when it answers 200.
    pub fn app_json(&self, host: &str) -> Option<Value> {
        match self.get(host, "/") {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Reads the server's first stdout line (`API on http://A, router on http://B`) and keeps
/// draining the rest in a thread, so the server never blocks writing.
fn read_addresses(child: &mut Child) -> (String, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let stdout = child.stdout.take().expect("the server's stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let kept = lines.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && line.contains("API on") {
                let _ = first_tx.send(line.clone());
                sent = true;
            }
            kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let line = first_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("slipway serve prints its addresses");
    let (api, router) =
        parse_addresses(&line).unwrap_or_else(|| panic!("cannot read the addresses in `{line}`"));
    (api, router, lines)
}

/// `slipway: API on http://127.0.0.1:1, router on http://127.0.0.1:2` → the API's base
/// URL and the router's address.
pub fn parse_addresses(line: &str) -> Option<(String, SocketAddr)> {
    let api = line
        .split("API on ")
        .nth(1)?
        .split(',')
        .next()?
        .trim()
        .to_owned();
    let router = line
        .split("router on http://")
        .nth(1)?
        .split_whitespace()
        .next()?
        .trim_end_matches(',');
    Some((api, router.parse().ok()?))
}

fn wait_for_token(path: &Path) -> String {
    let mut token = String::new();
    wait_until(
        Duration::from_secs(10),
        "the admin token is written",
        || {
            token = std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .to_owned();
            !token.is_empty()
        },
    );
    token
}

/// Polls `condition` every 25 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The operations of an environment, oldest first, from `slipway ops --json`.
pub fn operations(ws: &Workspace, server: &Server, app: &str, env: &str) -> Vec<Value> {
    let out = ws
        .cli(server, &["ops", "--app", app, "--env", env, "--json"])
        .ok();
    let mut ops = out.json().as_array().cloned().unwrap_or_default();
    ops.sort_by_key(|op| op["id"].as_i64());
    ops
}

/// The state of one operation, e.g. `succeeded`.
pub fn state_of(op: &Value) -> &str {
    op["state"].as_str().unwrap_or("?")
}

/// Waits until operation `id` of the environment has ended, and returns it.
pub fn wait_for_end(ws: &Workspace, server: &Server, app: &str, env: &str, id: i64) -> Value {
    let mut found = Value::Null;
    wait_until(
        Duration::from_secs(60),
        &format!("operation {id} ends"),
        || {
            found = operations(ws, server, app, env)
                .into_iter()
                .find(|op| op["id"].as_i64() == Some(id))
                .unwrap_or_default();
            !matches!(state_of(&found), "queued" | "running" | "?")
        },
    );
    found
}

/// The log of an operation, as `slipway logs OP` prints it.
pub fn log_of(ws: &Workspace, server: &Server, id: i64) -> String {
    ws.cli(server, &["logs", &id.to_string()]).ok().stdout
}

/// The pids in `started web.1 (pid 123) on ...` lines of a log.
pub fn started_pids(log: &str) -> Vec<i32> {
    log.lines()
        .filter_map(|line| line.split("(pid ").nth(1)?.split(')').next()?.parse().ok())
        .collect()
}

/// The position of the first line containing `needle`; panics with the log otherwise.
pub fn line_index(log: &str, needle: &str) -> usize {
    log.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}` in the log:\n{log}"))
}
