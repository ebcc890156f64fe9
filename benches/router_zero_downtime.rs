//! Zero downtime: 32 keep-alive clients keep the router busy while 20 consecutive deploys
//! of a 2-instance web service (examples/hello, a new VERSION each time), then 5 more with
//! a `deploy` hook of `sleep 2`, run through the real server (API, pipeline, local runtime,
//! router) in this process.
//!
//! Every request is counted: served, or failed as a connect error, a reset, a timeout, a
//! 5xx or another non-2xx. Latency during deploys is compared with a steady-state window
//! measured before the first deploy, in the same run. Requests held by a `deploy` hook are
//! served late by design; their latency is reported on its own.
//!
//! Prints the figures and writes them to the "Router zero downtime" section of
//! BENCHMARKS.md.
//!
//! Run: `cargo bench --bench router_zero_downtime`

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use common::load::{Load, LoadOptions, Sample};
use common::stats::{ms, ratio, ratio_of, Summary};
use slipway::cli::{Cli, Client, Command};
use slipway::ids::EnvKey;

const CONNECTIONS: usize = 32;
const PLAIN_DEPLOYS: usize = 20;
const HOOK_DEPLOYS: usize = 5;
const STEADY: Duration = Duration::from_secs(10);

/// One measured deploy, in Unix milliseconds (the server's step clock).
struct Deploy {
    started: i64,
    finished: i64,
    /// While requests were held: the `deploy` hook's step, up to the end of the switch.
    hook: Option<(i64, i64)>,
    sleeps: bool,
}

fn main() {
    // The server runs on a runtime of its own, as `slipway serve` would in its own process.
    let server_runtime = common::backend::runtime("server", 2);
    let bench = common::backend::runtime("bench", 2);
    bench.block_on(run(server_runtime.handle().clone()));
    server_runtime.shutdown_timeout(Duration::from_secs(5));
}

async fn run(server_runtime: tokio::runtime::Handle) {
    let work = tempfile::tempdir().expect("a temporary directory");
    let work_path = work.path().canonicalize().expect("the temporary directory");
    let app = work_path.join("hello");
    copy_dir(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello")),
        &app,
    );

    let note = disable_nagle(&app);
    let data = work_path.join("data");
    let cli = Cli::parse_from([
        "slipway",
        "serve",
        "--data",
        data.to_str().expect("a UTF-8 path"),
        "--listen",
        "127.0.0.1:0",
        "--router",
        "127.0.0.1:0",
    ]);
    let Command::Serve { server } = cli.command else {
        unreachable!("parsed a serve command line")
    };
    let server = server_runtime
        .spawn(slipway::server::start(server.options()))
        .await
        .expect("the server task")
        .expect("the server starts");
    let token = std::fs::read_to_string(&server.admin_token_path).expect("the admin token");
    let client = Client::new(
        &format!("http://{}", server.api_addr),
        token.trim().to_owned(),
    );
    let env = EnvKey::new("hello", "bench");

    // The first release, before any load: the environment must exist to be routed.
    deploy(&client, &env, &app, 0).await;

    let load = Load::start(LoadOptions {
        target: server.router_addr,
        host: "hello-bench.localhost".to_owned(),
        path: "/".to_owned(),
        connections: CONNECTIONS,
        request_timeout: Duration::from_secs(35),
        hard_deadline: Instant::now() + Duration::from_secs(300),
        requests_per_connection: usize::MAX,
    });
    tokio::time::sleep(STEADY).await;
    let steady_end = unix_ms(SystemTime::now());
    let mut deploys = Vec::new();
    for round in 1..=PLAIN_DEPLOYS + HOOK_DEPLOYS {
        if round == PLAIN_DEPLOYS + 1 {
            set_deploy_hook(&app, "sleep 2");
        }
        deploys.push(deploy(&client, &env, &app, round).await);
    }
    // A moment of traffic after the last switch, so its drain is measured too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let origin_wall = load.origin_wall;
    let samples = load.finish().await;

    server_runtime
        .spawn(server.stop())
        .await
        .expect("the server stops");
    stop_instances(&work_path);

    let report = report(&samples, unix_ms(origin_wall), steady_end, &deploys, &note);
    print!("{report}");
    common::report::write_section(
        "router_zero_downtime",
        "Router zero downtime",
        &format!(
            "{}\n{report}",
            common::report::preamble("cargo bench --bench router_zero_downtime")
        ),
    );
}

/// Uploads the app with a new VERSION (a new release) and waits for the deploy to end.
async fn deploy(client: &Client, env: &EnvKey, app: &Path, round: usize) -> Deploy {
    std::fs::write(app.join("VERSION"), format!("bench-{round}\n")).expect("write VERSION");
    let tarball = slipway::source::upload::pack(app).expect("pack the app");
    let op = client.upload(env, tarball, None).await.expect("upload");
    let deadline = Instant::now() + Duration::from_secs(120);
    let detail = loop {
        let detail = client.get_operation(op.id.0).await.expect("the operation");
        if !matches!(detail["state"].as_str(), Some("queued" | "running")) {
            break detail;
        }
        assert!(
            Instant::now() < deadline,
            "deploy {round} did not end within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        detail["state"], "succeeded",
        "deploy {round} failed: {detail:#}"
    );
    // Requests are held from just before the hook's step is recorded until the switch
    // after it has ended.
    let step = |name: &str| {
        detail["steps"].as_array().and_then(|steps| {
            steps
                .iter()
                .find(|s| s["step"] == name)
                .and_then(|s| Some((s["started_at"].as_i64()?, s["finished_at"].as_i64()?)))
        })
    };
    let hook = step("deploy_hook").map(|(from, to)| {
        let released = step("switch").map_or(to, |(_, switched)| switched.max(to));
        (from, released)
    });
    Deploy {
        started: detail["started_at"].as_i64().unwrap_or_default(),
        finished: detail["finished_at"].as_i64().unwrap_or_default(),
        hook,
        sleeps: round > PLAIN_DEPLOYS,
    }
}

/// Python's `http.server` writes a response's head and body in two sends; with Nagle's
/// algorithm on, the body waits for the ACK of the head, which the client delays by ~40 ms:
/// every keep-alive request then takes ~44 ms whatever the router does. The bench's copy
/// turns Nagle off (`disable_nagle_algorithm`) so it measures the router, and says so.
fn disable_nagle(app: &Path) -> String {
    let path = app.join("app.py");
    let source = std::fs::read_to_string(&path).expect("read app.py");
    if source.contains("disable_nagle_algorithm") {
        return "The app sets `disable_nagle_algorithm` itself.".to_owned();
    }
    let marker = "    protocol_version = \"HTTP/1.1\"\n";
    assert!(
        source.contains(marker),
        "app.py no longer sets protocol_version"
    );
    let patched = source.replace(
        marker,
        &format!("{marker}    disable_nagle_algorithm = True\n"),
    );
    std::fs::write(&path, patched).expect("write app.py");
    "The bench's copy of `app.py` sets `disable_nagle_algorithm = True` on its handler: \
     as shipped, Python's `http.server` sends a response's head and body separately, and \
     with Nagle on every keep-alive request waits ~40 ms for a delayed ACK (about 44 ms \
     per request, direct or through the router), which would hide what the router does."
        .to_owned()
}

/// Replaces the example's `deploy` hook.
fn set_deploy_hook(app: &Path, script: &str) {
    let path = app.join("slipway.yml");
    let config = std::fs::read_to_string(&path).expect("read slipway.yml");
    let replaced: Vec<String> = config
        .lines()
        .map(|line| match line.starts_with("  deploy:") {
            true => format!("  deploy: \"{script}\""),
            false => line.to_owned(),
        })
        .collect();
    assert!(
        replaced.iter().any(|l| l.contains(script)),
        "no deploy hook in slipway.yml"
    );
    std::fs::write(&path, replaced.join("\n") + "\n").expect("write slipway.yml");
}

fn report(
    samples: &[Sample],
    origin: i64,
    steady_end: i64,
    deploys: &[Deploy],
    note: &str,
) -> String {
    // Sample times in Unix ms, on the same clock as the server's step records.
    let start = |s: &Sample| origin + s.started.as_millis() as i64;
    let end = |s: &Sample| origin + s.ended().as_millis() as i64;
    let within = |t: i64, (from, to): (i64, i64)| from - 1 <= t && t <= to + 1;
    // Held: sent while a hold was on (loopback: sent = arrived), answered after it ended.
    // The hold starts a little before its step is recorded, hence the 100 ms of slack.
    let held = |s: &Sample, sleeps: bool| {
        deploys
            .iter()
            .filter(|d| d.sleeps == sleeps)
            .filter_map(|d| d.hook)
            .any(|(from, to)| within(start(s), (from - 100, to)) && end(s) >= to - 1)
    };
    let held_any = |s: &Sample| held(s, true) || held(s, false);
    // A request counts for the deploy it ended in.
    let ended_in = |s: &Sample, sleeps: bool| {
        deploys
            .iter()
            .filter(|d| d.sleeps == sleeps)
            .any(|d| within(end(s), (d.started, d.finished)))
    };
    let seconds = |sleeps: bool| -> f64 {
        deploys
            .iter()
            .filter(|d| d.sleeps == sleeps)
            .map(|d| (d.finished - d.started) as f64 / 1000.0)
            .sum()
    };
    let served_in = |sleeps: bool| {
        Summary::of(samples.iter().filter(|s| ended_in(s, sleeps))).ok as f64 / seconds(sleeps)
    };

    let all = Summary::of(samples);
    let steady = Summary::of(samples.iter().filter(|s| end(s) <= steady_end));
    let steady_rps = steady.ok as f64 / STEADY.as_secs_f64();
    let plain = Summary::of(
        samples
            .iter()
            .filter(|s| ended_in(s, false) && !held_any(s)),
    );
    let plain_rps = served_in(false);
    let held_short = Summary::of(samples.iter().filter(|s| held(s, false)));
    let hooked = Summary::of(samples.iter().filter(|s| ended_in(s, true) && !held_any(s)));
    let hooked_rps = served_in(true);
    let held_long = Summary::of(samples.iter().filter(|s| held(s, true)));
    let times = |sleeps: bool| {
        let times: Vec<i64> = deploys
            .iter()
            .filter(|d| d.sleeps == sleeps)
            .map(|d| d.finished - d.started)
            .collect();
        format!(
            "{}-{} ms",
            times.iter().min().copied().unwrap_or_default(),
            times.iter().max().copied().unwrap_or_default()
        )
    };

    let row = |name: &str, s: &Summary, rps: Option<f64>| {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.attempts,
            s.ok,
            rps.map(|r| format!("{r:.0}"))
                .unwrap_or_else(|| "-".to_owned()),
            ms(s.percentile(50.0)),
            ms(s.percentile(99.0)),
            ms(s.max()),
            s.failures_text(),
        )
    };
    let compare = |name: &str, s: &Summary, rps: f64| {
        format!(
            "- {name} / steady state: throughput {}, p50 {}, p99 {}\n",
            ratio(rps, steady_rps),
            ratio_of(s.percentile(50.0), steady.percentile(50.0)),
            ratio_of(s.percentile(99.0), steady.percentile(99.0)),
        )
    };
    let mut out = format!(
        "examples/hello (2 web instances of a Python app, every hook wired) through the \
         router at `hello-bench.localhost`, {CONNECTIONS} keep-alive connections the whole \
         time: {}s of steady state, then {PLAIN_DEPLOYS} consecutive deploys ({}; the \
         example's `deploy` hook is an `echo`, a hold of milliseconds), then {HOOK_DEPLOYS} \
         with a `deploy` hook of `sleep 2` ({}; requests held, not refused). A request \
         counts for the deploy window it ended in; it is *held* if it was sent while a \
         `deploy` hook's hold was on and answered after the hold ended. Requests/s of a \
         deploy window count every request served in it, held ones included.\n\n{note}\n\n\
         | window | requests | served | requests/s | p50 | p99 | max | failures |\n\
         |---|---|---|---|---|---|---|---|\n",
        STEADY.as_secs(),
        times(false),
        times(true),
    );
    out += &row("whole run", &all, None);
    out += &row("steady state (baseline)", &steady, Some(steady_rps));
    out += &row(
        &format!("during the {PLAIN_DEPLOYS} deploys, not held"),
        &plain,
        Some(plain_rps),
    );
    out += &row("held by the `echo` deploy hook", &held_short, None);
    out += &row(
        &format!("during the {HOOK_DEPLOYS} `sleep 2` deploys, not held"),
        &hooked,
        Some(hooked_rps),
    );
    out += &row("held by the `sleep 2` deploy hook", &held_long, None);
    out += "\n";
    out += &compare(&format!("the {PLAIN_DEPLOYS} deploys"), &plain, plain_rps);
    out += &compare(
        &format!("the {HOOK_DEPLOYS} `sleep 2` deploys"),
        &hooked,
        hooked_rps,
    );
    out += &format!(
        "\nTarget (0 failures of any kind): {} — {} failed of {} requests.\n",
        if all.failed() == 0 { "met" } else { "MISSED" },
        all.failed(),
        all.attempts,
    );
    out
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the app folder");
    for entry in std::fs::read_dir(from).expect("read examples/hello") {
        let entry = entry.expect("an entry of examples/hello");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy examples/hello");
    }
}

/// The app's instances outlive the server by design; this stops the ones this bench
/// started — the processes whose working directory is under its temporary directory —
/// with SIGTERM, then SIGKILL after 10 s.
fn stop_instances(work: &Path) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let ours = || -> Vec<Pid> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid as u32 != std::process::id())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(work))
            })
            .map(Pid::from_raw)
            .collect()
    };
    for pid in ours() {
        let _ = kill(pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ours().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in ours() {
        let _ = kill(pid, Signal::SIGKILL);
    }
}
