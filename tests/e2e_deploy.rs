//! End to end: deploys through the real server and router — a new version takes over, a
//! version that never becomes healthy is rolled back while the old one keeps answering,
//! an instance that ignores SIGTERM is killed after its `stop_timeout`, and
//! `zero_downtime: false` stops the old instances first.

mod common;

use std::time::Duration;

use common::{
    line_index, log_of, operations, procs, started_pids, state_of, wait_until, App, Workspace,
};

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
fn a_version_that_never_becomes_healthy_is_rolled_back_while_the_old_one_answers() {
    let ws = Workspace::new();
    let server = ws.serve();
    let failure_hook =
        common::app::yaml_list(&["echo after_deploy_failure ran, $SLIPWAY_RELEASE serves"]);
    let v1 = App::new("shop", "one").hook("after_deploy_failure", failure_hook);
    deploy(&ws, &server, &v1).ok();
    let old_pid = server.app_json(HOST).expect("v1 answers")["pid"]
        .as_i64()
        .unwrap();

    let mut broken = v1.clone().version("two");
    broken.broken = true;
    broken.deadline = "2s".to_owned();
    broken.write(&ws.path("shop"));
    let mut cli = ws.spawn_cli(
        &server,
        &["deploy", ws.path("shop").to_str().unwrap(), "--env", "live"],
    );

    // All the while the broken version tries to start, the old one answers every request.
    let mut answers = 0;
    let status = loop {
        if let Some(status) = cli.try_wait().unwrap() {
            break status;
        }
        let body = server
            .app_json(HOST)
            .expect("the old version answers during the failed deploy");
        assert_eq!(body["version"], "one");
        assert_eq!(body["pid"].as_i64(), Some(old_pid));
        answers += 1;
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        answers > 5,
        "the deploy ended too soon to show anything: {answers} answers"
    );
    let output = cli.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_ne!(
        status.code(),
        Some(0),
        "a failed deploy exits non-zero:\n{stdout}"
    );

    let ops = operations(&ws, &server, "shop", "live");
    assert_eq!(state_of(&ops[1]), "rolled_back", "{ops:?}");
    let log = log_of(&ws, &server, ops[1]["id"].as_i64().unwrap());
    assert!(
        line_index(&log, "roll back") < line_index(&log, "after_deploy_failure ran, v1 serves"),
        "{log}"
    );
    assert!(log.contains("rolled back: v1 is serving"), "{log}");
    assert_eq!(serving_version(&server).as_deref(), Some("one"));
    // The broken instance was stopped.
    for pid in started_pids(&log) {
        wait_until(
            Duration::from_secs(10),
            "the broken instance is gone",
            || !procs::alive(pid),
        );
    }
}

#[test]
fn an_instance_that_ignores_sigterm_is_killed_after_its_stop_timeout() {
    let ws = Workspace::new();
    let server = ws.serve();
    let mut stubborn = App::new("shop", "one");
    stubborn.ignore_sigterm = true;
    stubborn.stop_timeout = "1s".to_owned();
    deploy(&ws, &server, &stubborn).ok();
    let old_pid = server.app_json(HOST).expect("v1 answers")["pid"]
        .as_i64()
        .unwrap() as i32;

    let mut next = stubborn.clone().version("two");
    next.ignore_sigterm = false;
    let out = deploy(&ws, &server, &next).ok();
    assert!(
        out.stdout
            .contains("web.1 (v1) ignored SIGTERM for 1s: killed with SIGKILL"),
        "{out}"
    );
    assert!(
        !procs::alive(old_pid),
        "the stubborn v1 process {old_pid} still runs"
    );
    assert_eq!(serving_version(&server).as_deref(), Some("two"));
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
