//! End to end: operations on one environment run one at a time, in order; deploys that
//! queue up behind a running one are superseded by the newest; and `slipway ops`,
//! `releases` and `logs` show it, as text and as JSON.

mod common;

use std::time::Duration;

use common::app::yaml_str;
use common::{operations, state_of, wait_for_end, wait_until, App, Workspace};

#[test]
fn deploys_queued_behind_a_running_one_are_superseded_by_the_newest() {
    let ws = Workspace::new();
    let server = ws.serve();
    let (gate, waiting) = (ws.path("gate"), ws.path("waiting"));
    // The first deploy's before_release waits until the test opens the gate.
    let hold = format!(
        "[ -e '{g}' ] || {{ touch '{w}'; while [ ! -e '{g}' ]; do sleep 0.05; done; }}",
        g = gate.display(),
        w = waiting.display()
    );
    let app = App::new("queue", "one").hook("before_release", yaml_str(&hold));
    let dir = ws.path("queue");
    let deploy_no_wait = |version: &str| -> i64 {
        app.clone().version(version).write(&dir);
        let out = ws
            .cli(
                &server,
                &["deploy", dir.to_str().unwrap(), "--env", "q", "--no-wait"],
            )
            .ok();
        out.stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("--no-wait prints the operation id:\n{out}"))
    };

    let first = deploy_no_wait("one");
    wait_until(
        Duration::from_secs(30),
        "the first deploy waits in before_release",
        || waiting.exists(),
    );
    let queued: Vec<i64> = ["two", "three", "four"]
        .iter()
        .map(|v| deploy_no_wait(v))
        .collect();
    let states: Vec<String> = operations(&ws, &server, "queue", "q")
        .iter()
        .map(|o| state_of(o).to_owned())
        .collect();
    assert_eq!(states, ["running", "queued", "queued", "queued"]);

    let newest = queued[2];
    let follow = ws.spawn_cli(&server, &["logs", &newest.to_string(), "--follow"]);
    std::fs::write(&gate, "").unwrap();
    let last = wait_for_end(&ws, &server, "queue", "q", newest);
    assert_eq!(state_of(&last), "succeeded", "{last}");

    let ops = operations(&ws, &server, "queue", "q");
    let summary: Vec<(i64, &str)> = ops
        .iter()
        .map(|o| (o["id"].as_i64().unwrap(), state_of(o)))
        .collect();
    assert_eq!(
        summary,
        [
            (first, "succeeded"),
            (queued[0], "superseded"),
            (queued[1], "superseded"),
            (newest, "succeeded")
        ]
    );
    let served = server
        .app_json("queue-q.localhost")
        .expect("the app answers");
    assert_eq!(served["version"], "four");
    assert_eq!(
        served["env"]["SLIPWAY_RELEASE"], "v2",
        "a superseded deploy made a release"
    );

    // `logs --follow` started while the operation was queued, and printed it to the end.
    let followed = follow.wait_with_output().unwrap();
    let followed = String::from_utf8_lossy(&followed.stdout);
    assert!(
        followed.contains("==> deploy of queue/q started"),
        "{followed}"
    );
    assert!(
        followed
            .lines()
            .last()
            .is_some_and(|l| l.contains("succeeded")),
        "{followed}"
    );

    // `logs` of a superseded one says by which.
    let log = common::log_of(&ws, &server, queued[0]);
    assert!(
        log.contains(&format!("superseded by operation {newest}")),
        "{log}"
    );
    let stamped = log.lines().next().unwrap_or_default();
    assert!(
        stamped.len() > 9 && stamped.as_bytes()[2] == b':' && stamped.as_bytes()[5] == b':',
        "{log}"
    );

    // `ops` and `releases` as text.
    let text = ws.cli(&server, &["ops"]).ok().stdout;
    assert!(
        text.lines()
            .next()
            .is_some_and(|h| h.contains("ID") && h.contains("STATE")),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("queue/q") && l.contains("superseded"))
            .count(),
        2,
        "{text}"
    );
    let releases = ws
        .cli(&server, &["releases", "--app", "queue", "--env", "q"])
        .ok()
        .stdout;
    assert!(releases.contains("http://queue-q.localhost:"), "{releases}");
    assert!(
        releases.lines().any(|l| l.starts_with("* v2")),
        "{releases}"
    );
    assert!(
        releases.lines().any(|l| l.starts_with("  v1")),
        "{releases}"
    );
    let json = ws
        .cli(
            &server,
            &["releases", "--app", "queue", "--env", "q", "--json"],
        )
        .ok()
        .json();
    let current: Vec<&str> = json["releases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["current"] == true)
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(current, ["v2"]);
}
