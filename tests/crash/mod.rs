//! The crash harness: a deploy driven as users drive it — a signed push to
//! `/webhooks/github`, a real git repository as its source, the fake GitHub as API —
//! is SIGKILLed at one chosen step, a new `slipway serve` starts on the same data
//! directory, and the test checks what a user would: no operation left running, the
//! interrupted one ended as its recorded step allows, one release answering, only its
//! processes alive, the log and the deliveries intact, GitHub told the end.
//!
//! Three servers per case: A deploys v1 (so that v2 replaces something), B gets the
//! push of v2 and is killed at the case's step (B is A itself unless the case arms a
//! test-only pause point, which must not catch v1's deploy), and C recovers.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::app::yaml_str;
use crate::common::{self, procs, started_pids, wait_until, App, Workspace};
use crate::fake_github::harness::{self, Server, CREATE_DEPLOYMENT, DEPLOYMENT_STATUS, STATUS};
use crate::fake_github::FakeGitHub;

/// The environment the test repository's `main` deploys to.
const HOST: &str = "shop-staging.localhost";
const ARM_LIMIT: Duration = Duration::from_secs(60);
const END_LIMIT: Duration = Duration::from_secs(60);

/// How a case brings server B to the instant it is killed.
#[derive(Clone, Copy, Debug)]
pub enum Arm {
    /// This hook of v2 (`build` for the build hook) appends `<hook> started` to the
    /// trace, creates the mark and sleeps: B is killed once the mark exists.
    Hook(&'static str),
    /// B is killed once the operation's recorded step is this one, and its log has
    /// this line (a started instance, say).
    Step(&'static str, &'static str),
    /// B runs with `SLIPWAY_TEST_PAUSE_AT=<point>` and is killed once it paused there
    /// (and, with a hook, once that hook also runs).
    Pause(&'static str, Option<&'static str>),
}

/// What v2 does besides its arm.
#[derive(Clone, Copy, Debug, Default)]
pub struct Twist {
    /// Its health check fails (and its instances' deadline, when set).
    pub unhealthy: Option<&'static str>,
    /// `http.watch` of its web service.
    pub watch: Option<&'static str>,
    /// A request to v1 stays in flight through the switch, so the drain waits for it.
    pub slow_request_to_v1: bool,
}

/// One crash.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub arm: Arm,
    pub twist: Twist,
    /// Where the recovery line says the deploy stood ("while step `build` was
    /// running"); `None`: no operation existed yet when the server was killed.
    pub stopped: Option<&'static str>,
    /// The release the killed server's router answered from just before the kill, when
    /// the case says (a held `deploy` hook answers nothing).
    pub at_kill: Option<&'static str>,
    /// `succeeded` (v2 serves) or `rolled_back` (v1 serves).
    pub ends: &'static str,
    /// The hooks that ran, in order, across both servers: one that was interrupted
    /// reads `<hook> started` and appears once (it is not run again).
    pub trace: &'static [&'static str],
}

/// Everything a case needs to check after the restart.
struct Before {
    v1_pid: i32,
    v2_pids: Vec<i32>,
    /// The interrupted operation and its log when the server was killed.
    op: Option<(i64, Vec<(i64, String)>)>,
    sha2: String,
}

pub fn run(case: Case) {
    let ws = Workspace::new();
    let fake = FakeGitHub::start();
    let (server, before) = crash(&ws, &fake, &case);
    check(&ws, &fake, &server, &case, &before);
}

/// Deploys v1, pushes v2, kills its server at the case's step, and starts server C.
fn crash(ws: &Workspace, fake: &FakeGitHub, case: &Case) -> (Server, Before) {
    let sha1 = harness::repository(ws, &App::new("shop", "one"));
    let a = harness::serve(ws, fake);
    push(&a, &sha1, "push-one");
    let v1 = wait_for_op(&a, "push-one", |op| op["state"] == "succeeded");
    let v1_pid = answering(&a).1;
    assert_eq!(v1["release_after"], 1);

    let b = match case.arm {
        Arm::Pause(point, _) => {
            drop(a);
            harness::serve_with_env(
                ws,
                fake,
                &[],
                Some(harness::TOKEN),
                &[("SLIPWAY_TEST_PAUSE_AT", point)],
            )
        }
        Arm::Hook(_) | Arm::Step(..) => a,
    };
    let sha2 = commit(ws, &v2(ws, case));
    if case.twist.slow_request_to_v1 {
        hold_a_request_to_v1(ws, &b);
    }
    push(&b, &sha2, "push-two");
    arm(ws, &b, case);

    let op = find_op(&b, "push-two").map(|op| {
        let id = op["id"].as_i64().expect("an id");
        (id, log_lines(&b, id))
    });
    let v2_pids = op
        .as_ref()
        .map(|(_, log)| started_pids(&text(log)))
        .unwrap_or_default();
    if case.stopped.is_none() {
        assert!(
            op.is_none(),
            "no operation before the delivery is worked on"
        );
    }
    if let Some(release) = case.at_kill {
        assert_eq!(answering(&b).0, release, "the router before the kill");
    }
    drop(b); // SIGKILL: no chance to clean anything up.
    let c = harness::serve(ws, fake);
    if case.twist.slow_request_to_v1 {
        std::fs::write(ws.path("gate"), "").expect("let the request go");
    }
    let before = Before {
        v1_pid,
        v2_pids,
        op,
        sha2,
    };
    (c, before)
}

/// v2: version `two`, hooks that trace themselves, and the case's arm and twist.
fn v2(ws: &Workspace, case: &Case) -> App {
    let trace = ws.path("trace");
    let traced = |name: &str| yaml_str(&format!("echo {name} >> '{}'", trace.display()));
    let mut app = App::new("shop", "two")
        .hook("post_deploy", traced("post_deploy"))
        .hook("after_deploy_success", traced("after_deploy_success"))
        .hook("after_deploy_failure", traced("after_deploy_failure"));
    let blocking = match case.arm {
        Arm::Hook(hook) | Arm::Pause(_, Some(hook)) => Some(hook),
        Arm::Step(..) | Arm::Pause(_, None) => None,
    };
    if let Some(hook) = blocking {
        let script = yaml_str(&format!(
            "echo '{hook} started' >> '{}'; touch '{}'; sleep 600",
            trace.display(),
            ws.path("mark").display()
        ));
        if hook == "build" {
            app.build_hook = Some(script);
        } else {
            app = app.hook(hook, script);
        }
    }
    if let Some(deadline) = case.twist.unhealthy {
        app.broken = true;
        app.deadline = deadline.to_owned();
    }
    app.watch = case.twist.watch.map(str::to_owned);
    app
}

/// Commits `app` (with the repository's environments) and pushes it to `main`.
fn commit(ws: &Workspace, app: &App) -> String {
    let work = ws.path("work/shop");
    app.write(&work);
    let yml = format!(
        "{}environments:\n  staging: {{ branches: [main] }}\n",
        app.slipway_yml()
    );
    std::fs::write(work.join("slipway.yml"), yml).expect("slipway.yml");
    let sha = common::app::git_commit_all(&work, &format!("version {}", app.version));
    harness::git_push(ws, "HEAD:refs/heads/main");
    sha
}

fn push(server: &Server, sha: &str, delivery: &str) {
    let (status, body) = harness::deliver(
        server,
        "push",
        delivery,
        &harness::push_payload(sha),
        "application/json",
    );
    assert_eq!(status, 202, "{delivery}: {body}");
}

/// A GET of `/wait?<gate>` that v1 holds open until the gate file exists.
fn hold_a_request_to_v1(ws: &Workspace, server: &Server) {
    let gate = ws.path("gate");
    let path = format!("/wait?{}", gate.display());
    let router = server.router;
    std::thread::spawn(move || {
        // Its answer does not matter: the server it went through is about to be killed.
        let _ = common::http::get_via(router, HOST, &path);
    });
    let waiting = ws.path("gate.waiting");
    wait_until(ARM_LIMIT, "v1 holds a request in flight", || {
        waiting.exists()
    });
}

/// Waits until server B stands where the case kills it.
fn arm(ws: &Workspace, server: &Server, case: &Case) {
    let mark = ws.path("mark");
    match case.arm {
        Arm::Hook(hook) => wait_until(ARM_LIMIT, &format!("the {hook} hook runs"), || {
            mark.exists()
        }),
        Arm::Step(step, line) => {
            wait_until(ARM_LIMIT, &format!("the deploy reaches {step}"), || {
                find_op(server, "push-two").is_some_and(|op| {
                    let id = op["id"].as_i64().unwrap_or(0);
                    op["step"] == step && text(&log_lines(server, id)).contains(line)
                })
            })
        }
        Arm::Pause(point, hook) => {
            let marker = ws.data_dir().join(format!("paused-at-{point}"));
            wait_until(ARM_LIMIT, &format!("the server pauses at {point}"), || {
                marker.exists() && (hook.is_none() || mark.exists())
            })
        }
    }
}

/// What a user checks after the restart.
fn check(ws: &Workspace, fake: &FakeGitHub, server: &Server, case: &Case, before: &Before) {
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
fn answering(server: &Server) -> (String, i32) {
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

/// The operation a delivery started, once `done` holds for it.
fn wait_for_op(server: &Server, delivery: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut found = Value::Null;
    wait_until(
        END_LIMIT,
        &format!("the operation of {delivery} ends"),
        || {
            found = find_op(server, delivery).unwrap_or_default();
            !found.is_null() && done(&found)
        },
    );
    found
}

fn find_op(server: &Server, delivery: &str) -> Option<Value> {
    let initiator = format!("github delivery {delivery}");
    harness::operations(server)
        .into_iter()
        .find(|op| op["initiator"] == initiator.as_str())
}

/// `(seq, text)` of every line of an operation's log.
fn log_lines(server: &Server, id: i64) -> Vec<(i64, String)> {
    let mut lines = Vec::new();
    loop {
        let after = lines.last().map_or(0, |(seq, _)| *seq);
        let (status, body) = harness::request(
            &server.api,
            "GET",
            &format!("/api/v1/operations/{id}/log?after={after}"),
            &[("Authorization", format!("Bearer {}", server.token))],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).expect("a log page");
        let page_lines = page["lines"].as_array().cloned().unwrap_or_default();
        if page_lines.is_empty() {
            return lines;
        }
        lines.extend(page_lines.iter().map(|l| {
            (
                l["seq"].as_i64().unwrap_or(0),
                l["text"].as_str().unwrap_or_default().to_owned(),
            )
        }));
    }
}

fn text(lines: &[(i64, String)]) -> String {
    lines
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
