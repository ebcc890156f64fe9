//! Steps and logs: one row per step, updated as it ends; log lines numbered in order
//! even when many writers append at once.

use std::sync::Arc;

use super::*;

fn step(
    step: Step,
    status: StepStatus,
    started_at: i64,
    finished_at: Option<i64>,
    message: Option<&str>,
) -> StepRecord {
    StepRecord {
        step,
        status,
        started_at,
        finished_at,
        message: message.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_step_recorded_twice_is_one_row_with_its_end() {
    let (store, _dir) = file_store().await;
    let op = create_deploy(&store, &env("shop", "staging")).await;

    store
        .record_step(
            op.id,
            &step(Step::Resolve, StepStatus::Running, 10, None, None),
        )
        .await
        .unwrap();
    store
        .record_step(
            op.id,
            &step(Step::Resolve, StepStatus::Succeeded, 10, Some(20), None),
        )
        .await
        .unwrap();
    store
        .record_step(
            op.id,
            &step(Step::Build, StepStatus::Running, 21, None, None),
        )
        .await
        .unwrap();
    assert_eq!(
        store.operation(op.id).await.unwrap().unwrap().step,
        Some(Step::Build)
    );
    store
        .record_step(
            op.id,
            &step(
                Step::Build,
                StepStatus::Failed,
                21,
                Some(90),
                Some("build hook exited with 2"),
            ),
        )
        .await
        .unwrap();

    assert_eq!(
        store.steps(op.id).await.unwrap(),
        vec![
            step(Step::Resolve, StepStatus::Succeeded, 10, Some(20), None),
            step(
                Step::Build,
                StepStatus::Failed,
                21,
                Some(90),
                Some("build hook exited with 2")
            ),
        ]
    );
    // Steps stay in the order they first started, even when an earlier one is updated last.
    store
        .record_step(
            op.id,
            &step(Step::Rollback, StepStatus::Running, 91, None, None),
        )
        .await
        .unwrap();
    store
        .record_step(
            op.id,
            &step(
                Step::Resolve,
                StepStatus::Warning,
                10,
                Some(95),
                Some("late"),
            ),
        )
        .await
        .unwrap();
    let order: Vec<Step> = store
        .steps(op.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step)
        .collect();
    assert_eq!(order, vec![Step::Resolve, Step::Build, Step::Rollback]);
    assert_eq!(
        store.operation(op.id).await.unwrap().unwrap().step,
        Some(Step::Resolve),
        "the last step recorded"
    );
}

#[tokio::test]
async fn a_step_of_an_unknown_operation_is_refused() {
    let (store, _dir) = file_store().await;
    let error = store
        .record_step(
            OperationId(7),
            &step(Step::Build, StepStatus::Running, 1, None, None),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "database: cannot record step build (running) of operation 7: there is no operation 7"
    );
    assert!(store.steps(OperationId(7)).await.unwrap().is_empty());
}

#[tokio::test]
async fn log_lines_are_numbered_from_one_and_read_after_a_seq() {
    let (store, _dir) = file_store().await;
    let op = create_deploy(&store, &env("shop", "staging")).await;
    let other = create_deploy(&store, &env("shop", "staging")).await;
    store
        .append_log(op.id, 100, &["one".into(), "two".into()])
        .await
        .unwrap();
    store
        .append_log(other.id, 150, &["elsewhere".into()])
        .await
        .unwrap();
    store.append_log(op.id, 200, &[]).await.unwrap();
    store
        .append_log(op.id, 300, &["three".into()])
        .await
        .unwrap();

    let line = |seq, at, text: &str| LogLine {
        seq,
        at,
        text: text.to_owned(),
    };
    assert_eq!(
        store.log_lines(op.id, 0, 100).await.unwrap(),
        vec![
            line(1, 100, "one"),
            line(2, 100, "two"),
            line(3, 300, "three")
        ]
    );
    assert_eq!(
        store.log_lines(op.id, 1, 1).await.unwrap(),
        vec![line(2, 100, "two")]
    );
    assert_eq!(store.log_lines(op.id, 3, 100).await.unwrap(), vec![]);
    assert_eq!(
        store.log_lines(other.id, 0, 100).await.unwrap(),
        vec![line(1, 150, "elsewhere")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_distinct_ordered_seqs() {
    let (store, _dir) = file_store().await;
    let store = Arc::new(store);
    let op = create_deploy(&store, &env("shop", "staging")).await;

    let mut writers = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..100 {
                store
                    .append_log(op.id, n, &[format!("writer {writer} line {n}")])
                    .await
                    .expect("append");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer task");
    }

    let lines = store.log_lines(op.id, 0, 10_000).await.unwrap();
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        (1..=800).collect::<Vec<i64>>(),
        "800 distinct seqs, 1 to 800, in order"
    );
    // Each writer's lines keep the order that writer appended them in.
    for writer in 0..8 {
        let prefix = format!("writer {writer} line ");
        let mine: Vec<i64> = lines
            .iter()
            .filter_map(|l| {
                l.text
                    .strip_prefix(&prefix)
                    .map(|n| n.parse().expect("line number"))
            })
            .collect();
        assert_eq!(mine, (0..100).collect::<Vec<i64>>());
    }
}
