//! Webhook load: signed push deliveries at 200 a second for a minute, across 20 apps, to
//! the real `slipway serve` (local runtime, SQLite, a fake GitHub on loopback), while the
//! deploys they start run on the same machine.
//!
//! Baseline, in the same run: the same 20 apps on a fresh server at 10 deliveries a
//! second for 10 seconds. Both runs are then checked as `tests/github_load.rs` checks its
//! short storm: every delivery accepted (202) and worked on, each app's deploys in push
//! order, each app serving its last push, GitHub told the end of every commit.
//!
//! Prints intake latency (request sent → 202 read) p50/p99/max, the rate achieved, the
//! server's peak resident memory and how long the server took to settle after the storm,
//! each with its ratio to the baseline; writes the "Webhook load" section of
//! BENCHMARKS.md.
//!
//! Run: `cargo bench --bench webhook_load` (RATE, SECS and APPS change the storm).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/fake_github/mod.rs"]
mod fake_github;
#[path = "../tests/load/mod.rs"]
mod load;
#[allow(dead_code)]
#[path = "common/report.rs"]
mod report;

use std::time::Duration;

use common::Workspace;
use fake_github::harness::serve;
use fake_github::FakeGitHub;

struct Run {
    label: String,
    intake: load::Intake,
    settled_after: Duration,
    end_rss_kib: u64,
    peak_rss_kib: u64,
    operations: usize,
    succeeded: usize,
    /// Requests the fake GitHub took (statuses, check runs, deployments).
    github_requests: usize,
    problems: Vec<String>,
}

fn storm(label: &str, apps: usize, rate: f64, secs: f64) -> Run {
    let pushes = ((rate * secs) / apps as f64).round().max(1.0) as usize;
    println!("--- {label}: {apps} apps × {pushes} pushes at {rate}/s");
    let ws = Workspace::new();
    let repos = load::repositories(&ws, apps, pushes);
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);
    let intake = load::storm(&server, &repos, rate);
    println!(
        "    sent {} in {:.1}s: p50 {:.1} ms, p99 {:.1} ms",
        intake.sent.len(),
        intake.elapsed.as_secs_f64(),
        intake.latency_ms(0.5),
        intake.latency_ms(0.99)
    );
    let recorded = load::settle(&ws, Duration::from_secs(1800));
    let problems = load::check(&server, &fake, &repos, &intake, &recorded);
    let operations: Vec<_> = recorded.operations.values().flatten().collect();
    Run {
        label: label.to_owned(),
        settled_after: recorded.settled_after,
        end_rss_kib: load::rss_kib(server.pid()),
        peak_rss_kib: load::peak_rss_kib(server.pid()).max(intake.peak_rss_kib),
        operations: operations.len(),
        succeeded: operations.iter().filter(|o| o.2 == "succeeded").count(),
        github_requests: fake.accepted().len(),
        problems,
        intake,
    }
}

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let apps = env_or("APPS", 20.0) as usize;
    let rate = env_or("RATE", 200.0);
    let secs = env_or("SECS", 60.0);
    let baseline = storm("baseline", apps, 10.0, 10.0);
    let load = storm("load", apps, rate, secs);

    let mut table = String::from(
        "| run | deliveries | rate achieved | accepted | intake p50 | p99 | max | late start (max) | peak RSS | RSS after | operations (succeeded / superseded) | GitHub requests | settled after the storm |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for run in [&baseline, &load] {
        let i = &run.intake;
        let max = i.sent.iter().map(|s| s.latency).max().unwrap_or_default();
        table.push_str(&format!(
            "| {} | {} | {:.1}/s | {} | {:.1} ms | {:.1} ms | {:.0} ms | {:.0} ms | {:.1} MiB | {:.1} MiB | {} ({} / {}) | {} | {:.1} s |\n",
            run.label,
            i.sent.len(),
            i.rate(),
            i.accepted(),
            i.latency_ms(0.5),
            i.latency_ms(0.99),
            max.as_secs_f64() * 1000.0,
            i.max_lag().as_secs_f64() * 1000.0,
            run.peak_rss_kib as f64 / 1024.0,
            run.end_rss_kib as f64 / 1024.0,
            run.operations,
            run.succeeded,
            run.operations - run.succeeded,
            run.github_requests,
            run.settled_after.as_secs_f64(),
        ));
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let ratios = format!(
        "Load / baseline: intake p50 {:.2}, p99 {:.2}, peak RSS {:.2}.",
        ratio(load.intake.latency_ms(0.5), baseline.intake.latency_ms(0.5)),
        ratio(
            load.intake.latency_ms(0.99),
            baseline.intake.latency_ms(0.99)
        ),
        ratio(load.peak_rss_kib as f64, baseline.peak_rss_kib as f64),
    );
    let mut checks = String::new();
    for run in [&baseline, &load] {
        if run.problems.is_empty() {
            checks.push_str(&format!(
                "- {}: every delivery accepted and worked on, each app's deploys in push order, \
                 each app serving its last push, every commit's final status on GitHub.\n",
                run.label
            ));
        } else {
            checks.push_str(&format!(
                "- {}: **{} problems**:\n",
                run.label,
                run.problems.len()
            ));
            for problem in &run.problems {
                checks.push_str(&format!("  - {problem}\n"));
            }
        }
    }
    let body = format!(
        "{}\n{apps} apps (the python example app, 1 instance each, `staging` deployed from \
         `main`), each push a new commit. Deliveries are signed, sent each on a new \
         connection on the storm's schedule, one app after the other; an app's next push \
         waits for the answer to its previous one. Baseline: the same apps at 10/s for 10 s \
         on a fresh server.\n\n{table}\n{ratios}\n\n{checks}",
        report::preamble("cargo bench --bench webhook_load"),
    );
    println!("\n{body}");
    report::write_section("webhook_load", "Webhook load", &body);
    if !baseline.problems.is_empty() || !load.problems.is_empty() {
        std::process::exit(1);
    }
}
