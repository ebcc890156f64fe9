//! Instances: started detached with a port and a log file, checked, re-adopted by a
//! restarted server, and stopped gracefully or killed after the grace.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::model::{HealthCheck, HttpHealth};
use crate::ids::ServiceName;
use crate::pipeline::traits::{InstanceSpec, Runtime, StopOutcome};
use crate::runtime::local::LocalRuntime;

const WAIT: Duration = Duration::from_secs(20);

struct Fixture {
    data: tempfile::TempDir,
    /// An artifact where builds put them, so a restarted server recognises its instances.
    app: PathBuf,
    runtime: LocalRuntime,
    /// Process groups to kill if a test fails before stopping its instances: instances
    /// outlive the server by design, and must not outlive a failed test.
    started: std::sync::Mutex<Vec<i32>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for pgid in self
            .started
            .lock()
            .map(|pids| pids.clone())
            .unwrap_or_default()
        {
            crate::runtime::local::process::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Fixture {
    fn new() -> Self {
        let data = tempfile::tempdir().expect("data");
        let app = data.path().join("artifacts/k1");
        fs::create_dir_all(&app).expect("artifact");
        let runtime = LocalRuntime::new(data.path().to_owned());
        Self {
            data,
            app,
            runtime,
            started: Default::default(),
        }
    }

    async fn start(&self, spec: &InstanceSpec, log: &OperationLog) -> InstanceRecord {
        let instance = self.runtime.start(spec, log).await.expect("start");
        let pgid = instance.handle.parse().expect("a pid");
        self.started.lock().expect("started").push(pgid);
        instance
    }

    fn spec(&self, service: &str, command: &str, http: bool) -> InstanceSpec {
        InstanceSpec {
            env: EnvKey::new("shop", "staging"),
            operation: OperationId(7),
            service: ServiceName::new(service),
            release: ReleaseNumber(3),
            index: 1,
            artifact: directory(&self.app),
            command: command.to_owned(),
            pre_start: None,
            env_vars: BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]),
            http,
            size_mb: 512,
            stop_timeout: Duration::from_secs(10),
        }
    }

    fn log_file(&self, service: &str) -> PathBuf {
        self.data
            .path()
            .join(format!("logs/shop/staging/{service}.1.log"))
    }

    async fn log_file_contains(&self, service: &str, text: &str) -> bool {
        let path = self.log_file(service);
        eventually(WAIT, || async {
            fs::read_to_string(&path).is_ok_and(|log| log.contains(text))
        })
        .await
    }
}

fn strict_root() -> HealthCheck {
    HealthCheck::Http(HttpHealth {
        path: "/".into(),
        strict: true,
        ..HttpHealth::default()
    })
}

#[tokio::test]
async fn an_http_instance_gets_a_port_answers_and_stops_on_sigterm() {
    let fixture = Fixture::new();
    let (log, store) = recorded_log(&[]);
    let spec = fixture.spec(
        "web",
        "exec python3 -m http.server $PORT --bind 127.0.0.1",
        true,
    );
    let instance = fixture.start(&spec, &log).await;

    assert_eq!(instance.id, "shop-staging-web-v3-1-op7");
    let address = instance
        .address
        .clone()
        .expect("an http instance has an address");
    assert!(address.starts_with("127.0.0.1:"));
    assert_eq!(
        store.lines(),
        [format!(
            "started web.1 (pid {}) on {address}",
            instance.handle
        )]
    );
    assert!(fixture.runtime.is_running(&instance).await);

    let artifact = spec.artifact.clone();
    let healthy = eventually(WAIT, || async {
        fixture
            .runtime
            .check(&instance, &strict_root(), &artifact)
            .await
            .is_ok()
    });
    assert!(healthy.await, "the instance answers on its port");
    let port = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let tcp = HealthCheck::Tcp {
        port,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        deadline: WAIT,
    };
    assert_eq!(
        fixture.runtime.check(&instance, &tcp, &artifact).await,
        Ok(())
    );
    assert!(
        fixture
            .log_file_contains("web", "\"GET / HTTP/1.1\" 200")
            .await,
        "the request is in the instance's log file"
    );

    let stopped = fixture
        .runtime
        .stop(&instance, Duration::from_secs(10))
        .await
        .expect("stop");
    assert_eq!(stopped, StopOutcome::Exited);
    assert!(!fixture.runtime.is_running(&instance).await);
    assert_eq!(
        fixture
            .runtime
            .check(&instance, &strict_root(), &artifact)
            .await,
        Err("the instance is not running".into())
    );
    assert_eq!(
        fixture
            .runtime
            .stop(&instance, Duration::from_secs(1))
            .await
            .expect("stop again"),
        StopOutcome::AlreadyGone
    );
}

#[tokio::test]
async fn an_instance_that_ignores_sigterm_is_killed_after_the_grace() {
    let fixture = Fixture::new();
    let (log, _) = recorded_log(&[]);
    let command = "echo \"worker says $GREETING\"; trap '' TERM; while :; do sleep 0.1; done";
    let instance = fixture
        .start(&fixture.spec("worker", command, false), &log)
        .await;
    assert_eq!(instance.address, None);
    assert!(fixture.log_file_contains("worker", "worker says hi").await);

    let stopped = fixture
        .runtime
        .stop(&instance, Duration::from_millis(300))
        .await
        .expect("stop");
    assert_eq!(stopped, StopOutcome::Killed);
    assert!(!fixture.runtime.is_running(&instance).await);
    assert!(
        fixture
            .log_file_contains("worker", "==> worker.1 ended: killed by signal 9")
            .await
    );
}

#[tokio::test]
async fn pre_start_runs_with_the_port_and_its_failure_fails_the_start() {
    let fixture = Fixture::new();
    let (log, store) = recorded_log(&[]);
    let mut spec = fixture.spec("web", "exec sleep 1000", true);
    spec.pre_start = Some(vec![script(
        "pre_start",
        "echo \"warming on $PORT\"; exit 4",
        Duration::from_secs(60),
    )]);

    let error = fixture.runtime.start(&spec, &log).await.expect_err("fails");
    assert_eq!(error.to_string(), "pre_start failed: exit code 4");
    let lines = store.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("[pre_start] warming on ")
            && lines[0].len() > "[pre_start] warming on ".len()
    );
    assert!(
        !fixture.log_file("web").exists(),
        "the command never started"
    );
}

#[tokio::test]
async fn a_restarted_server_adopts_its_instances_but_no_stranger() {
    let fixture = Fixture::new();
    let (log, _) = recorded_log(&[]);
    let instance = fixture
        .start(&fixture.spec("worker", "exec sleep 1000", false), &log)
        .await;

    let restarted = LocalRuntime::new(fixture.data.path().to_owned());
    assert!(restarted.is_running(&instance).await);
    let artifact = directory(&fixture.app);
    assert_eq!(
        restarted
            .check(&instance, &HealthCheck::Uptime(Duration::ZERO), &artifact)
            .await,
        Ok(())
    );
    assert_eq!(
        restarted
            .check(
                &instance,
                &HealthCheck::Uptime(Duration::from_secs(3600)),
                &artifact
            )
            .await,
        Err("up for 0s of 1h".into())
    );

    // A pid recorded before a reboot may now be anyone's: this test process, say.
    let mut stranger = instance.clone();
    stranger.handle = std::process::id().to_string();
    assert!(!restarted.is_running(&stranger).await);
    assert_eq!(
        restarted
            .stop(&stranger, Duration::from_secs(1))
            .await
            .expect("stop"),
        StopOutcome::AlreadyGone
    );

    assert_eq!(
        restarted
            .stop(&instance, Duration::from_secs(10))
            .await
            .expect("stop"),
        StopOutcome::Exited
    );
    assert!(!restarted.is_running(&instance).await);
    assert!(!fixture.runtime.is_running(&instance).await);
}

#[tokio::test]
async fn a_command_check_is_healthy_on_exit_zero() {
    let fixture = Fixture::new();
    let (log, _) = recorded_log(&[]);
    let instance = fixture
        .start(&fixture.spec("worker", "exec sleep 1000", false), &log)
        .await;
    let artifact = directory(&fixture.app);
    let check = |command: &str, timeout| HealthCheck::Command {
        command: command.to_owned(),
        interval: Duration::from_secs(1),
        timeout,
        deadline: WAIT,
    };
    let second = Duration::from_secs(1);
    assert_eq!(
        fixture
            .runtime
            .check(&instance, &check("test -f ready", second), &artifact)
            .await,
        Err("the check command failed: exit code 1".into())
    );
    fs::write(fixture.app.join("ready"), "").expect("ready");
    assert_eq!(
        fixture
            .runtime
            .check(&instance, &check("test -f ready", second), &artifact)
            .await,
        Ok(())
    );
    let hanging = check("sleep 1000", Duration::from_millis(200));
    assert_eq!(
        fixture.runtime.check(&instance, &hanging, &artifact).await,
        Err("no answer within 200ms".into())
    );
    fixture
        .runtime
        .stop(&instance, Duration::from_secs(5))
        .await
        .expect("stop");
}
