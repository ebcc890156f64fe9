//! Operations: round-trip of every field, state changes and their timestamps, the
//! queues the workers read.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::*;
use crate::ids::ReleaseNumber;
use crate::pipeline::traits::{Clock, EffectError};

/// A clock the test moves by hand, to check which call stamped which time.
struct HandClock(AtomicI64);

impl Clock for HandClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn an_operation_round_trips_with_every_field() {
    let (store, _dir) = file_store().await;
    let clock = Arc::new(HandClock(AtomicI64::new(1_000)));
    let store = store.with_clock(clock.clone());
    let shop = env("shop", "production");

    let created = create_deploy(&store, &shop).await;
    assert_eq!(created.state, OperationState::Queued);
    assert_eq!(created.created_at, 1_000);
    assert_eq!(
        (created.step, created.started_at, created.finished_at),
        (None, None, None)
    );
    assert_eq!(
        store.operation(created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.environments().await.unwrap(),
        vec![shop.clone()],
        "create_operation creates the environment"
    );

    clock.0.store(2_000, Ordering::SeqCst);
    store
        .set_operation_state(created.id, OperationState::Running, None)
        .await
        .unwrap();
    store
        .set_operation_commit(created.id, "fedcba")
        .await
        .unwrap();
    store
        .set_operation_releases(created.id, Some(ReleaseNumber(3)), Some(ReleaseNumber(4)))
        .await
        .unwrap();
    let step = StepRecord {
        step: Step::Build,
        status: StepStatus::Running,
        started_at: 2_100,
        finished_at: None,
        message: None,
    };
    store.record_step(created.id, &step).await.unwrap();
    // A resumed operation keeps its first start time.
    clock.0.store(2_500, Ordering::SeqCst);
    store
        .set_operation_state(
            created.id,
            OperationState::Running,
            Some("resumed after a restart"),
        )
        .await
        .unwrap();
    clock.0.store(3_000, Ordering::SeqCst);
    store
        .set_operation_state(
            created.id,
            OperationState::RolledBack,
            Some("health check failed"),
        )
        .await
        .unwrap();

    let read = store
        .operation(created.id)
        .await
        .unwrap()
        .expect("operation exists");
    let expected = Operation {
        id: created.id,
        env: shop,
        kind: OperationKind::Deploy,
        state: OperationState::RolledBack,
        step: Some(Step::Build),
        source: new_deploy(&env("shop", "production")).source,
        commit: Some("fedcba".into()),
        args: serde_json::json!({ "services": { "web": 2 } }),
        release_before: Some(ReleaseNumber(3)),
        release_after: Some(ReleaseNumber(4)),
        initiator: "github push by alice".into(),
        message: Some("health check failed".into()),
        created_at: 1_000,
        started_at: Some(2_000),
        finished_at: Some(3_000),
    };
    assert_eq!(read, expected);

    // A state change without a message keeps the last message.
    store
        .set_operation_state(created.id, OperationState::Failed, None)
        .await
        .unwrap();
    let read = store.operation(created.id).await.unwrap().unwrap();
    assert_eq!(read.message.as_deref(), Some("health check failed"));
    assert_eq!(read.state, OperationState::Failed);
}

#[tokio::test]
async fn an_operation_with_no_source_and_no_commit_round_trips() {
    let (store, _dir) = file_store().await;
    let new = NewOperation {
        env: env("shop", "staging"),
        kind: OperationKind::Rollback,
        source: None,
        commit: None,
        args: serde_json::json!({ "to": 3 }),
        initiator: "cli".into(),
    };
    let created = store.create_operation(new.clone()).await.unwrap();
    let read = store.operation(created.id).await.unwrap().unwrap();
    assert_eq!(
        (read.kind, read.source, read.commit, read.args),
        (new.kind, None, None, new.args)
    );
}

#[tokio::test]
async fn queued_operations_are_listed_oldest_first_per_environment() {
    let (store, _dir) = file_store().await;
    let (staging, production) = (env("shop", "staging"), env("shop", "production"));
    let first = create_deploy(&store, &staging).await;
    let second = create_deploy(&store, &staging).await;
    let other = create_deploy(&store, &production).await;
    let third = create_deploy(&store, &staging).await;
    store
        .set_operation_state(second.id, OperationState::Running, None)
        .await
        .unwrap();

    let ids = |ops: Vec<Operation>| ops.into_iter().map(|op| op.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.queued_operations(&staging).await.unwrap()),
        vec![first.id, third.id]
    );
    assert_eq!(
        ids(store.queued_operations(&production).await.unwrap()),
        vec![other.id]
    );
    assert_eq!(
        ids(store
            .queued_operations(&env("shop", "nowhere"))
            .await
            .unwrap()),
        vec![]
    );

    // Listing: newest first, limited, filtered by environment.
    assert_eq!(
        ids(store.operations(None, 10).await.unwrap()),
        vec![third.id, other.id, second.id, first.id]
    );
    assert_eq!(
        ids(store.operations(None, 2).await.unwrap()),
        vec![third.id, other.id]
    );
    assert_eq!(
        ids(store.operations(Some(&staging), 10).await.unwrap()),
        vec![third.id, second.id, first.id]
    );
}

#[tokio::test]
async fn running_operations_of_every_environment_are_found() {
    let (store, _dir) = file_store().await;
    let a = create_deploy(&store, &env("shop", "staging")).await;
    let b = create_deploy(&store, &env("blog", "production")).await;
    let done = create_deploy(&store, &env("shop", "production")).await;
    create_deploy(&store, &env("shop", "production")).await;
    for op in [&a, &b, &done] {
        store
            .set_operation_state(op.id, OperationState::Running, None)
            .await
            .unwrap();
    }
    store
        .set_operation_state(done.id, OperationState::Succeeded, None)
        .await
        .unwrap();

    let running = store.running_operations().await.unwrap();
    assert_eq!(
        running.iter().map(|op| op.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert!(running
        .iter()
        .all(|op| op.state == OperationState::Running && op.started_at.is_some()));
    let done = store.operation(done.id).await.unwrap().unwrap();
    assert!(done.finished_at.is_some(), "a final state sets finished_at");
}

#[tokio::test]
async fn changing_an_operation_that_does_not_exist_says_so() {
    let (store, _dir) = file_store().await;
    assert_eq!(store.operation(OperationId(42)).await.unwrap(), None);
    let error = store
        .set_operation_state(OperationId(42), OperationState::Running, None)
        .await
        .unwrap_err();
    assert!(matches!(error, EffectError::Store(_)));
    assert_eq!(
        error.to_string(),
        "database: cannot set operation 42 to running: there is no operation 42"
    );
    let error = store
        .set_operation_commit(OperationId(42), "abc")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("there is no operation 42"),
        "{error}"
    );
}

#[tokio::test]
async fn the_in_memory_store_works_like_the_file_store() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let op = create_deploy(&store, &env("shop", "staging")).await;
    store
        .append_log(op.id, 1, &["hello".to_owned()])
        .await
        .unwrap();
    assert_eq!(store.log_lines(op.id, 0, 10).await.unwrap().len(), 1);
    let other = SqliteStore::open_in_memory().await.unwrap();
    assert_eq!(
        other.operation(op.id).await.unwrap(),
        None,
        "each in-memory store is private"
    );
}
