//! Releases: numbered per environment, read back whole, and the one now serving.

use super::*;
use crate::ids::ReleaseNumber;

#[tokio::test]
async fn releases_are_numbered_per_environment() {
    let (store, _dir) = file_store().await;
    let (staging, production) = (env("shop", "staging"), env("shop", "production"));
    let op = create_deploy(&store, &staging).await;

    let mut numbers = Vec::new();
    for target in [&staging, &staging, &production, &staging, &production] {
        numbers.push(
            store
                .create_release(new_release(target, op.id))
                .await
                .unwrap()
                .number,
        );
    }
    assert_eq!(numbers, [1, 2, 1, 3, 2].map(ReleaseNumber).to_vec());

    let listed: Vec<ReleaseNumber> = store
        .releases(&staging)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(
        listed,
        [3, 2, 1].map(ReleaseNumber).to_vec(),
        "newest first"
    );
    assert!(store
        .releases(&env("blog", "staging"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_release_round_trips_with_every_field() {
    let (store, _dir) = file_store().await;
    let staging = env("shop", "staging");
    let op = create_deploy(&store, &staging).await;
    let new = new_release(&staging, op.id);
    let created = store.create_release(new.clone()).await.unwrap();

    let expected = Release {
        env: new.env,
        number: ReleaseNumber(1),
        commit: new.commit,
        artifact: new.artifact,
        config_hash: new.config_hash,
        variables: new.variables,
        scale: new.scale,
        operation: op.id,
        created_at: created.created_at,
    };
    assert_eq!(created, expected);
    assert!(created.created_at > 0);
    assert_eq!(
        store.release(&staging, ReleaseNumber(1)).await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        store.release(&staging, ReleaseNumber(2)).await.unwrap(),
        None
    );

    // A directory artifact and no commit round-trip too.
    let mut local = new_release(&staging, op.id);
    local.artifact = Artifact::Directory {
        path: "/data/artifacts/abc".into(),
    };
    local.commit = None;
    let created = store.create_release(local.clone()).await.unwrap();
    let read = store
        .release(&staging, created.number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read.artifact, read.commit), (local.artifact, None));
}

#[tokio::test]
async fn the_current_release_is_set_read_and_cleared() {
    let (store, _dir) = file_store().await;
    let (staging, production) = (env("shop", "staging"), env("shop", "production"));
    let op = create_deploy(&store, &staging).await;
    assert_eq!(store.current_release(&staging).await.unwrap(), None);
    assert_eq!(
        store.current_release(&env("never", "seen")).await.unwrap(),
        None
    );

    let v1 = store
        .create_release(new_release(&staging, op.id))
        .await
        .unwrap();
    let v2 = store
        .create_release(new_release(&staging, op.id))
        .await
        .unwrap();
    store
        .create_release(new_release(&production, op.id))
        .await
        .unwrap();
    store
        .set_current_release(&staging, Some(v2.number))
        .await
        .unwrap();
    assert_eq!(store.current_release(&staging).await.unwrap(), Some(v2));
    assert_eq!(
        store.current_release(&production).await.unwrap(),
        None,
        "environments are independent"
    );

    // Rollback: back to v1.
    store
        .set_current_release(&staging, Some(v1.number))
        .await
        .unwrap();
    assert_eq!(store.current_release(&staging).await.unwrap(), Some(v1));
    store.set_current_release(&staging, None).await.unwrap();
    assert_eq!(store.current_release(&staging).await.unwrap(), None);
}

#[tokio::test]
async fn a_release_that_does_not_exist_cannot_be_made_current() {
    let (store, _dir) = file_store().await;
    let staging = env("shop", "staging");
    let op = create_deploy(&store, &staging).await;
    let v1 = store
        .create_release(new_release(&staging, op.id))
        .await
        .unwrap();
    store
        .set_current_release(&staging, Some(v1.number))
        .await
        .unwrap();

    let error = store
        .set_current_release(&staging, Some(ReleaseNumber(9)))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "database: cannot make v9 the current release of shop/staging: shop/staging has no release v9"
    );
    assert_eq!(
        store
            .current_release(&staging)
            .await
            .unwrap()
            .map(|r| r.number),
        Some(v1.number),
        "unchanged"
    );
}

#[tokio::test]
async fn a_failed_release_write_does_not_reveal_its_variables() {
    let (store, _dir) = file_store().await;
    // No such operation: the foreign key refuses the release.
    let error = store
        .create_release(new_release(&env("shop", "staging"), OperationId(99)))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("database: cannot create a release of shop/staging: "),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_releases_of_one_environment_get_distinct_numbers() {
    let (store, _dir) = file_store().await;
    let store = std::sync::Arc::new(store);
    let staging = env("shop", "staging");
    let op = create_deploy(&store, &staging).await;

    let mut creators = Vec::new();
    for _ in 0..4 {
        let (store, staging) = (store.clone(), staging.clone());
        creators.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for _ in 0..10 {
                numbers.push(
                    store
                        .create_release(new_release(&staging, op.id))
                        .await
                        .expect("create release")
                        .number
                        .0,
                );
            }
            numbers
        }));
    }
    let mut numbers = Vec::new();
    for creator in creators {
        let mine = creator.await.expect("creator task");
        assert!(
            mine.windows(2).all(|pair| pair[0] < pair[1]),
            "each creator sees increasing numbers: {mine:?}"
        );
        numbers.extend(mine);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=40).collect::<Vec<i64>>());
}
