use std::time::Duration;

use super::*;
use crate::ids::ReleaseNumber;
use crate::pipeline::model::{OperationState, Step, StepStatus};
use crate::pipeline::traits::Store;

fn v(n: i64) -> ReleaseNumber {
    ReleaseNumber(n)
}

/// Deploys c1, so that a later deploy has an old release to replace.
async fn world_with_v1() -> World {
    let world = World::new();
    world.commit("c1", config());
    world.commit("c2", config());
    assert_eq!(world.deploy("c1").await.state, OperationState::Succeeded);
    world.events.clear();
    world
}

#[tokio::test(start_paused = true)]
async fn a_deploy_runs_every_step_in_the_documented_order() {
    let world = world_with_v1().await;
    let op = world.deploy("c2").await;
    assert_eq!(op.state, OperationState::Succeeded, "{}", world.log(op.id));
    assert_eq!(
        world.events.all(),
        [
            "build c2",
            "hook before_release v2",
            // The worker may not run beside its old release: it stops first.
            "switch [v1]",
            "stop worker.1 v1",
            "start web.1 v2",
            "start web.2 v2",
            "start worker.1 v2",
            "hold",
            "hook deploy v2",
            "switch [v2]",
            "release hold",
            "stop web.1 v1",
            "stop web.2 v1",
            "hook post_deploy v2",
            "hook after_deploy_success v2",
        ]
    );
    assert_eq!(world.traffic.routed_releases(&world.env), [v(2)]);
    assert_eq!(
        (op.release_before, op.release_after),
        (Some(v(1)), Some(v(2)))
    );
    let steps: Vec<Step> = world
        .store
        .steps(op.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.step)
        .collect();
    assert_eq!(
        steps,
        [
            Step::Resolve,
            Step::Build,
            Step::BeforeRelease,
            Step::StopOld,
            Step::StartInstances,
            Step::DeployHook,
            Step::Switch,
            Step::Drain,
            Step::Confirm,
            Step::PostDeploy,
            Step::AfterHooks
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_release_that_never_becomes_healthy_is_rolled_back_and_the_old_one_keeps_serving() {
    let world = world_with_v1().await;
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .unhealthy_commits
        .insert("c2".into());
    let started = tokio::time::Instant::now();
    let op = world.deploy("c2").await;
    assert_eq!(op.state, OperationState::RolledBack);
    // The default health deadline is 60s: it passed, in paused time.
    assert!(started.elapsed() >= Duration::from_secs(60));
    assert_eq!(world.traffic.routed_releases(&world.env), [v(1)]);
    assert_eq!(
        world
            .store
            .current_release(&world.env)
            .await
            .unwrap()
            .unwrap()
            .number,
        v(1)
    );
    let events = world.events.all();
    assert!(
        !events.iter().any(|e| e == "hook deploy v2"),
        "no deploy hook for an unhealthy release: {events:?}"
    );
    assert!(
        events.iter().any(|e| e == "stop web.1 v2") && events.iter().any(|e| e == "stop web.2 v2")
    );
    // The worker that stopped first is started again on v1.
    assert!(
        events.iter().any(|e| e == "start worker.1 v1"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("hook after_deploy_failure v1")
    );
    let log = world.log(op.id);
    assert!(
        log.contains("did not become healthy within 60s (last check: connection refused)"),
        "{log}"
    );
    assert!(log.contains("rolled back: v1 is serving"), "{log}");
    // Two web instances of v1 and the restarted worker are all that runs.
    assert_eq!(world.runtime.running_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failing_before_release_aborts_before_any_instance_changes() {
    let world = world_with_v1().await;
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .failing_hooks
        .insert("before_release".into());
    let op = world.deploy("c2").await;
    assert_eq!(op.state, OperationState::Failed);
    assert!(
        !world
            .events
            .all()
            .iter()
            .any(|e| e.starts_with("start") || e.starts_with("stop")),
        "{:?}",
        world.events.all()
    );
    assert_eq!(world.traffic.routed_releases(&world.env), [v(1)]);
    assert!(world
        .log(op.id)
        .contains("before_release failed: it exited with code 1; nothing changed"));
    assert_eq!(
        world.events.all().last().map(String::as_str),
        Some("hook after_deploy_failure v1")
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_build_aborts_with_nothing_changed() {
    let world = world_with_v1().await;
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .failing_hooks
        .insert("build".into());
    let op = world.deploy("c2").await;
    assert_eq!(op.state, OperationState::Failed);
    assert_eq!(
        world.store.releases(&world.env).await.unwrap().len(),
        1,
        "no release is made for a failed build"
    );
    assert!(world
        .log(op.id)
        .contains("build failed: build hook failed: exit code 1; nothing changed"));
}

#[tokio::test(start_paused = true)]
async fn deploy_and_post_deploy_failures_are_warnings_and_the_deploy_succeeds() {
    let world = world_with_v1().await;
    {
        let mut behaviour = world.runtime.behaviour.lock().unwrap();
        behaviour.failing_hooks.insert("deploy".into());
        behaviour.failing_hooks.insert("post_deploy".into());
    }
    let op = world.deploy("c2").await;
    assert_eq!(op.state, OperationState::Succeeded);
    let steps = world.store.steps(op.id).await.unwrap();
    let status = |step| steps.iter().find(|s| s.step == step).map(|s| s.status);
    assert_eq!(status(Step::DeployHook), Some(StepStatus::Warning));
    assert_eq!(status(Step::PostDeploy), Some(StepStatus::Warning));
    assert_eq!(world.traffic.routed_releases(&world.env), [v(2)]);
    assert!(world
        .events
        .all()
        .contains(&"hook after_deploy_success v2".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn through_the_watch_the_old_release_is_on_standby_until_it_stops() {
    let world = World::new();
    let watched = config_with_watch(Duration::from_secs(30));
    world.commit("c1", watched.clone());
    world.commit("c2", watched);
    assert_eq!(world.deploy("c1").await.state, OperationState::Succeeded);
    let events = world.events.all();
    assert!(
        !events.iter().any(|e| e.starts_with("standby")),
        "nothing to keep on standby for a first release: {events:?}"
    );
    world.events.clear();
    let op = world.deploy("c2").await;
    assert_eq!(op.state, OperationState::Succeeded, "{}", world.log(op.id));
    let events = world.events.all();
    let at = |event: &str| {
        events
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("no `{event}` in {events:?}"))
    };
    assert!(at("switch [v2]") < at("standby [v1]"), "{events:?}");
    assert!(at("standby [v1]") < at("standby []"), "{events:?}");
    assert!(at("standby []") < at("stop web.1 v1"), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failure_during_the_watch_switches_back_to_the_old_instances() {
    let world = World::new();
    let watched = config_with_watch(Duration::from_secs(30));
    world.commit("c1", watched.clone());
    world.commit("c2", watched);
    assert_eq!(world.deploy("c1").await.state, OperationState::Succeeded);
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .flaky_commits
        .insert("c2".into());
    world.events.clear();
    let op = world.deploy("c2").await;
    assert_eq!(op.state, OperationState::RolledBack, "{}", world.log(op.id));
    let events = world.events.all();
    // Old web instances were kept running through the watch, so the switch back is instant.
    assert!(!events.iter().any(|e| e == "stop web.1 v1"), "{events:?}");
    assert_eq!(world.traffic.routed_releases(&world.env), [v(1)]);
    assert!(world
        .log(op.id)
        .contains("failed its health check during the watch"));
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_exits_during_the_watch_is_seen_at_once_and_traffic_switches_back() {
    let world = World::new();
    let watched = config_with_watch(Duration::from_secs(60));
    world.commit("c1", watched.clone());
    world.commit("c2", watched);
    assert_eq!(world.deploy("c1").await.state, OperationState::Succeeded);
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .crashing_commits
        .insert("c2".into(), Duration::from_secs(10));
    world.events.clear();
    let started = tokio::time::Instant::now();
    let op = world.deploy("c2").await;
    let took = started.elapsed();
    assert_eq!(op.state, OperationState::RolledBack, "{}", world.log(op.id));
    assert!(
        world.log(op.id).contains("web.1 exited during the watch"),
        "{}",
        world.log(op.id)
    );
    assert_eq!(world.traffic.routed_releases(&world.env), [v(1)]);
    // Seen within the runtime's exit poll, not at the next health check or the watch's end.
    assert!(
        took < Duration::from_millis(10_300),
        "the crash at 10s was seen after {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn of_several_queued_deploys_only_the_newest_runs() {
    let world = world_with_v1().await;
    world.commit("c3", config());
    world.commit("c4", config());
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .hanging_hooks
        .insert("before_release".into());
    let running = world
        .submit(OperationKind::Deploy, Some("c2"), serde_json::Value::Null)
        .await;
    // Wait until it runs, then queue three more.
    while world
        .store
        .operation(running.id)
        .await
        .unwrap()
        .unwrap()
        .state
        != OperationState::Running
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let queued: Vec<_> = [
        world
            .submit(OperationKind::Deploy, Some("c3"), serde_json::Value::Null)
            .await,
        world
            .submit(OperationKind::Deploy, Some("c4"), serde_json::Value::Null)
            .await,
        world
            .submit(OperationKind::Deploy, Some("c1"), serde_json::Value::Null)
            .await,
    ]
    .into_iter()
    .collect();
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .hanging_hooks
        .clear();
    assert!(world.pipeline.cancel(running.id).await.unwrap());
    assert_eq!(
        world.finished(running.id).await.state,
        OperationState::Cancelled
    );
    let states: Vec<OperationState> = {
        let mut states = Vec::new();
        for op in &queued {
            states.push(world.finished(op.id).await.state);
        }
        states
    };
    assert_eq!(
        states,
        [
            OperationState::Superseded,
            OperationState::Superseded,
            OperationState::Succeeded
        ]
    );
    assert!(world
        .log(queued[0].id)
        .contains(&format!("superseded by operation {}", queued[2].id)));
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_deploy_stuck_in_before_release_leaves_the_old_release_untouched() {
    let world = world_with_v1().await;
    world
        .runtime
        .behaviour
        .lock()
        .unwrap()
        .hanging_hooks
        .insert("before_release".into());
    let op = world
        .submit(OperationKind::Deploy, Some("c2"), serde_json::Value::Null)
        .await;
    while world.events.position("hook before_release").is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    world.pipeline.cancel(op.id).await.unwrap();
    assert_eq!(world.finished(op.id).await.state, OperationState::Cancelled);
    assert!(!world
        .events
        .all()
        .iter()
        .any(|e| e.starts_with("start") || e.starts_with("stop")));
    assert_eq!(world.traffic.routed_releases(&world.env), [v(1)]);
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_deploy_only_runs_post_deploy() {
    let world = world_with_v1().await;
    let op = world.deploy("c1").await;
    assert_eq!(op.state, OperationState::Succeeded);
    assert_eq!(
        world.events.all(),
        ["hook post_deploy v1", "hook after_deploy_success v1"]
    );
    assert!(world
        .log(op.id)
        .contains("reusing the build of this commit"));
}

#[tokio::test(start_paused = true)]
async fn rollback_restores_the_earlier_artifact_and_variables() {
    let world = world_with_v1().await;
    use crate::pipeline::model::Variable;
    world
        .store
        .set_variables(
            &world.env,
            &[Variable {
                key: "API_KEY".into(),
                value: "second-key".into(),
                build: false,
            }],
        )
        .await
        .unwrap();
    assert_eq!(world.deploy("c2").await.state, OperationState::Succeeded);
    let op = world
        .submit(OperationKind::Rollback, None, serde_json::Value::Null)
        .await;
    let op = world.finished(op.id).await;
    assert_eq!(op.state, OperationState::Succeeded, "{}", world.log(op.id));
    let current = world
        .store
        .current_release(&world.env)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.number, v(3));
    assert_eq!(current.commit.as_deref(), Some("c1"));
    assert!(
        current.variables.is_empty(),
        "v1 had no variables: {:?}",
        current.variables.keys()
    );
    assert_eq!(world.traffic.routed_releases(&world.env), [v(3)]);
}

#[tokio::test(start_paused = true)]
async fn scale_pins_the_count_and_stop_timeout_kills_an_instance_that_ignores_sigterm() {
    let world = world_with_v1().await;
    world.runtime.behaviour.lock().unwrap().ignore_sigterm = true;
    let op = world
        .submit(
            OperationKind::Scale,
            None,
            serde_json::json!({ "services": { "web": 3 } }),
        )
        .await;
    let op = world.finished(op.id).await;
    assert_eq!(op.state, OperationState::Succeeded, "{}", world.log(op.id));
    let routes = world
        .traffic
        .routes
        .lock()
        .unwrap()
        .get(&world.env)
        .cloned()
        .unwrap();
    assert_eq!(routes.len(), 3);
    assert!(world
        .log(op.id)
        .contains("ignored SIGTERM for 10s: killed with SIGKILL"));
    // A later deploy keeps the pinned count.
    assert_eq!(world.deploy("c2").await.state, OperationState::Succeeded);
    assert_eq!(
        world
            .traffic
            .routes
            .lock()
            .unwrap()
            .get(&world.env)
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn a_teardown_stops_everything_and_unroutes_the_environment() {
    let world = world_with_v1().await;
    let op = world
        .submit(OperationKind::Teardown, None, serde_json::Value::Null)
        .await;
    let op = world.finished(op.id).await;
    assert_eq!(op.state, OperationState::Succeeded, "{}", world.log(op.id));
    assert_eq!(world.runtime.running_count(), 0);
    assert!(world.traffic.routed_releases(&world.env).is_empty());
    assert!(world
        .store
        .current_release(&world.env)
        .await
        .unwrap()
        .is_none());
    assert!(world
        .store
        .instances(Some(&world.env))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(op.release_before, Some(v(1)));
}
