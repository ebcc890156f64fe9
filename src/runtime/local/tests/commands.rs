//! Hooks run in an ephemeral instance: how a script fails, its output in the log, and
//! that neither a timeout nor a forked daemon leaves a process behind.

use std::fs;
use std::time::{Duration, Instant};

use super::*;
use crate::pipeline::log::LOG_CAP_BYTES;
use crate::pipeline::traits::{CommandOutcome, Runtime};
use crate::runtime::local::command::{execute, Execution};
use crate::runtime::local::LocalRuntime;

const MINUTE: Duration = Duration::from_secs(60);

struct Fixture {
    _data: tempfile::TempDir,
    app: tempfile::TempDir,
    runtime: LocalRuntime,
}

impl Fixture {
    fn new() -> Self {
        let (data, app) = (
            tempfile::tempdir().expect("data"),
            tempfile::tempdir().expect("app"),
        );
        let runtime = LocalRuntime::new(data.path().to_owned());
        Self {
            _data: data,
            app,
            runtime,
        }
    }

    async fn run(&self, spec: &CommandSpec) -> (CommandOutcome, Vec<String>) {
        let (log, store) = recorded_log(&[]);
        let outcome = self
            .runtime
            .run(&directory(self.app.path()), spec, &log)
            .await
            .expect("run");
        (outcome, store.lines())
    }

    fn pid_in(&self, file: &str) -> i32 {
        fs::read_to_string(self.app.path().join(file))
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid")
    }
}

#[tokio::test]
async fn a_script_fails_on_its_last_command_unless_it_sets_e() {
    let fixture = Fixture::new();
    let (outcome, _) = fixture
        .run(&script("before_release", "false; echo after", MINUTE))
        .await;
    assert_eq!(outcome, CommandOutcome::Exited(0));

    let (outcome, _) = fixture
        .run(&script("before_release", "echo before; exit 7", MINUTE))
        .await;
    assert_eq!(outcome, CommandOutcome::Exited(7));

    let (outcome, lines) = fixture
        .run(&script(
            "before_release",
            "set -e\nfalse\necho never",
            MINUTE,
        ))
        .await;
    assert_eq!(outcome, CommandOutcome::Exited(1));
    assert!(lines.is_empty(), "{lines:?}");

    let (outcome, _) = fixture
        .run(&script("before_release", "kill -KILL $$", MINUTE))
        .await;
    assert_eq!(outcome, CommandOutcome::Signalled(9));
}

#[tokio::test]
async fn output_lines_reach_the_log_in_order_and_in_batches() {
    let fixture = Fixture::new();
    let (log, store) = recorded_log(&[]);
    let counting = "i=1; while [ $i -le 500 ]; do echo \"line $i\"; i=$((i + 1)); done";
    let outcome = fixture
        .runtime
        .run(
            &directory(fixture.app.path()),
            &script("deploy", counting, MINUTE),
            &log,
        )
        .await
        .expect("run");
    assert_eq!(outcome, CommandOutcome::Exited(0));
    let expected: Vec<String> = (1..=500).map(|i| format!("[deploy] line {i}")).collect();
    assert_eq!(store.lines(), expected);
    assert!(
        store.appends() < 100,
        "500 lines took {} writes",
        store.appends()
    );
}

#[tokio::test]
async fn a_flood_on_one_line_is_cut_not_buffered() {
    let fixture = Fixture::new();
    let flood = "head -c 1000000 /dev/zero | tr '\\000' a; echo; echo next";
    let (outcome, lines) = fixture.run(&script("hook", flood, MINUTE)).await;
    assert_eq!(outcome, CommandOutcome::Exited(0));
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with("a [line cut]") && lines[0].len() < 9 * 1024,
        "{}",
        lines[0].len()
    );
    assert_eq!(lines[1], "[hook] next");
}

#[tokio::test]
async fn a_command_gets_its_env_and_cwd_and_not_the_servers_env() {
    let fixture = Fixture::new();
    fs::create_dir(fixture.app.path().join("sub")).expect("sub");
    let mut spec = script("hook", "pwd; echo \"greeting=$GREETING\"; env", MINUTE);
    spec.env.insert("GREETING".into(), "hello".into());
    spec.cwd = Some("sub".into());
    let (_, lines) = fixture.run(&spec).await;
    assert!(lines[0].ends_with("/sub"), "{lines:?}");
    assert_eq!(lines[1], "[hook] greeting=hello");
    // Cargo gives the test process variables of its own; none of them reach a hook.
    if let Some((server_only, _)) = std::env::vars().find(|(key, _)| key.starts_with("CARGO")) {
        assert!(
            !lines
                .iter()
                .any(|line| line.starts_with(&format!("[hook] {server_only}="))),
            "{lines:?}"
        );
    }
}

#[tokio::test]
async fn a_hook_that_times_out_is_killed_with_its_children() {
    let fixture = Fixture::new();
    let spec = script(
        "post_deploy",
        "sleep 1000 & echo $! > child.pid; sleep 1000",
        Duration::from_millis(500),
    );
    let (outcome, lines) = fixture.run(&spec).await;
    assert_eq!(outcome, CommandOutcome::TimedOut);
    assert_eq!(
        lines,
        ["[post_deploy] timed out after 500ms: stopped with SIGTERM"]
    );
    let child = fixture.pid_in("child.pid");
    assert!(
        eventually(Duration::from_secs(5), || async { !pid_exists(child) }).await,
        "the hook's child was killed"
    );
}

/// Every way a hook can leave a daemon behind: in its group (`&`, `nohup`), or out of it
/// (`setsid`, a double fork through a subshell that exits, `setsid` with its output
/// closed). Each hook returns at once, says what it left, and nothing of it lives on.
#[tokio::test]
async fn a_hook_that_forks_a_daemon_returns_and_the_daemon_is_gone_whichever_way_it_forked() {
    let fixture = Fixture::new();
    let cases = [
        ("background", "sleep 1000 & echo $! > daemon.pid"),
        (
            "nohup",
            "nohup sleep 1000 > /dev/null 2>&1 & echo $! > daemon.pid",
        ),
        ("setsid", "setsid sleep 1000 & echo $! > daemon.pid"),
        (
            "double fork",
            "(sleep 1000 > /dev/null 2>&1 & echo $! > daemon.pid) &",
        ),
        (
            "setsid, output closed",
            "setsid sh -c 'echo $$ > daemon.pid; exec sleep 1000' < /dev/null > /dev/null 2>&1 &\n\
             while [ ! -s daemon.pid ]; do sleep 0.01; done",
        ),
    ];
    for (case, daemon) in cases {
        let _ = fs::remove_file(fixture.app.path().join("daemon.pid"));
        let spec = script(
            "post_deploy",
            &format!("{daemon}\nwhile [ ! -s daemon.pid ]; do sleep 0.01; done; echo done"),
            MINUTE,
        );
        let started = Instant::now();
        let (outcome, lines) = tokio::time::timeout(Duration::from_secs(20), fixture.run(&spec))
            .await
            .unwrap_or_else(|_| panic!("{case}: the hook did not return"));
        assert_eq!(outcome, CommandOutcome::Exited(0), "{case}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{case}: took {:?}",
            started.elapsed()
        );
        let daemon = fixture.pid_in("daemon.pid");
        assert_eq!(lines[0], "[post_deploy] done", "{case}: {lines:?}");
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("[post_deploy] killed ")
                // `setsid` may not have become `sleep` yet: the pid is what counts.
                && line.contains(&format!(": {daemon} ("))
                && line.contains("a hook's processes end with it")),
            "{case}: {lines:?}"
        );
        assert!(
            eventually(Duration::from_secs(5), || async { !running(daemon) }).await,
            "{case}: the daemon {daemon} still runs"
        );
    }
}

#[tokio::test]
async fn a_hook_that_ignores_sigterm_is_killed_after_the_grace_and_the_log_says_so() {
    let fixture = Fixture::new();
    let (log, store) = recorded_log(&[]);
    let argv = [
        "sh".to_owned(),
        "-c".to_owned(),
        "trap '' TERM; echo $$ > hook.pid; while true; do sleep 0.05; done".to_owned(),
    ];
    let started = Instant::now();
    let outcome = execute(Execution {
        argv: &argv,
        cwd: fixture.app.path(),
        env: BTreeMap::from([("PATH".to_owned(), std::env::var("PATH").unwrap_or_default())]),
        timeout: Duration::from_millis(300),
        kill_grace: Duration::from_millis(700),
        output: Some((&log, "deploy")),
        scope: "test",
    })
    .await
    .expect("runs");
    assert_eq!(outcome, CommandOutcome::TimedOut);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        store.lines().first().map(String::as_str),
        Some("[deploy] timed out after 300ms; ignored SIGTERM for 700ms: killed with SIGKILL")
    );
    let hook = fixture.pid_in("hook.pid");
    assert!(eventually(Duration::from_secs(5), || async { !running(hook) }).await);
}

/// 30 MB of output: the log keeps its cap's worth, one line says it is capped and one
/// how much more was not kept, and the rest is read without being split into lines —
/// the hook is neither blocked nor slowed.
#[tokio::test]
async fn a_flood_past_the_log_cap_is_drained_and_reported() {
    let fixture = Fixture::new();
    let spec = script(
        "before_release",
        "yes | head -c 30000000; echo done",
        MINUTE,
    );
    let started = Instant::now();
    let (outcome, lines) = fixture.run(&spec).await;
    assert_eq!(outcome, CommandOutcome::Exited(0));
    let kept: usize = lines.iter().map(|line| line.len() + 1).sum();
    assert!(kept <= LOG_CAP_BYTES as usize + 1024, "{kept} bytes kept");
    let capped = lines
        .iter()
        .position(|line| line.starts_with("[log capped at 10 MiB"))
        .expect("a line says the log is capped");
    assert_eq!(capped, lines.len() - 2, "{:?}", &lines[capped..]);
    let last = lines.last().expect("a last line");
    assert!(
        last.starts_with("[before_release] ")
            && last.ends_with(
                " MiB more of output not kept: an operation's log keeps at most 10 MiB of output"
            ),
        "{last}"
    );
    assert!(!lines.iter().any(|line| line == "[before_release] done"));
    eprintln!("30 MB of output took {:?}", started.elapsed());
}

/// Alive and not a zombie: an orphan is reaped by whoever adopted it, in its own time.
fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            != Some("Z")
    })
}

#[tokio::test]
async fn an_image_artifact_is_refused_with_a_reason() {
    let fixture = Fixture::new();
    let (log, _) = recorded_log(&[]);
    let image = Artifact::Image {
        reference: "shop:v1".into(),
        digest: "sha256:00".into(),
    };
    let error = fixture
        .runtime
        .run(&image, &script("hook", "true", MINUTE), &log)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("docker runtime"), "{error}");
}

#[tokio::test]
async fn output_lands_in_the_real_store_in_order() {
    use crate::pipeline::model::{NewOperation, OperationKind};
    use crate::pipeline::traits::Store;
    use crate::store::SqliteStore;

    let fixture = Fixture::new();
    let store = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
    let env = EnvKey::new("shop", "staging");
    store.ensure_environment(&env).await.expect("environment");
    let operation = store
        .create_operation(NewOperation {
            env,
            kind: OperationKind::Deploy,
            source: None,
            commit: None,
            args: serde_json::Value::Null,
            initiator: "test".into(),
        })
        .await
        .expect("operation");
    let log = OperationLog::new(
        operation.id,
        store.clone(),
        Arc::new(SystemClock),
        Masker::new(["s3cret-token"]),
        LogBus::default(),
    );
    let hook = "echo one; echo two; echo \"three s3cret-token\"";
    let outcome = fixture
        .runtime
        .run(
            &directory(fixture.app.path()),
            &script("before_release", hook, MINUTE),
            &log,
        )
        .await
        .expect("run");
    assert_eq!(outcome, CommandOutcome::Exited(0));
    let lines: Vec<String> = store
        .log_lines(operation.id, 0, 100)
        .await
        .expect("lines")
        .into_iter()
        .map(|line| line.text)
        .collect();
    assert_eq!(
        lines,
        [
            "[before_release] one",
            "[before_release] two",
            "[before_release] three ****"
        ]
    );
}
