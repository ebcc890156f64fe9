//! The switch commit: the current release and the `switch` step's success are written
//! together, or not at all, in the file a restarted server reads.

use super::*;

fn switch_step(status: StepStatus) -> StepRecord {
    StepRecord {
        step: Step::Switch,
        status,
        started_at: 10,
        finished_at: None,
        message: None,
    }
}

#[tokio::test]
async fn a_committed_switch_is_the_current_release_and_a_succeeded_step_after_a_reopen() {
    let (store, dir) = file_store().await;
    let staging = env("shop", "staging");
    let op = create_deploy(&store, &staging).await;
    let v1 = store
        .create_release(new_release(&staging, op.id))
        .await
        .unwrap();
    store
        .record_step(op.id, &switch_step(StepStatus::Running))
        .await
        .unwrap();
    store
        .commit_switch(op.id, &staging, v1.number, 42)
        .await
        .unwrap();
    drop(store);

    let store = SqliteStore::open(dir.path()).await.unwrap();
    let current = store.current_release(&staging).await.unwrap();
    assert_eq!(current.map(|r| r.number), Some(v1.number));
    let steps = store.steps(op.id).await.unwrap();
    assert_eq!(
        steps,
        [StepRecord {
            finished_at: Some(42),
            ..switch_step(StepStatus::Succeeded)
        }]
    );
    assert_eq!(
        store.operation(op.id).await.unwrap().unwrap().step,
        Some(Step::Switch)
    );
}

#[tokio::test]
async fn a_switch_never_recorded_as_started_changes_nothing() {
    let (store, _dir) = file_store().await;
    let staging = env("shop", "staging");
    let op = create_deploy(&store, &staging).await;
    let v1 = store
        .create_release(new_release(&staging, op.id))
        .await
        .unwrap();
    let error = store
        .commit_switch(op.id, &staging, v1.number, 42)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("was not recorded as started"),
        "{error}"
    );
    assert_eq!(store.current_release(&staging).await.unwrap(), None);
    assert!(store.steps(op.id).await.unwrap().is_empty());
}
