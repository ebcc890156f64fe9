//! End to end: the operations users know from Aptible, tried as a new user would with
//! the real binary: scale a web service to 3 and back, restart under load without a
//! failed request, roll back to v1 and get v1's code and configuration back, cancel a
//! deploy stuck in a slow `before_release` and find the old release untouched.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::app::yaml_str;
use common::{operations, procs, state_of, wait_until, App, Server, Workspace};

const HOST: &str = "ops-prod.localhost";

/// The distinct pids that answer over `requests` requests (the router goes round robin).
fn answering_pids(server: &Server, requests: usize) -> BTreeSet<i64> {
    (0..requests)
        .filter_map(|_| server.app_json(HOST)?["pid"].as_i64())
        .collect()
}

fn deploy(ws: &Workspace, server: &Server, dir: &std::path::Path) {
    ws.cli(server, &["deploy", dir.to_str().unwrap(), "--env", "prod"])
        .ok();
}

fn ops(ws: &Workspace, server: &Server, args: &[&str]) -> common::CliOutput {
    let mut all = args.to_vec();
    all.extend(["--app", "ops", "--env", "prod"]);
    ws.cli(server, &all)
}

#[test]
fn scaling_to_three_and_back_changes_what_answers() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("ops");
    App::new("ops", "one").write(&dir);
    deploy(&ws, &server, &dir);
    assert_eq!(answering_pids(&server, 6).len(), 1);

    ops(&ws, &server, &["scale", "web=3"]).ok();
    let three = answering_pids(&server, 12);
    assert_eq!(three.len(), 3, "three instances answer: {three:?}");

    ops(&ws, &server, &["scale", "web=1"]).ok();
    let one = answering_pids(&server, 6);
    assert_eq!(one.len(), 1, "{one:?}");
    for pid in three.difference(&one) {
        wait_until(
            Duration::from_secs(10),
            "a scaled-away instance stops",
            || !procs::alive(*pid as i32),
        );
    }
    // A scale is pinned: a later deploy keeps it, though slipway.yml says `instances: 1`.
    ops(&ws, &server, &["scale", "web=2"]).ok();
    App::new("ops", "two").write(&dir);
    deploy(&ws, &server, &dir);
    assert_eq!(
        answering_pids(&server, 8).len(),
        2,
        "the pinned scale survives a deploy"
    );
}

#[test]
fn a_restart_under_load_fails_no_request() {
    let ws = Workspace::new();
    let server = Arc::new(ws.serve());
    let dir = ws.path("ops");
    let mut app = App::new("ops", "one");
    app.instances = 2;
    app.write(&dir);
    deploy(&ws, &server, &dir);
    let before = answering_pids(&server, 6);

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU32::new(0));
    let load = {
        let (server, stop, served) = (server.clone(), stop.clone(), served.clone());
        std::thread::spawn(move || {
            let mut failed = Vec::new();
            // Bounded: it ends when told, or after 20,000 requests.
            while !stop.load(Ordering::Relaxed)
                && served.load(Ordering::Relaxed) + (failed.len() as u32) < 20_000
            {
                match server.get(HOST, "/") {
                    Ok((200, _)) => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failed.push(format!("{other:?}")),
                }
            }
            failed
        })
    };
    // The load flows before the restart starts and still flows after it ended, so the
    // whole restart happened under it.
    wait_until(Duration::from_secs(10), "the load is flowing", || {
        served.load(Ordering::Relaxed) >= 3
    });
    let out = ops(&ws, &server, &["restart"]);
    let at_end = served.load(Ordering::Relaxed);
    wait_until(
        Duration::from_secs(10),
        "the load flows after the restart",
        || served.load(Ordering::Relaxed) >= at_end + 3,
    );
    stop.store(true, Ordering::Relaxed);
    let failed = load.join().unwrap();
    let served = served.load(Ordering::Relaxed);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        served as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    let after = answering_pids(&server, 6);
    assert!(
        after.is_disjoint(&before),
        "new processes answer: {before:?} -> {after:?}"
    );
}

#[test]
fn rolling_back_to_v1_brings_back_its_code_and_its_configuration() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("ops");
    App::new("ops", "one").write(&dir);
    // Set before the first deploy: it waits for it.
    ops(&ws, &server, &["config", "set", "GREETING=first-greeting"]).ok();
    deploy(&ws, &server, &dir);
    ops(&ws, &server, &["config", "set", "GREETING=second-greeting"]).ok();
    App::new("ops", "two").write(&dir);
    deploy(&ws, &server, &dir);
    let now = server.app_json(HOST).unwrap();
    assert_eq!(
        (now["version"].as_str(), now["env"]["GREETING"].as_str()),
        (Some("two"), Some("second-greeting"))
    );

    let out = ops(&ws, &server, &["rollback", "--to", "v1"]).ok();
    let back = server.app_json(HOST).unwrap();
    assert_eq!(
        (back["version"].as_str(), back["env"]["GREETING"].as_str()),
        (Some("one"), Some("first-greeting")),
        "{out}"
    );
    assert_eq!(
        back["env"]["SLIPWAY_RELEASE"], "v4",
        "a rollback is a new release"
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains("first-greeting") && !text.contains("second-greeting"),
            "{out}"
        );
    }
}

#[test]
fn cancelling_a_deploy_stuck_in_before_release_leaves_the_old_release_untouched() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("ops");
    App::new("ops", "one").write(&dir);
    deploy(&ws, &server, &dir);
    let serving = server.app_json(HOST).unwrap()["pid"].as_i64().unwrap();

    let pid_file = ws.path("hook.pid");
    let stuck = format!(
        "echo $$ > '{}'; while true; do sleep 0.05; done",
        pid_file.display()
    );
    App::new("ops", "two")
        .hook("before_release", yaml_str(&stuck))
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
    let op: i64 = op.stdout.trim().parse().expect("an operation id");
    wait_until(
        Duration::from_secs(30),
        "the before_release hook runs",
        || std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()),
    );
    let hook: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    ws.cli(&server, &["cancel", &op.to_string()]).ok();
    wait_until(Duration::from_secs(30), "the deploy ends cancelled", || {
        operations(&ws, &server, "ops", "prod")
            .iter()
            .any(|o| o["id"] == op && state_of(o) == "cancelled")
    });
    wait_until(Duration::from_secs(10), "the hook is killed", || {
        !procs::alive(hook)
    });
    let still = server.app_json(HOST).unwrap();
    assert_eq!(
        (still["version"].as_str(), still["pid"].as_i64()),
        (Some("one"), Some(serving))
    );
}
