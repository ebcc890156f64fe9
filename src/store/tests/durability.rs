//! What survives a restart, and what a person sees when the database cannot be opened.

use super::*;
use crate::ids::ReleaseNumber;
use crate::store::StoreError;

#[tokio::test]
async fn a_reopened_database_has_everything_that_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let staging = env("shop", "staging");
    let (operation, release, instance, variable) = {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let op = create_deploy(&store, &staging).await;
        store
            .set_operation_state(op.id, OperationState::Running, None)
            .await
            .unwrap();
        let record = StepRecord {
            step: Step::Build,
            status: StepStatus::Running,
            started_at: 5,
            finished_at: None,
            message: None,
        };
        store.record_step(op.id, &record).await.unwrap();
        store
            .append_log(op.id, 6, &["building".into()])
            .await
            .unwrap();
        let release = store
            .create_release(new_release(&staging, op.id))
            .await
            .unwrap();
        store
            .set_current_release(&staging, Some(release.number))
            .await
            .unwrap();
        let instance = InstanceRecord {
            id: "shop-staging-web-v1-0".into(),
            env: staging.clone(),
            service: ServiceName::from("web"),
            release: release.number,
            index: 0,
            handle: "4242".into(),
            address: Some("127.0.0.1:9000".into()),
            started_at: 7,
        };
        store.save_instance(&instance).await.unwrap();
        let variable = Variable {
            key: "TOKEN".into(),
            value: "abc".into(),
            build: false,
        };
        store
            .set_variables(&staging, std::slice::from_ref(&variable))
            .await
            .unwrap();
        let operation = store.operation(op.id).await.unwrap().unwrap();
        (operation, release, instance, variable)
        // The store is dropped here without being closed, as a killed server would leave it.
    };

    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(
        store.operation(operation.id).await.unwrap(),
        Some(operation.clone())
    );
    assert_eq!(
        store.running_operations().await.unwrap(),
        vec![operation.clone()]
    );
    assert_eq!(store.steps(operation.id).await.unwrap().len(), 1);
    assert_eq!(
        store.log_lines(operation.id, 0, 10).await.unwrap()[0].text,
        "building"
    );
    assert_eq!(
        store.current_release(&staging).await.unwrap(),
        Some(release)
    );
    assert_eq!(store.instances(None).await.unwrap(), vec![instance]);
    assert_eq!(store.variables(&staging).await.unwrap(), vec![variable]);

    // Numbering goes on where it stopped; operation ids are never reused.
    let next = create_deploy(&store, &staging).await;
    assert!(next.id > operation.id);
    assert_eq!(
        store
            .create_release(new_release(&staging, next.id))
            .await
            .unwrap()
            .number,
        ReleaseNumber(2)
    );
}

#[tokio::test]
async fn open_creates_the_data_directory_and_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join(".slipway");
    let store = SqliteStore::open(&data).await.unwrap();
    create_deploy(&store, &env("shop", "staging")).await;
    assert!(data.join("slipway.db").is_file());
}

#[tokio::test]
async fn a_data_dir_that_is_a_file_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, "not a directory").unwrap();
    let error = SqliteStore::open(&file)
        .await
        .err()
        .expect("a file is not a data directory");
    assert!(
        matches!(error, StoreError::NotADirectory { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "cannot open {}: {} is a file, not a directory; point --data at a directory",
            file.join("slipway.db").display(),
            file.display()
        )
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slipway.db"), vec![b'x'; 4096]).unwrap();
    let error = SqliteStore::open(dir.path())
        .await
        .err()
        .expect("garbage is not a database");
    let message = error.to_string();
    assert!(
        message.contains(&dir.path().join("slipway.db").display().to_string()),
        "{message}"
    );
    assert!(message.contains("check that --data"), "{message}");
}
