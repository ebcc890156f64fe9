//! A server killed in the middle of an operation and started again on the same state:
//! the interrupted operation ends as its recorded steps allow (switched: succeeded, not
//! switched: rolled back), one release serves, only its instances run, a hook that had
//! started is not run again, and what was left is done.

use std::time::Duration;

use super::*;
use crate::ids::ReleaseNumber;
use crate::pipeline::model::{OperationState, Step, StepRecord, StepStatus};
use crate::pipeline::traits::{Runtime, Store};

fn v(n: i64) -> ReleaseNumber {
    ReleaseNumber(n)
}

/// v1 serves c1 (web ×2, a worker that stops first); c2 is ready to deploy.
async fn world_with_v1(config: AppConfig) -> World {
    let world = World::new();
    world.commit("c1", config.clone());
    world.commit("c2", config);
    assert_eq!(world.deploy("c1").await.state, OperationState::Succeeded);
    world.events.clear();
    world
}

/// Starts a deploy of c2 whose hook `label` never ends, and waits until it runs.
async fn deploy_hanging_in(world: &World, label: &str) -> Operation {
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .hanging_hooks
        .insert(label.to_owned());
    let op = world
        .submit(OperationKind::Deploy, Some("c2"), serde_json::Value::Null)
        .await;
    world.event(&format!("hook {label}")).await;
    op
}

/// The releases of the instances still running, sorted: `web.1 v2`...
async fn running(world: &World) -> Vec<String> {
    let mut names = Vec::new();
    for instance in world.store.instances(Some(&world.env)).await.unwrap() {
        assert!(
            world.runtime.is_running(&instance).await,
            "{} is recorded but not running",
            instance.id
        );
        names.push(format!(
            "{}.{} {}",
            instance.service, instance.index, instance.release
        ));
    }
    names.sort();
    assert_eq!(
        world.runtime.running_count(),
        names.len(),
        "every running instance is recorded"
    );
    names
}

fn release_names(release: ReleaseNumber) -> Vec<String> {
    vec![
        format!("web.1 {release}"),
        format!("web.2 {release}"),
        format!("worker.1 {release}"),
    ]
}

async fn current(world: &World) -> Option<ReleaseNumber> {
    world
        .store
        .current_release(&world.env)
        .await
        .unwrap()
        .map(|r| r.number)
}

fn hooks_run(world: &World) -> Vec<String> {
    world
        .events
        .all()
        .into_iter()
        .filter(|e| e.starts_with("hook "))
        .collect()
}

/// What a crash in each hook leaves, once the next server has recovered.
struct HookCase {
    hook: &'static str,
    state: OperationState,
    serving: i64,
    /// The hooks the new server runs (none is the one that was interrupted).
    hooks_after: &'static [&'static str],
}

#[tokio::test(start_paused = true)]
async fn a_crash_in_any_hook_ends_as_the_recorded_switch_allows() {
    let cases = [
        HookCase {
            hook: "before_release",
            state: OperationState::RolledBack,
            serving: 1,
            hooks_after: &["hook after_deploy_failure v1"],
        },
        HookCase {
            hook: "deploy",
            state: OperationState::RolledBack,
            serving: 1,
            hooks_after: &["hook after_deploy_failure v1"],
        },
        HookCase {
            hook: "post_deploy",
            state: OperationState::Succeeded,
            serving: 2,
            hooks_after: &["hook after_deploy_success v2"],
        },
        HookCase {
            hook: "after_deploy_success",
            state: OperationState::Succeeded,
            serving: 2,
            hooks_after: &[],
        },
    ];
    for case in cases {
        let world = world_with_v1(config()).await;
        let op = deploy_hanging_in(&world, case.hook).await;
        let world = world.crash().await;
        world.start().await;
        let op = world.finished(op.id).await;
        let log = world.log(op.id);
        assert_eq!(op.state, case.state, "{}: {log}", case.hook);
        assert!(
            log.contains("==> recovering after a server restart: the server stopped while step"),
            "{log}"
        );
        let serving = v(case.serving);
        assert_eq!(current(&world).await, Some(serving), "{}", case.hook);
        assert_eq!(world.traffic.routed_releases(&world.env), [serving]);
        assert_eq!(
            running(&world).await,
            release_names(serving),
            "{}",
            case.hook
        );
        assert_eq!(hooks_run(&world), case.hooks_after, "{}: {log}", case.hook);
        if case.state == OperationState::Succeeded {
            assert!(
                log.contains(crate::pipeline::progress::NOT_RUN_AGAIN),
                "{log}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollback_starts_again_the_instances_that_stopped_first() {
    let world = world_with_v1(config()).await;
    // The worker (zero_downtime: false) stopped before v2 started; the deploy hook hangs.
    let op = deploy_hanging_in(&world, "deploy").await;
    assert!(world.events.all().contains(&"stop worker.1 v1".to_owned()));
    let world = world.crash().await;
    world.start().await;
    let op = world.finished(op.id).await;
    assert_eq!(op.state, OperationState::RolledBack);
    let events = world.events.all();
    assert!(
        events.contains(&"start worker.1 v1".to_owned()),
        "{events:?}"
    );
    assert_eq!(running(&world).await, release_names(v(1)));
}

/// A deploy stopped with its `deploy` hook hanging, its server killed, and the switch
/// recorded as the killed server would have left it.
async fn killed_at_the_switch(committed: bool) -> (World, Operation) {
    let world = world_with_v1(config()).await;
    let op = deploy_hanging_in(&world, "deploy").await;
    let world = world.crash().await;
    let switch = StepRecord {
        step: Step::Switch,
        status: StepStatus::Running,
        started_at: 0,
        finished_at: None,
        message: None,
    };
    world.store.record_step(op.id, &switch).await.unwrap();
    if committed {
        world
            .store
            .commit_switch(op.id, &world.env, v(2), 0)
            .await
            .unwrap();
    }
    (world, op)
}

#[tokio::test(start_paused = true)]
async fn a_switch_not_committed_is_rolled_back() {
    let (world, op) = killed_at_the_switch(false).await;
    world.start().await;
    let op = world.finished(op.id).await;
    assert_eq!(op.state, OperationState::RolledBack, "{}", world.log(op.id));
    assert_eq!(current(&world).await, Some(v(1)));
    assert_eq!(world.traffic.routed_releases(&world.env), [v(1)]);
    assert_eq!(running(&world).await, release_names(v(1)));
}

#[tokio::test(start_paused = true)]
async fn a_committed_switch_is_finished_from_where_it_stopped() {
    let (world, op) = killed_at_the_switch(true).await;
    world.start().await;
    let op = world.finished(op.id).await;
    assert_eq!(op.state, OperationState::Succeeded, "{}", world.log(op.id));
    // The router went straight to v2: v1 answered no request after the restart.
    let events = world.events.all();
    assert_eq!(events.first().map(String::as_str), Some("switch [v2]"));
    assert!(!events.iter().any(|e| e == "switch [v1]"), "{events:?}");
    assert_eq!(running(&world).await, release_names(v(2)));
    assert_eq!(
        hooks_run(&world),
        ["hook post_deploy v2", "hook after_deploy_success v2"],
        "what the killed server had not started runs"
    );
    let steps = world.store.steps(op.id).await.unwrap();
    let confirmed = steps.iter().find(|s| s.step == Step::Confirm);
    assert_eq!(confirmed.map(|s| s.status), Some(StepStatus::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn a_second_crash_keeps_a_rollback_that_the_first_recovery_decided() {
    let (world, op) = killed_at_the_switch(true).await;
    // The watch had failed: the rollout was about to switch back.
    let failed = StepRecord {
        step: Step::Watch,
        status: StepStatus::Failed,
        started_at: 0,
        finished_at: Some(0),
        message: Some("web.1 failed its health check during the watch".into()),
    };
    world.store.record_step(op.id, &failed).await.unwrap();
    // The next server decides to roll back, moves the current release back, and is
    // killed before its worker does anything more.
    world.pipeline.recover().await.unwrap();
    assert_eq!(current(&world).await, Some(v(1)));
    let world = world.crash().await;
    world.start().await;
    let op = world.finished(op.id).await;
    let log = world.log(op.id);
    assert_eq!(op.state, OperationState::RolledBack, "{log}");
    assert!(
        log.contains("it was rolling back: finishing the rollback to v1"),
        "{log}"
    );
    assert_eq!(current(&world).await, Some(v(1)));
    assert_eq!(world.traffic.routed_releases(&world.env), [v(1)]);
    assert_eq!(running(&world).await, release_names(v(1)));
    assert_eq!(hooks_run(&world), ["hook after_deploy_failure v1"]);
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_watch_goes_on_for_what_was_left_and_keeps_the_old_release_meanwhile() {
    let watched = config_with_watch(Duration::from_secs(30));
    let world = world_with_v1(watched).await;
    let op = world
        .submit(OperationKind::Deploy, Some("c2"), serde_json::Value::Null)
        .await;
    loop {
        let steps = world.store.steps(op.id).await.unwrap();
        if steps
            .iter()
            .any(|s| s.step == Step::Watch && s.status == StepStatus::Running)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let world = world.crash().await;
    let restarted = tokio::time::Instant::now();
    world.start().await;

    tokio::time::sleep(Duration::from_secs(15)).await;
    let names = running(&world).await;
    assert!(
        names.contains(&"web.1 v1".to_owned()),
        "the old release is kept while the watch goes on: {names:?}"
    );
    assert_eq!(
        world.traffic.routed_releases(&world.env),
        [v(2)],
        "and v2 serves"
    );
    let op = world.finished(op.id).await;
    let took = restarted.elapsed();
    assert_eq!(op.state, OperationState::Succeeded, "{}", world.log(op.id));
    assert!(
        took >= Duration::from_secs(19) && took <= Duration::from_secs(21),
        "the watch went on for the 20 s it had left, not {took:?}"
    );
    assert!(world.log(op.id).contains("the watch goes on"));
    assert_eq!(running(&world).await, release_names(v(2)));
}

#[tokio::test(start_paused = true)]
async fn a_deploy_with_nothing_to_change_finishes_without_running_its_hook_twice() {
    let world = world_with_v1(config()).await;
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .hanging_hooks
        .insert("post_deploy".to_owned());
    let op = world
        .submit(OperationKind::Deploy, Some("c1"), serde_json::Value::Null)
        .await;
    world.event("hook post_deploy").await;
    let world = world.crash().await;
    world.start().await;
    let op = world.finished(op.id).await;
    let log = world.log(op.id);
    assert_eq!(op.state, OperationState::Succeeded, "{log}");
    assert!(log.contains("nothing needed to change"), "{log}");
    assert_eq!(hooks_run(&world), ["hook after_deploy_success v1"]);
    assert_eq!(running(&world).await, release_names(v(1)));
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_teardown_runs_again() {
    let world = world_with_v1(config()).await;
    world.runtime.behaviour.lock().unwrap().ignore_sigterm = true;
    let op = world
        .submit(OperationKind::Teardown, None, serde_json::Value::Null)
        .await;
    world.event("stop web.1 v1").await;
    // Killed while the instances ignore SIGTERM, before their stop timeout.
    let world = world.crash().await;
    world.runtime.behaviour.lock().unwrap().ignore_sigterm = false;
    world.start().await;
    let op = world.finished(op.id).await;
    assert_eq!(op.state, OperationState::Succeeded, "{}", world.log(op.id));
    assert!(world.traffic.routed_releases(&world.env).is_empty());
    assert_eq!(current(&world).await, None);
    assert_eq!(running(&world).await, Vec::<String>::new());
}
