//! Faulty apps, end to end: the real `slipway serve` with the local runtime, and what a
//! user sees when an app or a hook misbehaves. One test per fault:
//!
//! | fault | what Slipway does |
//! |---|---|
//! | never becomes healthy | rolled back at its deadline; the old release answers throughout |
//! | ignores SIGTERM | SIGKILL after `stop_timeout`, and the log says so |
//! | crashes after the switch | the watch sees the exit within ~100 ms, traffic goes back to the old release (kept running); `rolled_back` |
//! | fails its health check after the switch | the same, and no request fails |
//! | a hook that hangs (or also ignores SIGTERM) | killed at its timeout (SIGTERM, SIGKILL after 5 s); `build`/`before_release` abort with nothing changed, `deploy`/`post_deploy` are warnings |
//! | a hook that writes 100 MB | the operation log keeps 10 MiB and says so; server memory and the database stay small |
//! | an instance that writes 100 MB | its log file is rotated at 10 MiB (one older file kept); the server is not in the path |
//! | a hook that forks daemons (`&`, `nohup`, `setsid`) | all killed when the hook ends, and the log names them |
//! | a port that is taken | the deploy fails naming the port, who holds it and what to do; the old release answers |
//! | `serve`'s own ports taken | a clear error naming the flag; exit code 1 |

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::app::{yaml_str, yaml_timed};
use common::{
    line_index, log_of, operations, procs, started_pids, state_of, wait_for_end, wait_until, App,
    CliOutput, Server, Workspace,
};

const APP: &str = "faulty";
const HOST: &str = "faulty-live.localhost";

fn deploy(ws: &Workspace, server: &Server, app: &App) -> CliOutput {
    let dir = ws.path(APP);
    app.write(&dir);
    ws.cli(server, &["deploy", dir.to_str().unwrap(), "--env", "live"])
}

/// Starts a deploy and returns its operation id at once.
fn deploy_no_wait(ws: &Workspace, server: &Server, app: &App) -> i64 {
    let dir = ws.path(APP);
    app.write(&dir);
    let out = ws
        .cli(
            server,
            &[
                "deploy",
                dir.to_str().unwrap(),
                "--env",
                "live",
                "--no-wait",
            ],
        )
        .ok();
    out.stdout.trim().parse().expect("an operation id")
}

/// The version and pid that answer `/` through the router.
fn serving(server: &Server) -> Option<(String, i64)> {
    let page = server.app_json(HOST)?;
    Some((page["version"].as_str()?.to_owned(), page["pid"].as_i64()?))
}

/// The release `slipway releases` marks current, e.g. `v3`.
fn current_release(ws: &Workspace, server: &Server) -> Option<String> {
    let out = ws
        .cli(
            server,
            &["releases", "--app", APP, "--env", "live", "--json"],
        )
        .ok();
    out.json()["releases"]
        .as_array()?
        .iter()
        .find(|release| release["current"] == true)
        .and_then(|release| release["name"].as_str().map(str::to_owned))
}

/// The pid a hook wrote into `file` (relative to the workspace).
fn pid_in(ws: &Workspace, file: &str) -> i32 {
    std::fs::read_to_string(ws.path(file))
        .unwrap_or_else(|_| panic!("{file} was written"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{file} holds a pid"))
}

#[test]
fn a_release_that_never_becomes_healthy_is_rolled_back_while_the_old_one_answers() {
    let ws = Workspace::new();
    let server = ws.serve();
    let failure_hook =
        common::app::yaml_list(&["echo after_deploy_failure ran, $SLIPWAY_RELEASE serves"]);
    let v1 = App::new(APP, "one").hook("after_deploy_failure", failure_hook);
    deploy(&ws, &server, &v1).ok();
    let (_, old_pid) = serving(&server).expect("v1 answers");

    let mut broken = v1.clone().version("two");
    broken.broken = true;
    broken.deadline = "2s".to_owned();
    broken.write(&ws.path(APP));
    let mut cli = ws.spawn_cli(
        &server,
        &["deploy", ws.path(APP).to_str().unwrap(), "--env", "live"],
    );

    // All the while the broken version tries to start, the old one answers every request.
    let mut answers = 0;
    let status = loop {
        if let Some(status) = cli.try_wait().unwrap() {
            break status;
        }
        let answer = serving(&server).expect("the old version answers during the failed deploy");
        assert_eq!(answer, ("one".to_owned(), old_pid));
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

    let ops = operations(&ws, &server, APP, "live");
    assert_eq!(state_of(&ops[1]), "rolled_back", "{ops:?}");
    let log = log_of(&ws, &server, ops[1]["id"].as_i64().unwrap());
    assert!(
        log.contains(
            "web.1 did not become healthy within 2s (last check: answered 500 (strict: only 200 is healthy))"
        ),
        "{log}"
    );
    assert!(
        line_index(&log, "roll back") < line_index(&log, "after_deploy_failure ran, v1 serves"),
        "{log}"
    );
    assert!(log.contains("rolled back: v1 is serving"), "{log}");
    assert_eq!(serving(&server), Some(("one".to_owned(), old_pid)));
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
    let mut stubborn = App::new(APP, "one");
    stubborn.ignore_sigterm = true;
    stubborn.stop_timeout = "1s".to_owned();
    deploy(&ws, &server, &stubborn).ok();
    let (_, old_pid) = serving(&server).expect("v1 answers");

    let mut next = stubborn.clone().version("two");
    next.ignore_sigterm = false;
    let out = deploy(&ws, &server, &next).ok();
    assert!(
        out.stdout
            .contains("web.1 (v1) ignored SIGTERM for 1s: killed with SIGKILL"),
        "{out}"
    );
    assert!(
        !procs::alive(old_pid as i32),
        "the stubborn v1 process {old_pid} still runs"
    );
    assert_eq!(serving(&server).map(|s| s.0).as_deref(), Some("two"));
}

/// What one request through the router got, and when it was sent and answered.
struct Sample {
    sent: Instant,
    answered: Instant,
    /// The version that answered, or the router's status and body.
    answer: Result<String, String>,
}

/// Requests through the router, one after another, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(server: &Server) -> Load {
        let router = server.router;
        let (stop, samples) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let thread = {
            let (stop, samples): (Arc<AtomicBool>, Arc<Mutex<Vec<Sample>>>) =
                (stop.clone(), Arc::clone(&samples));
            std::thread::spawn(move || {
                // Bounded: it ends when told, or after 100,000 requests.
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let sent = Instant::now();
                    let answer = match common::http::get_via(router, HOST, "/") {
                        Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|page| page["version"].as_str().map(str::to_owned))
                            .ok_or(body),
                        Ok((status, body)) => Err(format!("{status} {}", body.trim())),
                        Err(error) => Err(error),
                    };
                    let answered = Instant::now();
                    samples.lock().unwrap().push(Sample {
                        sent,
                        answered,
                        answer,
                    });
                }
            })
        };
        Load {
            stop,
            samples,
            thread,
        }
    }

    fn count(&self, sent_after: Instant, version: &str) -> usize {
        let samples = self.samples.lock().unwrap();
        samples
            .iter()
            .filter(|s| s.sent >= sent_after && s.answer.as_deref() == Ok(version))
            .count()
    }

    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread");
        Arc::try_unwrap(self.samples)
            .ok()
            .expect("no other owner")
            .into_inner()
            .unwrap()
    }
}

/// How a release goes bad once it has taken the traffic.
#[derive(Clone, Copy, Debug)]
enum LateFault {
    /// The process exits.
    Crashes,
    /// The process runs on, `/` still answers, but its health check fails.
    FailsItsHealthCheck,
}

/// A release that is healthy at first, takes the traffic, then goes bad while the watch
/// runs: the watch catches it, traffic goes back to the old release at once, the deploy
/// ends `rolled_back`, and the old release answers. Requests through the router all the
/// while show what a user sees.
fn a_release_that_goes_bad_after_the_switch(fault: LateFault) {
    let ws = Workspace::new();
    let server = ws.serve();
    deploy(&ws, &server, &App::new(APP, "one")).ok();
    let (_, old_pid) = serving(&server).expect("v1 answers");

    let gate = ws.path("go-bad");
    let mut bad = App::new(APP, "two");
    bad.watch = Some("60s".to_owned());
    match fault {
        LateFault::Crashes => bad.crash_when = Some(gate.clone()),
        LateFault::FailsItsHealthCheck => bad.sick_when = Some(gate.clone()),
    }
    let load = Load::start(&server);
    let op = deploy_no_wait(&ws, &server, &bad);
    // The new release takes the traffic and the watch begins.
    let mut log = String::new();
    wait_until(Duration::from_secs(60), "the watch begins", || {
        log = log_of(&ws, &server, op);
        log.contains("==> watch the new release")
    });
    let switched = Instant::now();
    wait_until(Duration::from_secs(10), "v2 answers users", || {
        load.count(switched, "two") >= 5
    });
    let v2_pid = *started_pids(&log).last().expect("v2's pid");

    let went_bad = Instant::now();
    std::fs::write(&gate, "").unwrap();
    let ended = wait_for_end(&ws, &server, APP, "live", op);
    let seen_ended = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "users get v1 after the rollback",
        || load.count(seen_ended, "one") >= 20,
    );
    let samples = load.stop();

    assert_eq!(state_of(&ended), "rolled_back", "{ended}");
    let log = log_of(&ws, &server, op);
    let caught = match fault {
        LateFault::Crashes => "web.1 exited during the watch: exit code 3",
        LateFault::FailsItsHealthCheck => {
            "web.1 failed its health check during the watch: answered 500"
        }
    };
    assert!(log.contains(caught), "{log}");
    assert!(
        line_index(&log, caught) < line_index(&log, "rolled back: v1 is serving"),
        "{log}"
    );
    // The old release was kept running through the watch: it answers as before.
    assert_eq!(serving(&server), Some(("one".to_owned(), old_pid)));
    wait_until(Duration::from_secs(10), "v2 is stopped", || {
        !procs::alive(v2_pid)
    });

    // What users saw. Before the fault and after the rollback: every request answered.
    // In between — from a request in flight when the gate opened to the last one sent
    // before the rollback was seen — a GET that could not reach the crashed process
    // before the watch saw it exit is tried again on the old release, on standby, and
    // answered; only one that the process died while answering is cut short (or a 502
    // when it died mid-head). A release that only fails its health check still answers,
    // so nothing fails.
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.answer.is_err()).collect();
    for sample in &failed {
        assert!(
            sample.answered >= went_bad && sample.sent <= seen_ended,
            "a request failed outside the fault's window: {:?}, answered {} after the \
             fault and sent {} after the end was seen; the log:\n{log}",
            sample.answer,
            since(went_bad, sample.answered),
            since(seen_ended, sample.sent),
        );
        let error = sample.answer.as_ref().unwrap_err();
        assert!(
            matches!(fault, LateFault::Crashes)
                && (error.starts_with("502 an instance of faulty/live closed")
                    || error == "error decoding response body"),
            "{fault:?}: a request failed with {error}"
        );
    }
    let mut after_the_rollback = samples.iter().filter(|s| s.sent > seen_ended);
    assert!(after_the_rollback.all(|s| s.answer.as_deref() == Ok("one")));
    let cut = failed
        .iter()
        .filter(|s| s.answer.as_ref().is_err_and(|e| !e.starts_with("502")))
        .count();
    eprintln!(
        "{fault:?}: {} requests, {} failed between the fault and the rollback ({cut} cut short)",
        samples.len(),
        failed.len()
    );
}

/// `at - from` in milliseconds, negative when `at` comes first.
fn since(from: Instant, at: Instant) -> String {
    match at.checked_duration_since(from) {
        Some(later) => format!("{} ms", later.as_millis()),
        None => format!("-{} ms", (from - at).as_millis()),
    }
}

#[test]
fn a_release_that_crashes_after_the_switch_is_caught_by_the_watch() {
    a_release_that_goes_bad_after_the_switch(LateFault::Crashes);
}

#[test]
fn a_release_that_fails_its_health_check_after_the_switch_is_caught_by_the_watch() {
    a_release_that_goes_bad_after_the_switch(LateFault::FailsItsHealthCheck);
}

/// A hook that hangs, per kind of hook: killed at its timeout and counted as failed, with
/// the consequence of its kind. One of them ignores SIGTERM too and is killed with SIGKILL.
#[test]
fn a_hook_that_hangs_is_killed_at_its_timeout_with_the_consequence_of_its_kind() {
    struct Case {
        hook: &'static str,
        ignores_sigterm: bool,
        aborts: bool,
    }
    let cases = [
        Case {
            hook: "build",
            ignores_sigterm: false,
            aborts: true,
        },
        Case {
            hook: "before_release",
            ignores_sigterm: true,
            aborts: true,
        },
        Case {
            hook: "deploy",
            ignores_sigterm: false,
            aborts: false,
        },
        Case {
            hook: "post_deploy",
            ignores_sigterm: false,
            aborts: false,
        },
    ];
    let ws = Workspace::new();
    let server = ws.serve();
    deploy(&ws, &server, &App::new(APP, "v0")).ok();

    for (n, case) in cases.iter().enumerate() {
        let version = format!("v{}", n + 1);
        let pid_file = format!("{}.pid", case.hook);
        let trap = if case.ignores_sigterm {
            "trap '' TERM; "
        } else {
            ""
        };
        let hang = format!(
            "{trap}echo $$ > '{}'; while true; do sleep 0.05; done",
            ws.path(&pid_file).display()
        );
        let mut app = App::new(APP, &version);
        let hook = yaml_timed(&hang, "1s");
        if case.hook == "build" {
            app.build_hook = Some(hook);
        } else {
            app = app.hook(case.hook, hook);
        }
        let before = (
            serving(&server).expect("a release answers"),
            current_release(&ws, &server),
        );

        let out = deploy(&ws, &server, &app);
        let log = &out.stdout;
        let hook = case.hook;
        let stopped = if case.ignores_sigterm {
            format!("[{hook}] timed out after 1s; ignored SIGTERM for 5s: killed with SIGKILL")
        } else {
            format!("[{hook}] timed out after 1s: stopped with SIGTERM")
        };
        assert!(log.contains(&stopped), "{hook}: {out}");
        let hook_pid = pid_in(&ws, &pid_file);
        assert!(
            !procs::alive(hook_pid),
            "{hook}: the hook {hook_pid} still runs"
        );
        if case.aborts {
            assert_ne!(out.code, 0, "{hook}: {out}");
            assert!(log.contains("timed out after 1s"), "{hook}: {out}");
            assert!(log.contains("nothing changed"), "{hook}: {out}");
            assert_eq!(
                (
                    serving(&server).expect("the old release answers"),
                    current_release(&ws, &server)
                ),
                before,
                "{hook}: a failed {hook} changed what serves"
            );
        } else {
            assert_eq!(out.code, 0, "{hook}: {out}");
            assert!(
                log.contains(&format!(
                    "warning: {hook} hook failed: it timed out after 1s and was killed"
                )),
                "{hook}: {out}"
            );
            assert_eq!(
                serving(&server).map(|s| s.0),
                Some(version.clone()),
                "{hook}"
            );
        }
    }
    let states: Vec<String> = operations(&ws, &server, APP, "live")
        .iter()
        .map(|o| state_of(o).to_owned())
        .collect();
    assert_eq!(
        states,
        ["succeeded", "failed", "failed", "succeeded", "succeeded"]
    );
}

/// The database's files (with the write-ahead log), in bytes.
fn database_bytes(ws: &Workspace) -> u64 {
    std::fs::read_dir(ws.data_dir())
        .expect("the data directory")
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("slipway.db")
        })
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}

const MIB: u64 = 1024 * 1024;

#[test]
fn a_hook_that_writes_100_mb_is_capped_in_the_log_and_memory_stays_bounded() {
    let ws = Workspace::new();
    let server = ws.serve();
    let quiet = App::new(APP, "one").hook("before_release", yaml_str("yes | head -c 1000"));
    deploy(&ws, &server, &quiet).ok();
    let pid = server.pid();
    let (baseline_kib, baseline_db) = (
        procs::memory_kib(pid, "VmHWM").expect("the server's memory"),
        database_bytes(&ws),
    );

    let flood = App::new(APP, "two").hook(
        "before_release",
        yaml_str("yes | head -c 100000000; echo the flood is over"),
    );
    let started = Instant::now();
    let out = deploy(&ws, &server, &flood).ok();
    let took = started.elapsed();
    let peak_kib = procs::memory_kib(pid, "VmHWM").expect("the server's memory");
    let grown_db = database_bytes(&ws) - baseline_db;

    // The log: 10 MiB of the hook's output, a line that says the log is capped and one
    // that says how much more was not kept — then Slipway's own lines, to the end.
    let log = &out.stdout;
    let capped = line_index(
        log,
        "[log capped at 10 MiB: the rest of this operation's output is not kept]",
    );
    let dropped = line_index(
        log,
        "MiB more of output not kept: an operation's log keeps at most 10 MiB of output",
    );
    assert!(
        capped < dropped,
        "{}",
        &log[log.len().saturating_sub(2000)..]
    );
    assert!(dropped < line_index(log, "==> switch traffic"));
    assert!(!log.contains("the flood is over"));
    let ops = operations(&ws, &server, APP, "live");
    assert_eq!(state_of(&ops[1]), "succeeded");
    assert_eq!(serving(&server).map(|s| s.0).as_deref(), Some("two"));
    let stored = log_of(&ws, &server, ops[1]["id"].as_i64().unwrap());
    let kept = stored
        .lines()
        .filter(|line| line.ends_with("[before_release] y"))
        .count();
    let grown_mib = (peak_kib.saturating_sub(baseline_kib)) / 1024;
    eprintln!(
        "100 MB hook: deploy took {took:?}; server peak {} MiB (baseline {} MiB); database +{} MiB; {kept} lines kept",
        peak_kib / 1024,
        baseline_kib / 1024,
        grown_db / MIB
    );
    // `[before_release] y` and a newline: 19 bytes a line, as many as fit in 10 MiB.
    let fit = (10 * MIB / 19) as usize;
    assert!(
        (fit - 100..=fit).contains(&kept),
        "{kept} lines of output kept, not the cap's worth ({fit})"
    );

    // Memory: the server never held more than a little of the 100 MB at once.
    assert!(
        grown_mib < 40,
        "the server's peak memory grew by {grown_mib} MiB (from {} MiB)",
        baseline_kib / 1024
    );
    // The database holds the capped log (10 MiB in 550,000 short rows), not 100 MB.
    assert!(
        grown_db < 50 * MIB,
        "the database grew by {} MiB",
        grown_db / MIB
    );
}

/// The `slipway __mask-log` processes writing `file`, with their peak memory in KiB.
fn maskers_of(file: &Path) -> Vec<(i32, u64)> {
    procs::pids_under(Path::new("/"))
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
                cmdline.contains("__mask-log") && cmdline.contains(&*file.to_string_lossy())
            })
        })
        .filter_map(|pid| Some((pid, procs::memory_kib(pid as u32, "VmHWM")?)))
        .collect()
}

#[test]
fn an_instance_that_writes_100_mb_has_its_log_file_rotated_and_memory_stays_bounded() {
    let ws = Workspace::new();
    let server = ws.serve();
    deploy(&ws, &server, &App::new(APP, "one")).ok();
    let pid = server.pid();
    let baseline_kib = procs::memory_kib(pid, "VmHWM").expect("the server's memory");

    let mut flood = App::new(APP, "two");
    flood.command = Some("yes | head -c 100000000; exec python3 app.py".to_owned());
    flood.deadline = "60s".to_owned();
    let started = Instant::now();
    deploy(&ws, &server, &flood).ok();
    let took = started.elapsed();
    assert_eq!(serving(&server).map(|s| s.0).as_deref(), Some("two"));
    let peak_kib = procs::memory_kib(pid, "VmHWM").expect("the server's memory");

    let file = ws.data_dir().join("logs/faulty/live/web.1.log");
    let maskers = maskers_of(&file);
    assert!(!maskers.is_empty(), "no masker writes {}", file.display());
    for (masker, masker_kib) in &maskers {
        assert!(
            *masker_kib < 32 * 1024,
            "the masker {masker} peaked at {} MiB",
            masker_kib / 1024
        );
    }
    // One current file and one older: at most twice the limit, whatever was written.
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let older = ws.data_dir().join("logs/faulty/live/web.1.log.1");
    assert!(size(&file) <= 10 * MIB + MIB, "{} bytes", size(&file));
    assert!(size(&older) <= 10 * MIB + MIB, "{} bytes", size(&older));
    assert!(!ws.data_dir().join("logs/faulty/live/web.1.log.2").exists());
    let current = std::fs::read_to_string(&file).expect("the log file");
    assert!(
        current.starts_with("==> log rotated at 10 MiB: earlier output is in web.1.log.1\n"),
        "{}",
        &current[..current.len().min(200)]
    );
    // The newest output is kept: what the app said once the flood was over.
    wait_until(
        Duration::from_secs(10),
        "the app's own line is in its log",
        || std::fs::read_to_string(&file).is_ok_and(|text| text.contains("\nversion two on ")),
    );
    let grown_mib = peak_kib.saturating_sub(baseline_kib) / 1024;
    assert!(
        grown_mib < 20,
        "the server's peak memory grew by {grown_mib} MiB"
    );
    eprintln!(
        "100 MB instance output: deploy took {took:?}; server peak {} MiB (baseline {} MiB); masker peak {} MiB; files {} + {} MiB",
        peak_kib / 1024,
        baseline_kib / 1024,
        maskers.iter().map(|m| m.1).max().unwrap_or(0) / 1024,
        size(&file) / MIB,
        size(&older) / MIB
    );
}

#[test]
fn a_hook_that_forks_daemons_leaves_none_running() {
    let ws = Workspace::new();
    let server = ws.serve();
    let pid_file = |name: &str| ws.path(name).display().to_string();
    let daemons = format!(
        "sleep 1000 & echo $! > '{}'\n\
         nohup sleep 1000 > /dev/null 2>&1 & echo $! > '{}'\n\
         setsid sleep 1000 > /dev/null 2>&1 & echo $! > '{}'\n\
         echo three daemons started",
        pid_file("background.pid"),
        pid_file("nohup.pid"),
        pid_file("setsid.pid"),
    );
    let app = App::new(APP, "one").hook("post_deploy", yaml_str(&daemons));
    let out = deploy(&ws, &server, &app).ok();
    let log = &out.stdout;
    assert!(log.contains("[post_deploy] three daemons started"), "{out}");
    assert!(
        log.contains("[post_deploy] killed 3 process(es) it left running: "),
        "{out}"
    );
    for name in ["background.pid", "nohup.pid", "setsid.pid"] {
        let daemon = pid_in(&ws, name);
        assert!(log.contains(&format!("{daemon} (")), "{name}: {out}");
        wait_until(
            Duration::from_secs(5),
            &format!("the {name} daemon is gone"),
            || !procs::alive(daemon),
        );
    }
    assert_eq!(serving(&server).map(|s| s.0).as_deref(), Some("one"));
}

/// How a release's instance meets a port that is taken.
#[derive(Clone, Copy, Debug)]
enum TakenPort {
    /// Another process binds the port Slipway gave the instance before the instance does
    /// (here: while its `pre_start` waits).
    TheOneSlipwayGaveIt,
    /// The app ignores `$PORT` and listens on a fixed port, which another process has.
    AFixedOneOfTheApp,
}

#[test]
fn a_release_whose_port_is_taken_fails_naming_the_port_and_the_old_one_answers() {
    for taken in [TakenPort::TheOneSlipwayGaveIt, TakenPort::AFixedOneOfTheApp] {
        let ws = Workspace::new();
        let server = ws.serve();
        deploy(&ws, &server, &App::new(APP, "one")).ok();
        let before = serving(&server).expect("v1 answers");

        let (port_file, gate) = (ws.path("port"), ws.path("port-taken"));
        let mut app = App::new(APP, "two");
        let fixed = match taken {
            TakenPort::TheOneSlipwayGaveIt => {
                let wait = format!(
                    "echo $PORT > '{}'; while [ ! -e '{}' ]; do sleep 0.02; done",
                    port_file.display(),
                    gate.display()
                );
                app = app.hook("pre_start", yaml_str(&wait));
                None
            }
            TakenPort::AFixedOneOfTheApp => {
                let held = TcpListener::bind("127.0.0.1:0").unwrap();
                let port = held.local_addr().unwrap().port();
                app.command = Some(format!("PORT={port} exec python3 app.py"));
                Some(held)
            }
        };
        app.write(&ws.path(APP));
        let cli = ws.spawn_cli(
            &server,
            &["deploy", ws.path(APP).to_str().unwrap(), "--env", "live"],
        );
        let held = fixed.unwrap_or_else(|| {
            let mut port = 0;
            wait_until(Duration::from_secs(30), "pre_start tells the port", || {
                port = std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
                port != 0
            });
            let held = TcpListener::bind(("127.0.0.1", port)).expect("the instance's port");
            std::fs::write(&gate, "").unwrap();
            held
        });
        let port = held.local_addr().unwrap().port();
        let out = cli.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_ne!(out.status.code(), Some(0), "{taken:?}: {stdout}");
        let says = match taken {
            TakenPort::TheOneSlipwayGaveIt => format!(
                "its port 127.0.0.1:{port} ($PORT) was taken by another process, pid {} (",
                std::process::id()
            ),
            TakenPort::AFixedOneOfTheApp => {
                "its output says an address is already in use: an app must listen on $PORT"
                    .to_owned()
            }
        };
        assert!(
            stdout.contains("web.1 exited before it became healthy") && stdout.contains(&says),
            "{taken:?}: no `{says}` in:\n{stdout}"
        );
        assert!(
            stdout.contains("its output is in ") && stdout.contains("logs/faulty/live/web.1.log"),
            "{taken:?}: {stdout}"
        );
        let ops = operations(&ws, &server, APP, "live");
        assert_eq!(state_of(&ops[1]), "rolled_back", "{taken:?}");
        assert_eq!(serving(&server), Some(before), "{taken:?}");
        drop(held);
    }
}

#[test]
fn serve_refuses_to_start_when_its_router_or_api_port_is_taken() {
    for (flag, what) in [("--router", "router"), ("--listen", "API")] {
        let ws = Workspace::new();
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap().to_string();
        let other = if flag == "--router" {
            "--listen"
        } else {
            "--router"
        };
        let data = ws.data_dir();
        let out = ws.cli_offline(&[
            "serve",
            flag,
            &taken,
            other,
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
        ]);
        assert_eq!(out.code, 1, "{flag}: {out}");
        assert!(
            out.stderr.contains(&format!(
                "slipway: cannot listen on {taken} ({what}): Address already in use"
            )) && out.stderr.contains(&format!(
                "is another server running there? choose another with {flag}"
            )),
            "{flag}: {out}"
        );
        assert!(
            !data.join("slipway.db").exists(),
            "{flag}: the database was opened"
        );
    }
}
