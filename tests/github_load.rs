//! A short storm of signed pushes across many apps against the real `slipway serve`
//! (the minute-long one at 200 a second is `cargo bench --bench webhook_load`): every
//! delivery accepted and worked on, each app's deploys in push order, every app serving
//! its last push, and GitHub told the end of every commit.

mod common;
mod fake_github;
mod load;

use std::time::Duration;

use common::Workspace;
use fake_github::harness::*;
use fake_github::FakeGitHub;

#[test]
fn a_storm_of_pushes_across_ten_apps_loses_nothing_and_the_last_push_of_each_wins() {
    let ws = Workspace::new();
    let repos = load::repositories(&ws, 10, 10);
    let fake = FakeGitHub::start();
    let server = serve(&ws, &fake);

    let intake = load::storm(&server, &repos, 50.0);
    let recorded = load::settle(&ws, Duration::from_secs(240));
    let problems = load::check(&server, &fake, &repos, &intake, &recorded);
    println!(
        "{} deliveries in {:.1}s ({:.0}/s): intake p50 {:.1} ms, p99 {:.1} ms; settled {:.1}s later",
        intake.sent.len(),
        intake.elapsed.as_secs_f64(),
        intake.rate(),
        intake.latency_ms(0.5),
        intake.latency_ms(0.99),
        recorded.settled_after.as_secs_f64()
    );
    assert_eq!(intake.accepted(), 100, "{:?}", intake.refused());
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(fake.violations().is_empty(), "{:#?}", fake.violations());
    assert_no_secret(&ws, &server, &fake);
}
