//! End to end: the example apps as a new user would try them — `slipway up
//! examples/hello` and Ctrl-C, the web + worker example, and the Procfile-only example.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{line_index, procs, started_pids, wait_until, Workspace, SLIPWAY};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn up_serves_the_hello_example_and_ctrl_c_stops_the_app_and_the_server() {
    let ws = Workspace::new();
    let mut up = Command::new(SLIPWAY)
        .args([
            "up",
            example("hello").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--router",
            "127.0.0.1:0",
        ])
        .current_dir(ws.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = BufReader::new(up.stdout.take().unwrap());
    let kept = lines.clone();
    std::thread::spawn(move || {
        reader
            .lines()
            .map_while(Result::ok)
            .for_each(|l| kept.lock().unwrap().push(l))
    });
    let printed = || lines.lock().unwrap().join("\n");
    wait_until(
        Duration::from_secs(60),
        "`slipway up` prints the app's URL",
        || printed().contains("is live at"),
    );

    let out = printed();
    let first = out
        .lines()
        .find(|l| l.contains("API on"))
        .expect("the addresses");
    let (api, router) = common::parse_addresses(first).expect("two addresses");
    let url = out
        .lines()
        .find_map(|l| l.split("is live at ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        url,
        format!("http://hello-local.localhost:{}", router.port())
    );
    assert!(
        out.contains(&format!(
            "admin token in {}",
            ws.path(".slipway/admin.token").display()
        )),
        "{out}"
    );
    let (status, body) =
        common::http::get_via(router, "hello-local.localhost", "/").expect("the URL answers");
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["version"], "1");
    assert_eq!(page["release"], "v1");
    let pids = started_pids(&out);
    assert_eq!(pids.len(), 2, "{out}");

    kill(Pid::from_raw(up.id() as i32), Signal::SIGINT).unwrap();
    let mut code = None;
    wait_until(
        Duration::from_secs(30),
        "`slipway up` exits after Ctrl-C",
        || {
            code = up.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        },
    );
    assert_eq!(code, Some(Some(0)), "{}", printed());
    for pid in pids {
        assert!(!procs::alive(pid), "instance {pid} still runs after Ctrl-C");
    }
    assert!(
        common::http::get_url(&format!("{api}/healthz")).is_err(),
        "the API still answers after Ctrl-C"
    );
}

#[test]
fn the_worker_example_runs_a_web_and_a_worker_service_and_replaces_both() {
    let ws = Workspace::new();
    let server = ws.serve();
    // The example keeps its heartbeat in /tmp under the app and environment's names.
    let env = format!("w{:08x}", rand::random::<u32>());
    let host = format!("jobs-{env}.localhost");
    let state = std::env::temp_dir().join(format!("slipway-jobs-{env}-worker.json"));
    let dir = ws.path("worker");
    copy_dir(&example("worker"), &dir);
    let first = ws
        .cli(&server, &["deploy", dir.to_str().unwrap(), "--env", &env])
        .ok();
    assert!(first.stdout.contains("worker.1 healthy"), "{first}");

    let jobs = || -> (i64, String) {
        let page = server.app_json(&host).unwrap_or_default();
        (
            page["worker"]["jobs"].as_i64().unwrap_or(0),
            page["worker"]["release"].as_str().unwrap_or("").to_owned(),
        )
    };
    let seen = jobs().0;
    wait_until(
        Duration::from_secs(10),
        "the worker keeps doing jobs",
        || jobs().0 > seen,
    );
    assert_eq!(jobs().1, "v1");
    let v1_pids = started_pids(&first.stdout);

    std::fs::write(dir.join("VERSION"), "2\n").unwrap();
    let second = ws
        .cli(&server, &["deploy", dir.to_str().unwrap(), "--env", &env])
        .ok();
    let log = &second.stdout;
    // The worker has no zero-downtime switch: the old one stops before the new one starts.
    assert!(
        line_index(log, "worker.1 (v1) stopped on SIGTERM") < line_index(log, "started worker.1"),
        "{log}"
    );
    wait_until(Duration::from_secs(10), "the v2 worker does jobs", || {
        jobs().1 == "v2"
    });
    let page = server.app_json(&host).unwrap();
    assert_eq!(page["version"], "2");
    for pid in v1_pids {
        wait_until(Duration::from_secs(10), "the v1 processes are gone", || {
            !procs::alive(pid)
        });
    }
    let _ = std::fs::remove_file(state);
}

#[test]
fn the_procfile_example_deploys_without_a_slipway_yml() {
    let ws = Workspace::new();
    let server = ws.serve();
    let out = ws
        .cli(
            &server,
            &[
                "deploy",
                example("procfile").to_str().unwrap(),
                "--env",
                "demo",
            ],
        )
        .ok();
    assert!(
        out.stdout.contains("release phase of v1"),
        "the Procfile's release line runs as before_release:\n{out}"
    );
    let (status, body) = server
        .get("procfile-demo.localhost", "/")
        .expect("the app answers");
    assert_eq!(status, 200);
    assert!(
        body.contains("hello from a Procfile app, version 1 (v1)"),
        "{body}"
    );
}
