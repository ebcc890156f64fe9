//! End to end: a server killed with SIGKILL and started again on the same data
//! directory. Running apps keep answering through the new router with the very same
//! processes (re-adopted, not restarted), and a deploy that was killed before its switch
//! ends `rolled_back` with the old release still serving.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::app::yaml_str;
use common::{
    log_of, operations, procs, started_pids, state_of, wait_for_end, wait_until, App, Server,
    Workspace,
};

const HOST: &str = "keep-prod.localhost";

/// The pids answering through the router over a number of requests.
fn answering_pids(server: &Server, requests: usize) -> BTreeSet<i64> {
    (0..requests)
        .map(|_| {
            server.app_json(HOST).expect("the app answers")["pid"]
                .as_i64()
                .expect("a pid")
        })
        .collect()
}

#[test]
fn a_restarted_server_readopts_the_running_instances() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("keep");
    let mut app = App::new("keep", "one");
    app.instances = 2;
    app.write(&dir);
    let out = ws
        .cli(&server, &["deploy", dir.to_str().unwrap(), "--env", "prod"])
        .ok();
    let pids: BTreeSet<i64> = started_pids(&out.stdout)
        .into_iter()
        .map(i64::from)
        .collect();
    assert_eq!(pids.len(), 2);

    server.kill();
    for pid in &pids {
        assert!(
            procs::alive(*pid as i32),
            "instance {pid} died with the server"
        );
    }
    let server = ws.serve();
    let seen = answering_pids(&server, 10);
    assert!(
        !seen.is_empty() && seen.is_subset(&pids),
        "answered by {seen:?}, started {pids:?}"
    );
    assert_eq!(server.app_json(HOST).unwrap()["version"], "one");
    assert_eq!(
        state_of(&operations(&ws, &server, "keep", "prod")[0]),
        "succeeded"
    );

    // The adopted instances are still managed: the next deploy replaces and stops them.
    app.clone().version("two").write(&dir);
    let out = ws
        .cli(&server, &["deploy", dir.to_str().unwrap(), "--env", "prod"])
        .ok();
    assert!(
        out.stdout.contains("web.1 (v1) stopped on SIGTERM"),
        "{out}"
    );
    assert_eq!(server.app_json(HOST).unwrap()["version"], "two");
    for pid in &pids {
        wait_until(
            Duration::from_secs(10),
            "the adopted v1 instances are gone",
            || !procs::alive(*pid as i32),
        );
    }
}

#[test]
fn a_deploy_killed_before_its_switch_is_rolled_back_after_the_restart() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("keep");
    App::new("keep", "one").write(&dir);
    ws.cli(&server, &["deploy", dir.to_str().unwrap(), "--env", "prod"])
        .ok();
    let v1_pid = server.app_json(HOST).unwrap()["pid"].as_i64().unwrap();

    // v2's deploy hook (after its instances are healthy, before the switch) waits for a
    // gate that never opens while this server lives.
    let (gate, waiting) = (ws.path("gate"), ws.path("waiting"));
    let hold = format!(
        "touch '{w}'; while [ ! -e '{g}' ]; do sleep 0.05; done",
        g = gate.display(),
        w = waiting.display()
    );
    App::new("keep", "two")
        .hook("deploy", yaml_str(&hold))
        .write(&dir);
    let op = ws
        .cli(
            &server,
            &[
                "deploy",
                dir.to_str().unwrap(),
                "--env",
                "prod",
                "--no-wait",
            ],
        )
        .ok();
    let op: i64 = op.stdout.trim().parse().unwrap();
    wait_until(
        Duration::from_secs(30),
        "the v2 deploy reaches its deploy hook",
        || waiting.exists(),
    );
    let v2_pids = started_pids(&log_of(&ws, &server, op));
    assert_eq!(v2_pids.len(), 1);

    server.kill();
    std::fs::write(&gate, "").unwrap();
    let server = ws.serve();
    let ended = wait_for_end(&ws, &server, "keep", "prod", op);
    assert_eq!(state_of(&ended), "rolled_back", "{ended:?}");
    let log = log_of(&ws, &server, op);
    assert!(
        log.contains("the server stopped while step `deploy_hook` was running; the switch had not happened: rolling back to v1"),
        "{log}"
    );
    assert!(log.contains("rolled back: v1 is serving"), "{log}");
    let served = server.app_json(HOST).expect("v1 answers after the restart");
    assert_eq!(
        (served["version"].as_str(), served["pid"].as_i64()),
        (Some("one"), Some(v1_pid))
    );
    for pid in v2_pids {
        wait_until(Duration::from_secs(10), "the v2 instance is gone", || {
            !procs::alive(pid)
        });
    }
    let releases = ws
        .cli(
            &server,
            &["releases", "--app", "keep", "--env", "prod", "--json"],
        )
        .ok()
        .json();
    let current: Vec<&str> = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["current"] == true)
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(current, ["v1"]);
}

#[test]
fn a_hook_running_when_the_server_is_killed_does_not_outlive_the_restart() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("keep");
    App::new("keep", "one").write(&dir);
    ws.cli(&server, &["deploy", dir.to_str().unwrap(), "--env", "prod"])
        .ok();

    // A before_release (a migration, say) that runs until it is killed, and writes its
    // own pid where the test can see it.
    let pid_file = ws.path("hook.pid");
    let forever = format!(
        "echo $$ > '{p}'; while true; do sleep 0.05; done",
        p = pid_file.display()
    );
    App::new("keep", "two")
        .hook("before_release", yaml_str(&forever))
        .write(&dir);
    let op = ws
        .cli(
            &server,
            &[
                "deploy",
                dir.to_str().unwrap(),
                "--env",
                "prod",
                "--no-wait",
            ],
        )
        .ok();
    let op: i64 = op.stdout.trim().parse().unwrap();
    wait_until(Duration::from_secs(30), "the hook writes its pid", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty())
    });
    let hook_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    server.kill();
    assert!(
        procs::alive(hook_pid),
        "the hook survives its server's SIGKILL"
    );
    let server = ws.serve();
    wait_until(
        Duration::from_secs(10),
        "the orphaned hook is killed",
        || !procs::alive(hook_pid),
    );
    let ended = wait_for_end(&ws, &server, "keep", "prod", op);
    assert_eq!(state_of(&ended), "rolled_back", "operation {op}: {ended:?}");
    assert_eq!(server.app_json(HOST).unwrap()["version"], "one");
}
