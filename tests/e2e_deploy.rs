//! End to end: deploys through the real server and router — a new version takes over,
//! `zero_downtime: false` stops the old instances first, and requests during the
//! `deploy` hook are held. Faulty apps (never healthy, ignoring SIGTERM, crashing after
//! the switch, ...) have their own suite: `faulty_apps.rs`.

mod common;

use std::time::Duration;

use common::{line_index, operations, procs, state_of, wait_until, App, Workspace};

const HOST: &str = "shop-live.localhost";

fn deploy(ws: &Workspace, server: &common::Server, app: &App) -> common::CliOutput {
    let dir = ws.path("shop");
    app.write(&dir);
    ws.cli(server, &["deploy", dir.to_str().unwrap(), "--env", "live"])
}

fn serving_version(server: &common::Server) -> Option<String> {
    server
        .app_json(HOST)
        .and_then(|v| v["version"].as_str().map(str::to_owned))
}

#[test]
fn a_second_deploy_switches_the_router_to_the_new_version() {
    let ws = Workspace::new();
    let server = ws.serve();
    let first = deploy(&ws, &server, &App::new("shop", "one")).ok();
    assert!(first.stdout.contains("succeeded"), "{first}");
    let v1 = server
        .app_json(HOST)
        .expect("v1 answers through the router");
    assert_eq!(v1["version"], "one");
    assert_eq!(v1["env"]["SLIPWAY_RELEASE"], "v1");
    let old_pid = v1["pid"].as_i64().unwrap() as i32;

    deploy(&ws, &server, &App::new("shop", "two")).ok();
    let v2 = server
        .app_json(HOST)
        .expect("v2 answers through the router");
    assert_eq!(v2["version"], "two");
    assert_eq!(v2["env"]["SLIPWAY_RELEASE"], "v2");
    wait_until(Duration::from_secs(15), "the v1 instance is gone", || {
        !procs::alive(old_pid)
    });

    let ops = operations(&ws, &server, "shop", "live");
    let states: Vec<&str> = ops.iter().map(state_of).collect();
    assert_eq!(states, ["succeeded", "succeeded"]);
}

#[test]
fn without_zero_downtime_old_instances_stop_before_new_ones_start() {
    let ws = Workspace::new();
    let server = ws.serve();
    let mut app = App::new("shop", "one");
    app.zero_downtime = Some(false);
    app.instances = 2;
    deploy(&ws, &server, &app).ok();
    let out = deploy(&ws, &server, &app.clone().version("two")).ok();
    let log = out.stdout;
    let stopped = line_index(&log, "web.2 (v1) stopped on SIGTERM");
    let started = line_index(&log, "started web.1");
    assert!(
        line_index(&log, "==> stop the old instances")
            < line_index(&log, "==> start the new instances"),
        "{log}"
    );
    assert!(
        stopped < started,
        "an old instance stopped after a new one started:\n{log}"
    );
    assert_eq!(serving_version(&server).as_deref(), Some("two"));
}

#[test]
fn requests_during_the_deploy_hook_are_held_and_answered_by_the_new_version() {
    let ws = Workspace::new();
    let server = ws.serve();
    deploy(&ws, &server, &App::new("shop", "one")).ok();

    let (gate, waiting) = (ws.path("gate"), ws.path("waiting"));
    let hold = format!(
        "touch '{w}'; while [ ! -e '{g}' ]; do sleep 0.05; done",
        g = gate.display(),
        w = waiting.display()
    );
    let app = App::new("shop", "two").hook("deploy", common::app::yaml_str(&hold));
    app.write(&ws.path("shop"));
    let cli = ws.spawn_cli(
        &server,
        &["deploy", ws.path("shop").to_str().unwrap(), "--env", "live"],
    );
    wait_until(Duration::from_secs(30), "the deploy hook runs", || {
        waiting.exists()
    });

    let router = server.router;
    let held = std::thread::spawn(move || common::http::get_via(router, HOST, "/"));
    // The request must not be answered while the hook runs: not by v1, not by v2.
    let window = std::time::Instant::now();
    while window.elapsed() < Duration::from_millis(300) {
        assert!(
            !held.is_finished(),
            "a request was answered during the deploy hook: {:?}",
            held.join()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&gate, "").unwrap();
    let (status, body) = held.join().unwrap().expect("the held request is answered");
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        page["version"], "two",
        "the held request reached the old version"
    );
    assert!(cli.wait_with_output().unwrap().status.success());
}
