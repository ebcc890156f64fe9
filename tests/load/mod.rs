//! A storm of signed push deliveries across many apps, shared by `tests/github_load.rs`
//! (a short one, in CI) and `benches/webhook_load.rs` (200 a second for a minute).
//!
//! Each app is a real git repository (`acme/appNN`, served to the server through
//! `--github-git-url file://...`) with one commit per push to come, each changing only
//! `VERSION`; every delivery is GitHub's example push payload pointed at the next commit
//! and signed with the webhook secret. Pushes go out on the schedule of the whole storm
//! (delivery `i` at `i / rate` seconds), one app after the other, each app's pushes one
//! after the other: as a repository's pushes reach GitHub, and so a later push is never
//! sent before an earlier one of the same app was answered.
//!
//! Afterwards `settle` waits until the server has worked on every delivery and ended
//! every operation, and `check` says what a user would find wrong: a delivery refused or
//! lost, an app's deploys out of order, an app not serving its last push, a commit
//! without its final status on GitHub.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{app::git_commit_all, App, Workspace};
use crate::fake_github::harness::{bare_repository, Server, DEPLOYMENT_STATUS, SECRET, STATUS};
use crate::fake_github::FakeGitHub;

/// One app of the storm: its repository and the commits its pushes name, in order.
pub struct Repo {
    pub app: String,
    pub full_name: String,
    pub shas: Vec<String>,
}

/// `count` repositories `acme/app00`…, each with `pushes` commits on `main` after the
/// first: a web app whose `VERSION` is `<app>-<k>` at the k-th push.
pub fn repositories(ws: &Workspace, count: usize, pushes: usize) -> Vec<Repo> {
    (0..count)
        .map(|i| {
            let app = format!("app{i:02}");
            let work = ws.path(&format!("work/{app}"));
            let mut model = App::new(&app, &format!("{app}-0"));
            model.environments = vec![("staging".into(), "{ branches: [main] }".into())];
            model.write(&work);
            git_commit_all(&work, "the app");
            let full_name = format!("acme/{app}");
            let bare = bare_repository(ws, &full_name, &work);
            commit_versions(&bare, &app, pushes);
            let shas = rev_list(&bare, pushes);
            Repo {
                full_name,
                app,
                shas,
            }
        })
        .collect()
}

/// `pushes` commits on `main`, each changing `VERSION`, made by one `git fast-import`.
fn commit_versions(bare: &Path, app: &str, pushes: usize) {
    let mut stream = String::new();
    for k in 1..=pushes {
        let message = format!("push {k}");
        let version = format!("{app}-{k}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter Load <load@example.com> {} +0000\ndata {}\n{message}\n",
            1_700_000_000 + k,
            message.len() + 1,
        ));
        if k == 1 {
            stream.push_str("from refs/heads/main^0\n");
        }
        stream.push_str(&format!(
            "M 100644 inline VERSION\ndata {}\n{version}\n",
            version.len()
        ));
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(bare)
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("the commits");
    assert!(child.wait().expect("fast-import ends").success());
}

/// The last `count` commits of `main`, oldest first.
fn rev_list(bare: &Path, count: usize) -> Vec<String> {
    let out = Command::new("git")
        .args([
            "rev-list",
            "--reverse",
            &format!("--max-count={count}"),
            "main",
        ])
        .current_dir(bare)
        .output()
        .expect("git rev-list");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One delivery as sent: which app, which push, when, and what came back.
#[derive(Clone, Debug)]
pub struct Sent {
    pub app: usize,
    pub push: usize,
    pub delivery: String,
    pub status: u16,
    pub latency: Duration,
    /// How late it left against the storm's schedule.
    pub lag: Duration,
}

/// What the sender saw.
pub struct Intake {
    pub sent: Vec<Sent>,
    pub elapsed: Duration,
    /// The server's resident memory, sampled every 100 ms: the largest and the last (KiB).
    pub peak_rss_kib: u64,
}

impl Intake {
    pub fn rate(&self) -> f64 {
        self.sent.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn accepted(&self) -> usize {
        self.sent.iter().filter(|s| s.status == 202).count()
    }

    /// Non-202 answers by status (0: no answer at all).
    pub fn refused(&self) -> Vec<(u16, usize)> {
        let mut by: HashMap<u16, usize> = HashMap::new();
        for s in self.sent.iter().filter(|s| s.status != 202) {
            *by.entry(s.status).or_default() += 1;
        }
        let mut by: Vec<_> = by.into_iter().collect();
        by.sort();
        by
    }

    /// Intake latency (request sent → 202 read) at quantile `q`, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        let mut all: Vec<Duration> = self.sent.iter().map(|s| s.latency).collect();
        all.sort();
        quantile(&all, q).as_secs_f64() * 1000.0
    }

    pub fn max_lag(&self) -> Duration {
        self.sent.iter().map(|s| s.lag).max().unwrap_or_default()
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// GitHub's example push payload, made the `push`-th push of `repo` (1-based).
fn payload(template: &Value, repo: &Repo, push: usize) -> Vec<u8> {
    let mut payload = template.clone();
    let before = if push >= 2 {
        repo.shas[push - 2].clone()
    } else {
        "0".repeat(40)
    };
    let sha = &repo.shas[push - 1];
    payload["ref"] = json!("refs/heads/main");
    payload["before"] = json!(before);
    payload["after"] = json!(sha);
    payload["head_commit"]["id"] = json!(sha);
    payload["repository"]["full_name"] = json!(repo.full_name);
    payload["repository"]["name"] = json!(repo.app);
    payload.to_string().into_bytes()
}

fn template() -> Value {
    let file = format!(
        "{}/../shared/fixtures/github-webhooks/push/octokit-webhooks.js/push-payload.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(file).expect("the push fixture"))
        .expect("the push fixture is JSON")
}

/// Sends every repository's pushes, `rate` deliveries a second in all, each on a
/// connection of its own (as GitHub sends them); samples the server's memory meanwhile.
pub fn storm(server: &Server, repos: &[Repo], rate: f64) -> Intake {
    let template = template();
    let apps = repos.len();
    let pushes = repos.iter().map(|r| r.shas.len()).min().unwrap_or(0);
    // Every body signed before the clock starts: the storm measures the server.
    let bodies: Vec<Vec<(String, Vec<u8>, String)>> = repos
        .iter()
        .enumerate()
        .map(|(i, repo)| {
            (1..=pushes)
                .map(|k| {
                    let body = payload(&template, repo, k);
                    let signature = slipway::github::signature::sign(SECRET.as_bytes(), &body);
                    (format!("load-{i:02}-{k:05}"), body, signature)
                })
                .collect()
        })
        .collect();
    let url = format!("{}/webhooks/github", server.api);
    let pid = server.pid();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let peak = Arc::new(Mutex::new(0u64));
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client");
        let done = tokio_util::sync::CancellationToken::new();
        let sampler = {
            let (done, peak) = (done.clone(), peak.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while !done.is_cancelled() {
                    tick.tick().await;
                    let rss = rss_kib(pid);
                    let mut peak = peak.lock().unwrap_or_else(|e| e.into_inner());
                    *peak = (*peak).max(rss);
                }
            })
        };
        let start = tokio::time::Instant::now();
        let senders: Vec<_> = bodies
            .into_iter()
            .enumerate()
            .map(|(app, bodies)| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let mut sent = Vec::with_capacity(bodies.len());
                    for (k, (delivery, body, signature)) in bodies.into_iter().enumerate() {
                        let due = start + Duration::from_secs_f64((k * apps + app) as f64 / rate);
                        tokio::time::sleep_until(due).await;
                        let lag = tokio::time::Instant::now().saturating_duration_since(due);
                        let began = Instant::now();
                        let status = client
                            .post(&url)
                            .header("X-GitHub-Event", "push")
                            .header("X-GitHub-Delivery", &delivery)
                            .header("X-Hub-Signature-256", signature)
                            .header("Content-Type", "application/json")
                            .header("User-Agent", "GitHub-Hookshot/load")
                            .body(body)
                            .send()
                            .await;
                        let status = match status {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let _ = response.bytes().await;
                                status
                            }
                            Err(_) => 0,
                        };
                        sent.push(Sent {
                            app,
                            push: k + 1,
                            delivery,
                            status,
                            latency: began.elapsed(),
                            lag,
                        });
                    }
                    sent
                })
            })
            .collect();
        let mut sent = Vec::new();
        for sender in senders {
            sent.extend(sender.await.expect("a sender"));
        }
        let elapsed = start.elapsed();
        done.cancel();
        let _ = sampler.await;
        let peak_rss_kib = *peak.lock().unwrap_or_else(|e| e.into_inner());
        Intake {
            sent,
            elapsed,
            peak_rss_kib,
        }
    })
}

/// Resident memory of a process (KiB); 0 once it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    field_kib(pid, "VmRSS:")
}

/// `VmHWM`, the largest resident memory a process ever had (KiB).
pub fn peak_rss_kib(pid: u32) -> u64 {
    field_kib(pid, "VmHWM:")
}

fn field_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// What the server recorded, read from its SQLite file once it settled.
pub struct Recorded {
    /// Delivery id → (worked on, outcome).
    pub deliveries: HashMap<String, (bool, String)>,
    /// Per app: its operations, oldest first: (id, commit, state).
    pub operations: HashMap<String, Vec<(i64, String, String)>>,
    /// Per app: the commit its current release was built from.
    pub current: HashMap<String, String>,
    /// How long after the storm the last delivery was worked on, the last operation
    /// ended and the last report reached GitHub.
    pub settled_after: Duration,
}

/// Waits (at most `limit`) until every delivery has been worked on and no operation is
/// queued or running; then reads what the server recorded.
pub fn settle(ws: &Workspace, limit: Duration) -> Recorded {
    let began = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let path = ws.data_dir().join("slipway.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::SqlitePool::connect_with(options)
            .await
            .expect("the server's database opens");
        loop {
            let (pending,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM github_deliveries WHERE processed_at IS NULL")
                    .fetch_one(&pool)
                    .await
                    .expect("deliveries");
            let (busy,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM operations WHERE state IN ('queued', 'running')",
            )
            .fetch_one(&pool)
            .await
            .expect("operations");
            let (unsent,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM github_outbox WHERE done_at IS NULL")
                    .fetch_one(&pool)
                    .await
                    .expect("outbox");
            if pending == 0 && busy == 0 && unsent == 0 {
                break;
            }
            assert!(
                began.elapsed() < limit,
                "after {limit:?}, {pending} deliveries still to be worked on, {busy} operations \
                 queued or running and {unsent} requests to GitHub not sent"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let settled_after = began.elapsed();
        let rows: Vec<(String, bool, Option<String>)> =
            sqlx::query_as("SELECT id, processed_at IS NOT NULL, outcome FROM github_deliveries")
                .fetch_all(&pool)
                .await
                .expect("deliveries");
        let deliveries = rows
            .into_iter()
            .map(|(id, done, outcome)| (id, (done, outcome.unwrap_or_default())))
            .collect();
        let rows: Vec<(String, i64, Option<String>, String)> =
            sqlx::query_as("SELECT app, id, commit_sha, state FROM operations ORDER BY id")
                .fetch_all(&pool)
                .await
                .expect("operations");
        let mut operations: HashMap<String, Vec<(i64, String, String)>> = HashMap::new();
        for (app, id, commit, state) in rows {
            operations
                .entry(app)
                .or_default()
                .push((id, commit.unwrap_or_default(), state));
        }
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT e.app, r.commit_sha FROM environments e JOIN releases r \
             ON r.app = e.app AND r.env = e.name AND r.number = e.current_release",
        )
        .fetch_all(&pool)
        .await
        .expect("current releases");
        let current = rows
            .into_iter()
            .map(|(app, commit)| (app, commit.unwrap_or_default()))
            .collect();
        pool.close().await;
        Recorded {
            deliveries,
            operations,
            current,
            settled_after,
        }
    })
}

/// Everything a user would find wrong after the storm; empty when nothing is.
pub fn check(
    server: &Server,
    fake: &FakeGitHub,
    repos: &[Repo],
    intake: &Intake,
    recorded: &Recorded,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (status, count) in intake.refused() {
        problems.push(format!("{count} deliveries answered {status}, not 202"));
    }
    let lost: Vec<_> = intake
        .sent
        .iter()
        .filter(|s| s.status == 202)
        .filter(|s| !recorded.deliveries.get(&s.delivery).is_some_and(|d| d.0))
        .map(|s| s.delivery.clone())
        .collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} accepted deliveries were never worked on, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(3)]
        ));
    }
    let failed: Vec<_> = recorded
        .deliveries
        .iter()
        .filter(|(_, (_, outcome))| outcome.starts_with("failed"))
        .map(|(id, (_, outcome))| format!("{id}: {outcome}"))
        .collect();
    if !failed.is_empty() {
        problems.push(format!(
            "{} deliveries failed, e.g. {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        ));
    }
    let accepted = fake.accepted();
    // The commits that got a final status: `.../statuses/{sha}`.
    let reported: std::collections::HashSet<String> = accepted
        .iter()
        .filter(|r| r.operation().as_deref() == Some(STATUS))
        .filter(|r| r.body["state"] != "pending")
        .filter_map(|r| r.path.rsplit('/').next().map(str::to_owned))
        .collect();
    let deployment_statuses = accepted
        .iter()
        .filter(|r| r.operation().as_deref() == Some(DEPLOYMENT_STATUS))
        .count();
    if deployment_statuses == 0 {
        problems.push("GitHub got no deployment status at all".into());
    }
    for repo in repos {
        let index: HashMap<&str, usize> = repo
            .shas
            .iter()
            .enumerate()
            .map(|(k, sha)| (sha.as_str(), k + 1))
            .collect();
        let ops = recorded
            .operations
            .get(&repo.app)
            .cloned()
            .unwrap_or_default();
        // In order: each operation deploys a later push than the one before it, and
        // the ones that ran succeeded in that order.
        let pushes: Vec<usize> = ops
            .iter()
            .map(|(_, commit, _)| index.get(commit.as_str()).copied().unwrap_or(0))
            .collect();
        if let Some(w) = pushes.windows(2).find(|w| w[0] >= w[1]) {
            problems.push(format!(
                "{}: an operation of push {} was queued after one of push {}",
                repo.app, w[1], w[0]
            ));
        }
        if let Some((id, _, state)) = ops
            .iter()
            .find(|(_, _, s)| s != "succeeded" && s != "superseded")
        {
            problems.push(format!("{}: operation {id} ended {state}", repo.app));
        }
        // Nothing dropped: every push accepted is deployed or superseded by a later one.
        let covered: std::collections::HashSet<usize> = pushes.iter().copied().collect();
        let missing: Vec<usize> = intake
            .sent
            .iter()
            .filter(|s| repos[s.app].app == repo.app && s.status == 202)
            .map(|s| s.push)
            .filter(|k| !covered.contains(k))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{}: {} pushes have no operation, e.g. {:?}",
                repo.app,
                missing.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        // Latest push wins: the last push is what the app serves.
        let last = repo.shas.last().expect("pushes");
        if recorded.current.get(&repo.app) != Some(last) {
            problems.push(format!(
                "{}: serves {:?}, not its last push {last}",
                repo.app,
                recorded.current.get(&repo.app)
            ));
        }
        let host = format!("{}-staging.localhost", repo.app);
        let version = server
            .app_json(&host)
            .and_then(|v| v["version"].as_str().map(str::to_owned));
        let expected = format!("{}-{}", repo.app, repo.shas.len());
        if version.as_deref() != Some(&expected) {
            problems.push(format!(
                "{host} answers version {version:?}, not {expected}"
            ));
        }
        // GitHub hears the end of every push's commit.
        let unreported = repo
            .shas
            .iter()
            .filter(|sha| !reported.contains(*sha))
            .count();
        if unreported > 0 {
            problems.push(format!(
                "{}: {unreported} commits have no final commit status on GitHub",
                repo.app
            ));
        }
    }
    problems
}
