//! The router's resident memory with 100 environments routed, 2 backends each.
//!
//! The router runs alone in a child process (this bench binary, re-run with `router-child`)
//! so its resident set holds nothing else: the backends and the clients live in the parent.
//! Baseline: the same child's RSS once it is listening, before anything is routed. Then 100
//! environments are switched to 2 backends each, every environment gets a few requests
//! (so the router holds a keep-alive connection to each backend), and the RSS is read
//! again; then once more after a burst of 400 connections at once.
//!
//! Prints both figures and the difference, and writes them to the "Router memory" section
//! of BENCHMARKS.md.
//!
//! Run: `cargo bench --bench router_memory`

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::load::{Load, LoadOptions, Outcome};
use slipway::ids::{EnvKey, ReleaseNumber};
use slipway::pipeline::traits::{Backend, Traffic};
use slipway::router::{Router, RouterOptions};

const ENVIRONMENTS: usize = 100;
const BACKENDS_PER_ENVIRONMENT: usize = 2;
const REQUESTS_PER_ENVIRONMENT: usize = 10;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("router-child") {
        router_child();
        return;
    }
    let runtime = common::backend::runtime("bench", 2);
    runtime.block_on(run());
}

async fn run() {
    let exe = std::env::current_exe().expect("this bench's path");
    let mut child = Command::new(exe)
        .arg("router-child")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the router child");
    let mut to_child = child.stdin.take().expect("child stdin");
    let mut from_child = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut read_line = move || {
        let mut line = String::new();
        from_child
            .read_line(&mut line)
            .expect("read from the router child");
        line.trim().to_owned()
    };
    let router: SocketAddr = read_line()
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .expect("the router child's address");
    let baseline = ask_rss(&mut to_child, &mut read_line);

    let mut backends = Vec::new();
    for _ in 0..ENVIRONMENTS * BACKENDS_PER_ENVIRONMENT {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a backend");
        backends.push(listener.local_addr().expect("backend address"));
        tokio::spawn(common::backend::serve_hello(listener));
    }
    for (index, pair) in backends.chunks(BACKENDS_PER_ENVIRONMENT).enumerate() {
        let addresses: Vec<String> = pair.iter().map(ToString::to_string).collect();
        send(
            &mut to_child,
            &format!("switch env{index} {}", addresses.join(" ")),
        );
    }
    send(&mut to_child, "sync");
    assert_eq!(read_line(), "synced");
    let switched = ask_rss(&mut to_child, &mut read_line);

    // A few requests to every environment: one keep-alive connection each, all at once.
    let (served, failures) = send_requests(router, 1, REQUESTS_PER_ENVIRONMENT, None).await;
    assert!(
        served >= ENVIRONMENTS * REQUESTS_PER_ENVIRONMENT * 9 / 10,
        "only {served} requests were served ({failures} failed)"
    );
    let routed = ask_rss(&mut to_child, &mut read_line);
    // Then a burst: 4 connections per environment (400 at once) for half a second.
    let (burst_served, burst_failures) =
        send_requests(router, 4, usize::MAX, Some(Duration::from_millis(500))).await;
    let after_burst = ask_rss(&mut to_child, &mut read_line);
    let peak = {
        send(&mut to_child, "hwm");
        read_line().parse::<u64>().unwrap_or(0)
    };
    drop(to_child);
    let _ = child.wait();

    let report = format!(
        "The router alone in a child process; {ENVIRONMENTS} environments, \
         {BACKENDS_PER_ENVIRONMENT} backends each (hyper `200 hello` servers in the parent). \
         Baseline: the same process listening, nothing routed.\n\n\
         | state | resident memory (VmRSS) | vs baseline |\n|---|---|---|\n\
         | baseline: listening, nothing routed | {} | 1.00 |\n\
         | {ENVIRONMENTS} environments switched, no request yet | {} | {} |\n\
         | after {REQUESTS_PER_ENVIRONMENT} requests to each environment ({served} served, {failures} failed; one keep-alive connection per environment) | {} | {} |\n\
         | after a burst of 400 connections at once for 0.5 s ({burst_served} served, {burst_failures} failed) | {} | {} |\n\
         | peak (VmHWM) | {} | {} |\n\n\
         Difference with {ENVIRONMENTS} environments routed (after the few requests): {} \
         ({} per environment). The burst's figure is mostly connection buffers that the \
         allocator keeps after the connections close.\n",
        mib(baseline),
        mib(switched),
        ratio(switched, baseline),
        mib(routed),
        ratio(routed, baseline),
        mib(after_burst),
        ratio(after_burst, baseline),
        mib(peak),
        ratio(peak, baseline),
        mib(routed.saturating_sub(baseline)),
        kib_text(routed.saturating_sub(baseline) / ENVIRONMENTS as u64),
    );
    print!("{report}");
    common::report::write_section(
        "router_memory",
        "Router memory",
        &format!(
            "{}\n{report}",
            common::report::preamble("cargo bench --bench router_memory")
        ),
    );
}

/// Sends requests to every environment at once: `connections` each, `count` requests per
/// connection or for `duration`. Returns how many were served and how many failed.
async fn send_requests(
    router: SocketAddr,
    connections: usize,
    count: usize,
    duration: Option<Duration>,
) -> (usize, usize) {
    let loads: Vec<Load> = (0..ENVIRONMENTS)
        .map(|index| {
            Load::start(LoadOptions {
                target: router,
                host: format!("mem-env{index}.localhost"),
                path: "/".to_owned(),
                connections,
                request_timeout: Duration::from_secs(10),
                hard_deadline: Instant::now() + Duration::from_secs(30),
                requests_per_connection: count,
            })
        })
        .collect();
    if let Some(duration) = duration {
        tokio::time::sleep(duration).await;
    }
    let (mut served, mut failed) = (0, 0);
    for load in loads {
        let samples = match duration {
            Some(_) => load.finish().await,
            None => load.join().await,
        };
        served += samples.iter().filter(|s| s.outcome == Outcome::Ok).count();
        failed += samples.iter().filter(|s| s.outcome != Outcome::Ok).count();
    }
    (served, failed)
}

fn send(to_child: &mut ChildStdin, line: &str) {
    writeln!(to_child, "{line}").expect("write to the router child");
}

fn ask_rss(to_child: &mut ChildStdin, read_line: &mut impl FnMut() -> String) -> u64 {
    send(to_child, "rss");
    read_line()
        .parse()
        .expect("an RSS figure from the router child")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn kib_text(kib: u64) -> String {
    format!("{kib} KiB")
}

fn ratio(a: u64, b: u64) -> String {
    common::stats::ratio(a as f64, b as f64)
}

/// The child: a router and nothing else, driven by lines on stdin until stdin closes.
///
/// `switch <env> <addr>...` routes `mem-<env>.localhost` to those backends; `sync` answers
/// `synced` once the lines before it are done; `rss` and `hwm` answer VmRSS and VmHWM in KiB.
fn router_child() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the router");
        let address = listener.local_addr().expect("the router's address");
        let router = Router::new(address, RouterOptions::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(router.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        println!("listening {address}");
        let mut lines =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
        while let Ok(Some(line)) = lines.next_line().await {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["switch", env, addresses @ ..] => {
                    let backends = addresses
                        .iter()
                        .enumerate()
                        .map(|(i, address)| Backend {
                            address: (*address).to_owned(),
                            release: ReleaseNumber(1),
                            instance: format!("{env}-{i}"),
                        })
                        .collect();
                    router.switch(&EnvKey::new("mem", *env), backends).await;
                }
                ["sync"] => println!("synced"),
                ["rss"] => println!("{}", common::report::rss_kib("self", "VmRSS:")),
                ["hwm"] => println!("{}", common::report::rss_kib("self", "VmHWM:")),
                _ => eprintln!("router child: unknown line {line:?}"),
            }
        }
        let _ = stop.send(());
        let _ = serving.await;
    });
}
