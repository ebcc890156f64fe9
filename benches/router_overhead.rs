//! The router's overhead: one trivial app measured directly, through Slipway's router, and
//! through nginx (Debian's package, as a keep-alive reverse proxy), in one run, with the
//! same load — 32 keep-alive connections — interleaved over a few rounds to cut noise.
//!
//! The app, the router and the load generator each run on their own tokio runtime (two
//! worker threads each), as separate processes would; nginx runs with `worker_processes
//! auto`. Everything shares the machine's cores, as it would in production.
//!
//! nginx sets the same forwarding headers as Slipway's router (`X-Forwarded-For`, `-Proto`,
//! `-Host`), so both proxies do the same work.
//!
//! Prints requests/s, p50 and p99 for each, the proxies' CPU time per request (read from
//! `/proc`: the router's threads, nginx's worker processes — a figure that the machine's
//! noise moves far less than throughput), the Slipway/nginx and Slipway/direct ratios, and
//! writes them to the "Router overhead" section of BENCHMARKS.md.
//!
//! Run: `cargo bench --bench router_overhead`

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::load::{self, LoadOptions, Outcome, Sample};
use common::stats::{ms, ratio, ratio_of, Summary};
use slipway::ids::{EnvKey, ReleaseNumber};
use slipway::pipeline::traits::{Backend, Traffic};
use slipway::router::{Router, RouterOptions};

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 10;
const ROUND_LENGTH: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_secs(1);

/// One column of the comparison.
struct Target {
    name: &'static str,
    address: SocketAddr,
    host: String,
    samples: Vec<Sample>,
    elapsed: Duration,
    /// Requests/s of each round, to show the noise.
    per_round: Vec<f64>,
    /// How to read the proxy's CPU time so far (none for the app measured directly).
    cpu: Option<Box<dyn Fn() -> Duration>>,
    /// The proxy's CPU time over the rounds.
    cpu_used: Duration,
}

fn main() {
    let backend_runtime = common::backend::runtime("backend", 2);
    let router_runtime = common::backend::runtime("router", 2);
    let load_runtime = common::backend::runtime("load", 2);
    let work = tempfile::tempdir().expect("a temporary directory");

    let backend = backend_runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the app");
        let address = listener.local_addr().expect("the app's address");
        tokio::spawn(common::backend::serve_hello(listener));
        address
    });

    let env = EnvKey::new("bench", "overhead");
    let (router_address, stop_router) = router_runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the router");
        let address = listener.local_addr().expect("the router's address");
        let router = Router::new(address, RouterOptions::default());
        let backends = vec![Backend {
            address: backend.to_string(),
            release: ReleaseNumber(1),
            instance: "bench-1".to_owned(),
        }];
        router.switch(&env, backends).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(router.serve(listener, async move {
            let _ = stopped.await;
        }));
        (address, stop)
    });

    let mut targets = vec![
        Target::new("direct", backend, "direct.localhost", None),
        Target::new(
            "slipway",
            router_address,
            "bench-overhead.localhost",
            Some(Box::new(|| cpu::threads_named("slipway-router-"))),
        ),
    ];
    let nginx = match Nginx::start(work.path(), backend) {
        Ok(nginx) => {
            let master = nginx.child.id();
            targets.push(Target::new(
                "nginx",
                nginx.address,
                "nginx.localhost",
                Some(Box::new(move || cpu::children_of(master))),
            ));
            Some(nginx)
        }
        Err(why) => {
            println!("nginx is missing ({why}): the nginx column is skipped; install it with `apt-get install -y nginx`");
            None
        }
    };

    load_runtime.block_on(async {
        for target in &targets {
            let _ = load::run_for(target.options(), WARM_UP).await;
        }
        for round in 0..ROUNDS {
            // Rotate the order so no target always runs first (or right after another).
            let count = targets.len();
            for offset in 0..count {
                let target = &mut targets[(round + offset) % count];
                let cpu_before = target.cpu.as_ref().map(|read| read());
                let (samples, elapsed) = load::run_for(target.options(), ROUND_LENGTH).await;
                if let (Some(read), Some(before)) = (&target.cpu, cpu_before) {
                    target.cpu_used += read().saturating_sub(before);
                }
                let served = samples.iter().filter(|s| s.outcome == Outcome::Ok).count();
                target.per_round.push(served as f64 / elapsed.as_secs_f64());
                target.samples.extend(samples);
                target.elapsed += elapsed;
            }
        }
    });
    drop(nginx);
    let _ = stop_router.send(());

    let report = report(&targets);
    print!("{report}");
    common::report::write_section(
        "router_overhead",
        "Router overhead",
        &format!(
            "{}\n{report}",
            common::report::preamble("cargo bench --bench router_overhead")
        ),
    );
}

impl Target {
    fn new(
        name: &'static str,
        address: SocketAddr,
        host: &str,
        cpu: Option<Box<dyn Fn() -> Duration>>,
    ) -> Target {
        Target {
            name,
            address,
            host: host.to_owned(),
            samples: Vec::new(),
            elapsed: Duration::ZERO,
            per_round: Vec::new(),
            cpu,
            cpu_used: Duration::ZERO,
        }
    }

    /// The proxy's CPU time per request served, in microseconds.
    fn cpu_per_request(&self, summary: &Summary) -> Option<f64> {
        self.cpu.as_ref()?;
        Some(self.cpu_used.as_secs_f64() * 1e6 / summary.ok.max(1) as f64)
    }

    fn options(&self) -> LoadOptions {
        LoadOptions {
            target: self.address,
            host: self.host.clone(),
            path: "/".to_owned(),
            connections: CONNECTIONS,
            request_timeout: Duration::from_secs(10),
            hard_deadline: Instant::now() + Duration::from_secs(60),
            requests_per_connection: usize::MAX,
        }
    }

    fn requests_per_second(&self, summary: &Summary) -> f64 {
        summary.ok as f64 / self.elapsed.as_secs_f64()
    }
}

fn report(targets: &[Target]) -> String {
    let mut out = format!(
        "A trivial app (hyper, `200 hello`) under {CONNECTIONS} keep-alive connections, \
         {ROUNDS} interleaved rounds of {}s per target after a {}s warm-up each.\n\n\
         | target | requests | requests/s | requests/s per round | p50 | p99 | max | proxy CPU per request | failures |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        ROUND_LENGTH.as_secs(),
        WARM_UP.as_secs()
    );
    let summaries: Vec<(&Target, Summary)> = targets
        .iter()
        .map(|t| (t, Summary::of(&t.samples)))
        .collect();
    for (target, summary) in &summaries {
        out += &format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
            target.name,
            summary.attempts,
            target.requests_per_second(summary),
            target
                .per_round
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            ms(summary.percentile(50.0)),
            ms(summary.percentile(99.0)),
            ms(summary.max()),
            target
                .cpu_per_request(summary)
                .map_or("–".to_owned(), |us| format!("{us:.1} µs")),
            summary.failures_text(),
        );
    }
    let find = |name: &str| summaries.iter().find(|(t, _)| t.name == name);
    let Some((slipway, slipway_summary)) = find("slipway") else {
        return out;
    };
    let mut compare = |baseline: &str| {
        if let Some((base, base_summary)) = find(baseline) {
            let per_round: Vec<String> = slipway
                .per_round
                .iter()
                .zip(&base.per_round)
                .map(|(s, b)| ratio(*s, *b))
                .collect();
            let mut round_ratios: Vec<f64> = slipway
                .per_round
                .iter()
                .zip(&base.per_round)
                .map(|(s, b)| s / b)
                .collect();
            round_ratios.sort_by(f64::total_cmp);
            let median = round_ratios.get(round_ratios.len() / 2).copied();
            out += &format!(
                "\nSlipway / {baseline}: throughput {} (per round: {}; median round {}), p50 {}, p99 {}",
                ratio(
                    slipway.requests_per_second(slipway_summary),
                    base.requests_per_second(base_summary)
                ),
                per_round.join(" / "),
                median.map_or("–".to_owned(), |m| format!("{m:.2}")),
                ratio_of(
                    slipway_summary.percentile(50.0),
                    base_summary.percentile(50.0)
                ),
                ratio_of(
                    slipway_summary.percentile(99.0),
                    base_summary.percentile(99.0)
                ),
            );
            if let (Some(mine), Some(theirs)) = (
                slipway.cpu_per_request(slipway_summary),
                base.cpu_per_request(base_summary),
            ) {
                out += &format!(", CPU per request {}", ratio(mine, theirs));
            }
        }
    };
    compare("nginx");
    compare("direct");
    out += "\n";
    if let Some((nginx, nginx_summary)) = find("nginx") {
        let throughput_met = slipway.requests_per_second(slipway_summary)
            >= nginx.requests_per_second(nginx_summary);
        let p99_met = slipway_summary.percentile(99.0) <= nginx_summary.percentile(99.0);
        out += &format!(
            "\nTarget (throughput at or above nginx's, p99 no worse): throughput {}, p99 {}.\n",
            if throughput_met { "met" } else { "MISSED" },
            if p99_met { "met" } else { "MISSED" },
        );
    }
    out
}

/// nginx as a child process with its own config in a temporary directory; killed on drop.
struct Nginx {
    child: Child,
    address: SocketAddr,
}

impl Nginx {
    fn start(dir: &Path, backend: SocketAddr) -> Result<Nginx, String> {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("no nginx binary in /usr/sbin or /usr/bin")?;
        let port = free_port();
        let dir = dir.join("nginx");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let d = dir.display();
        let config = format!(
            "daemon off;\nmaster_process on;\nworker_processes auto;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               keepalive_requests 1000000;\n\
               upstream app {{ server {backend}; keepalive 64; keepalive_requests 1000000; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location / {{\n      proxy_pass http://app;\n      proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                   proxy_set_header X-Forwarded-Proto $scheme;\n\
                   proxy_set_header X-Forwarded-Host $host;\n    }}\n  }}\n}}\n"
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        let mut nginx = Nginx {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(nginx.address).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                return Err(format!("nginx exited with {status}: {log}"));
            }
            if Instant::now() > deadline {
                return Err("nginx did not listen within 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM is nginx's fast shutdown: the master stops its workers and exits.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// CPU time (user + system) read from `/proc`, in clock ticks of 10 ms.
mod cpu {
    use std::time::Duration;

    /// The CPU time of this process's threads whose name starts with `prefix`.
    pub fn threads_named(prefix: &str) -> Duration {
        let mut total = Duration::ZERO;
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return total;
        };
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with(prefix) {
                total += stat_cpu(&task.path().join("stat")).unwrap_or_default();
            }
        }
        total
    }

    /// The CPU time of process `parent` and its children (nginx's master and workers).
    pub fn children_of(parent: u32) -> Duration {
        let mut total = stat_cpu(format!("/proc/{parent}/stat").as_ref()).unwrap_or_default();
        let Ok(processes) = std::fs::read_dir("/proc") else {
            return total;
        };
        for process in processes.flatten() {
            let stat = process.path().join("stat");
            if parent_of(&stat) == Some(parent) {
                total += stat_cpu(&stat).unwrap_or_default();
            }
        }
        total
    }

    /// The fields after the command name, which may hold spaces and parentheses.
    fn fields(stat: &std::path::Path) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(stat).ok()?;
        let rest = &text[text.rfind(')')? + 1..];
        Some(rest.split_whitespace().map(str::to_owned).collect())
    }

    fn parent_of(stat: &std::path::Path) -> Option<u32> {
        fields(stat)?.get(1)?.parse().ok()
    }

    /// utime + stime (fields 14 and 15 of `stat`; 12 and 13 after the name).
    fn stat_cpu(stat: &std::path::Path) -> Option<Duration> {
        let fields = fields(stat)?;
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // USER_HZ is 100 on Linux.
        Some(Duration::from_millis(ticks * 10))
    }
}
