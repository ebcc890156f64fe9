//! What a user checks once the restarted server has finished the interrupted deploy:
//! the operation's end and log, which release answers, which processes are left, the
//! hooks that ran, the deliveries, and what GitHub was told.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{log_lines, text, wait_for_op, Before, Case, END_LIMIT, HOST};
use crate::common::{self, procs, wait_until, Workspace};
use crate::fake_github::harness::{self, Server, CREATE_DEPLOYMENT, DEPLOYMENT_STATUS, STATUS};
use crate::fake_github::FakeGitHub;

/// What a user checks after the restart.
pub(super) fn check(
    ws: &Workspace,
    fake: &FakeGitHub,
    server: &Server,
    case: &Case,
    before: &Before,
) {
    let op = wait_for_op(server, "push-two", |op| {
        !matches!(op["state"].as_str(), Some("queued" | "running") | None)
    });
    wait_until(END_LIMIT, "no operation is queued or running", || {
        harness::operations(server)
            .iter()
            .all(|op| !matches!(op["state"].as_str(), Some("queued" | "running")))
    });
    let id = op["id"].as_i64().expect("an id");
    let log = log_lines(server, id);
    assert_eq!(op["state"], case.ends, "{}", text(&log));

    // The log kept every line written before the kill, and says what recovery did.
    if let (Some(stopped), Some((old_id, old_log))) = (case.stopped, &before.op) {
        assert_eq!(
            *old_id, id,
            "the interrupted operation is the one that ended"
        );
        assert!(
            log.starts_with(old_log),
            "the log before the kill is intact:\n--- before\n{}\n--- after\n{}",
            text(old_log),
            text(&log)
        );
        let recovering =
            format!("==> recovering after a server restart: the server stopped {stopped}");
        assert!(text(&log).contains(&recovering), "{}", text(&log));
    }

    // One release answers, and only its process runs.
    let (release, pid) = answering(server);
    let (expected_release, expected_pid) = match case.ends {
        "succeeded" => ("v2", *before.v2_pids.first().unwrap_or(&0)),
        _ => ("v1", before.v1_pid),
    };
    assert_eq!(release, expected_release, "{}", text(&log));
    if case.stopped.is_some() {
        assert_eq!(
            pid, expected_pid,
            "the instance that answers is the one started before the kill"
        );
    }
    let instances: BTreeSet<i32> = before
        .v2_pids
        .iter()
        .copied()
        .chain([before.v1_pid, pid])
        .collect();
    wait_until(
        Duration::from_secs(10),
        "only the serving instance's processes are left",
        || strays(&ws.data_dir(), &instances, pid).is_empty(),
    );

    // The hooks ran once each: an interrupted one was not run again.
    assert_eq!(ws.lines("trace"), case.trace, "{}", text(&log));

    deliveries_intact(ws, server);
    github_heard_the_end(fake, &before.sha2, case.ends);
}

/// The pid and release answering through the router, the same for 20 requests.
pub(super) fn answering(server: &Server) -> (String, i32) {
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let (status, release, body) = common::http::get_release_via(server.router, HOST, "/")
            .unwrap_or_else(|e| panic!("the app does not answer: {e}"));
        assert_eq!(status, 200, "{body}");
        let json: Value = serde_json::from_str(&body).expect("the app's JSON");
        let version = json["version"].as_str().unwrap_or_default().to_owned();
        let release = release.unwrap_or_default();
        // v1 is version `one`, v2 version `two`: release and code agree.
        assert_eq!(
            (release.as_str(), version.as_str()),
            if release == "v1" {
                ("v1", "one")
            } else {
                ("v2", "two")
            }
        );
        seen.insert((release, json["pid"].as_i64().unwrap_or(0) as i32));
    }
    assert_eq!(seen.len(), 1, "one release, one instance answers: {seen:?}");
    seen.pop_first().expect("an answer")
}

/// Processes that must not be there: anything working in the data directory (a hook, a
/// build, an instance) or in the group of an instance, except the serving one's group.
fn strays(data_dir: &Path, instances: &BTreeSet<i32>, serving: i32) -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| procs::alive(*pid))
        .filter_map(|pid| {
            let group = process_group(pid)?;
            let in_data = std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(data_dir));
            ((in_data || instances.contains(&group)) && group != serving).then_some((pid, group))
        })
        .collect()
}

/// Field 5 of `/proc/<pid>/stat`, after the command name (which may hold spaces).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Both deliveries are recorded and were worked on, once: the push of v2 started one
/// operation, and GitHub redelivering it changes nothing.
fn deliveries_intact(ws: &Workspace, server: &Server) {
    let ops_before = harness::operations(server).len();
    let rows = deliveries(&ws.data_dir());
    assert_eq!(
        rows,
        [("push-one".to_owned(), true), ("push-two".to_owned(), true)],
        "the deliveries as recorded"
    );
    let of_delivery: Vec<Value> = harness::operations(server)
        .into_iter()
        .filter(|op| op["initiator"] == "github delivery push-two")
        .collect();
    assert_eq!(
        of_delivery.len(),
        1,
        "one operation for one delivery: {of_delivery:#?}"
    );
    let sha = of_delivery[0]["commit"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _) = harness::deliver(
        server,
        "push",
        "push-two",
        &harness::push_payload(&sha),
        "application/json",
    );
    assert_eq!(status, 200, "a redelivery is answered 200 and not acted on");
    assert_eq!(harness::operations(server).len(), ops_before);
}

/// `(id, worked on)` of every recorded delivery, oldest first, read from the database
/// file the way an operator's `sqlite3` would.
fn deliveries(data_dir: &Path) -> Vec<(String, bool)> {
    let path = data_dir.join("slipway.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
        let pool = sqlx::SqlitePool::connect_with(options)
            .await
            .expect("the database opens");
        let rows: Vec<(String, bool)> = sqlx::query_as(
            "SELECT id, processed_at IS NOT NULL FROM github_deliveries ORDER BY received_at, rowid",
        )
        .fetch_all(&pool)
        .await
        .expect("the deliveries");
        pool.close().await;
        rows
    })
}

/// The fake GitHub got the final commit status, check run and deployment status of v2.
fn github_heard_the_end(fake: &FakeGitHub, sha: &str, ends: &str) {
    let (state, conclusion) = match ends {
        "succeeded" => ("success", "success"),
        _ => ("failure", "failure"),
    };
    wait_until(END_LIMIT, "GitHub gets v2's final commit status", || {
        final_status(fake, sha).as_deref() == Some(state)
    });
    wait_until(END_LIMIT, "GitHub gets v2's completed check run", || {
        fake.check_run_id("slipway/staging", sha).is_some_and(|id| {
            fake.check_run_updates(id)
                .iter()
                .any(|u| u.body["status"] == "completed" && u.body["conclusion"] == conclusion)
        })
    });
    wait_until(
        END_LIMIT,
        "GitHub gets v2's final deployment status",
        || deployment_states(fake, sha).last().map(String::as_str) == Some(state),
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

fn final_status(fake: &FakeGitHub, sha: &str) -> Option<String> {
    harness::of(&fake.accepted(), STATUS)
        .iter()
        .rev()
        .find(|r| r.path.ends_with(sha))
        .and_then(|r| r.body["state"].as_str().map(str::to_owned))
}

/// The states posted for the deployment of `sha`, in order.
fn deployment_states(fake: &FakeGitHub, sha: &str) -> Vec<String> {
    let accepted = fake.accepted();
    let ids: Vec<i64> = harness::of(&accepted, CREATE_DEPLOYMENT)
        .iter()
        .filter(|r| r.body["ref"] == sha)
        .filter_map(|r| r.answer["id"].as_i64())
        .collect();
    harness::of(&accepted, DEPLOYMENT_STATUS)
        .iter()
        .filter(|r| {
            ids.iter()
                .any(|id| r.path.contains(&format!("/deployments/{id}/")))
        })
        .filter_map(|r| r.body["state"].as_str().map(str::to_owned))
        .collect()
}
