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

use std::time::Duration;

mod checks;

use serde_json::Value;

use crate::common::app::yaml_str;
use crate::common::{self, started_pids, wait_until, App, Workspace};
use crate::fake_github::harness::{self, Server};
use crate::fake_github::FakeGitHub;
use checks::{answering, check};

/// The environment the test repository's `main` deploys to.
pub(crate) const HOST: &str = "shop-staging.localhost";
pub(crate) const ARM_LIMIT: Duration = Duration::from_secs(60);
pub(crate) const END_LIMIT: Duration = Duration::from_secs(60);

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
pub(crate) struct Before {
    pub v1_pid: i32,
    pub v2_pids: Vec<i32>,
    /// The interrupted operation and its log when the server was killed.
    pub op: Option<(i64, Vec<(i64, String)>)>,
    pub sha2: String,
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

/// The operation a delivery started, once `done` holds for it.
pub(crate) fn wait_for_op(server: &Server, delivery: &str, done: impl Fn(&Value) -> bool) -> Value {
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

pub(crate) fn find_op(server: &Server, delivery: &str) -> Option<Value> {
    let initiator = format!("github delivery {delivery}");
    harness::operations(server)
        .into_iter()
        .find(|op| op["initiator"] == initiator.as_str())
}

/// `(seq, text)` of every line of an operation's log.
pub(crate) fn log_lines(server: &Server, id: i64) -> Vec<(i64, String)> {
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

pub(crate) fn text(lines: &[(i64, String)]) -> String {
    lines
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
