//! The orchestration overhead of a deploy: its wall time minus what the app and its hooks
//! take on their own, over 20 deploys of examples/hello with the local runtime.
//!
//! Baselines are measured in the same run: the app booting to healthy when started by
//! hand (polled every 2 ms), and each hook script run by hand with `sh -c`. Prints the
//! figures and appends them to `target/bench-deploy-overhead.txt`.
//!
//! Run: `cargo bench --bench deploy_overhead`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway::cli::Client;
use slipway::ids::EnvKey;

const DEPLOYS: usize = 20;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(run());
}

async fn run() {
    let work = tempfile::tempdir().expect("tempdir");
    let app = work.path().join("hello");
    copy_dir(Path::new("examples/hello"), &app);

    let boot = median(
        &(0..DEPLOYS)
            .map(|_| boot_to_healthy(&app))
            .collect::<Vec<_>>(),
    );
    let config = slipway::config::load_dir(&app, "hello").expect("examples/hello is valid");
    let script = |hook: &Option<slipway::config::model::Hook>| match hook.as_ref().map(|h| &h.body)
    {
        Some(slipway::config::model::HookBody::Script(s)) => vec![s.clone()],
        Some(slipway::config::model::HookBody::Commands(c)) => c.clone(),
        None => vec![],
    };
    let build_hook = median(
        &(0..5)
            .map(|_| run_scripts(&app, &script(&config.build.hook)))
            .collect::<Vec<_>>(),
    );
    let instances = config.services.values().map(|s| s.instances).sum::<u32>() as f64;
    let pre_start = median(
        &(0..5)
            .map(|_| run_scripts(&app, &script(&config.hooks.pre_start)))
            .collect::<Vec<_>>(),
    ) * instances;

    let options = slipway::server::ServerOptions {
        data_dir: work.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        router: "127.0.0.1:0".parse().unwrap(),
        runtime: slipway::server::RuntimeKind::Local,
        public_url: None,
        github_token: None,
        github: Default::default(),
        output_masker: None,
        router_options: Default::default(),
        read_timeout: slipway::server::DEFAULT_READ_TIMEOUT,
    };
    let server = slipway::server::start(options)
        .await
        .expect("server starts");
    let token = std::fs::read_to_string(&server.admin_token_path).unwrap();
    let client = Client::new(
        &format!("http://{}", server.api_addr),
        token.trim().to_owned(),
    );
    let env = EnvKey::new("hello", "bench");

    let mut overheads = Vec::new();
    let mut walls = Vec::new();
    let mut per_step: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for round in 0..DEPLOYS {
        std::fs::write(app.join("VERSION"), format!("{round}\n")).unwrap();
        let tarball = slipway::source::upload::pack(&app).unwrap();
        let op = client.upload(&env, tarball, None).await.expect("upload");
        let detail = wait_finished(&client, op.id.0).await;
        assert_eq!(
            detail["state"], "succeeded",
            "deploy {round} failed: {detail}"
        );
        let wall = (detail["finished_at"].as_i64().unwrap()
            - detail["started_at"].as_i64().unwrap()) as f64;
        let hooks: f64 = detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                matches!(
                    s["step"].as_str(),
                    Some("before_release" | "deploy_hook" | "post_deploy" | "after_hooks")
                )
            })
            .map(|s| {
                (s["finished_at"].as_i64().unwrap_or(0) - s["started_at"].as_i64().unwrap_or(0))
                    as f64
            })
            .sum();
        for step in detail["steps"].as_array().unwrap() {
            let took = (step["finished_at"].as_i64().unwrap_or(0)
                - step["started_at"].as_i64().unwrap_or(0)) as f64;
            per_step
                .entry(step["step"].as_str().unwrap_or("?").to_owned())
                .or_default()
                .push(took);
        }
        let overhead = wall - hooks - build_hook - pre_start - boot;
        walls.push(wall);
        overheads.push(overhead);
    }
    server.stop().await;
    stop_leftovers(work.path());

    let median_overhead = median(&overheads);
    let max_overhead = overheads.iter().cloned().fold(f64::MIN, f64::max);
    let report = format!(
        "deploy_overhead: {DEPLOYS} deploys of examples/hello (2 web instances, every hook)\n\
         baseline app boot to healthy (by hand): median {boot:.0} ms\n\
         baseline hooks by hand: build {build_hook:.0} ms, pre_start x{instances} {pre_start:.0} ms\n\
         deploy wall time: median {:.0} ms, max {:.0} ms\n\
         orchestration overhead (wall - hooks - boot): median {median_overhead:.0} ms, max {max_overhead:.0} ms (target: median < 300 ms)\n\
         ratio of median wall time to the app's own boot: {:.2}\n",
        median(&walls),
        walls.iter().cloned().fold(f64::MIN, f64::max),
        median(&walls) / boot,
    );
    let steps: Vec<String> = per_step
        .iter()
        .map(|(step, times)| format!("{step} {:.0}", median(times)))
        .collect();
    let report = format!("{report}median ms per step: {}\n", steps.join(", "));
    print!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-deploy-overhead.txt", &report);
}

async fn wait_finished(client: &Client, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let detail = client.get_operation(id).await.expect("operation");
        let state = detail["state"].as_str().unwrap_or_default().to_owned();
        if !matches!(state.as_str(), "queued" | "running") {
            return detail;
        }
        assert!(Instant::now() < deadline, "deploy {id} did not end");
        let _ = client.log_page(id, i64::MAX, true).await;
    }
}

/// Milliseconds from spawning the app to its first 200 on /healthcheck.
fn boot_to_healthy(app: &Path) -> f64 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let mut child = Command::new("sh")
        .args(["-c", "exec python3 app.py"])
        .current_dir(app)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let deadline = started + Duration::from_secs(30);
    let took = loop {
        if healthy(port) {
            break started.elapsed();
        }
        assert!(Instant::now() < deadline, "the app did not boot");
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = child.kill();
    let _ = child.wait();
    took.as_secs_f64() * 1000.0
}

fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

/// Milliseconds to run scripts with `sh -c`, in the app folder, one after another.
fn run_scripts(app: &Path, scripts: &[String]) -> f64 {
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    for script in scripts {
        let status = Command::new("sh")
            .args(["-c", script])
            .current_dir(app)
            .env("SLIPWAY_APP_DIR", app)
            .env("SLIPWAY_CACHE_DIR", cache.path())
            .env("SLIPWAY_ENVIRONMENT", "bench")
            .stdout(Stdio::null())
            .status()
            .expect("sh");
        assert!(status.success(), "hook script failed: {script}");
    }
    started.elapsed().as_secs_f64() * 1000.0
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The app's instances outlive the server (by design); stop them.
fn stop_leftovers(work: &Path) {
    let _ = Command::new("pkill")
        .arg("-f")
        .arg(format!("{}", work.display()))
        .status();
    let _ = Command::new("sh")
        .args(["-c", &format!("for p in /proc/[0-9]*; do case \"$(readlink $p/cwd)\" in {}*) kill -9 ${{p#/proc/}};; esac; done", work.display())])
        .status();
}
