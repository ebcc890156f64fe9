//! Instances and configuration variables.

use super::*;
use crate::ids::ReleaseNumber;

fn instance(env: &EnvKey, service: &str, release: i64, index: u32) -> InstanceRecord {
    InstanceRecord {
        id: format!("{}-{}-{service}-v{release}-{index}", env.app, env.env),
        env: env.clone(),
        service: ServiceName::from(service),
        release: ReleaseNumber(release),
        index,
        handle: format!("{}", 4000 + index),
        address: (service == "web").then(|| format!("127.0.0.1:{}", 9000 + index)),
        started_at: 1_700_000_000_000,
    }
}

#[tokio::test]
async fn instances_are_saved_listed_and_removed() {
    let (store, _dir) = file_store().await;
    let (staging, production) = (env("shop", "staging"), env("shop", "production"));
    let web0 = instance(&staging, "web", 2, 0);
    let web1 = instance(&staging, "web", 2, 1);
    let worker = instance(&staging, "worker", 2, 0);
    let prod = instance(&production, "web", 1, 0);
    for record in [&worker, &web1, &prod, &web0] {
        store.save_instance(record).await.unwrap();
    }

    assert_eq!(
        store.instances(Some(&staging)).await.unwrap(),
        vec![web0.clone(), web1.clone(), worker.clone()]
    );
    assert_eq!(
        store.instances(None).await.unwrap(),
        vec![prod.clone(), web0.clone(), web1.clone(), worker.clone()]
    );

    // Saving again updates the record (a restarted process has a new handle).
    let mut restarted = web1.clone();
    restarted.handle = "5555".into();
    store.save_instance(&restarted).await.unwrap();
    store.remove_instance(&web0.id).await.unwrap();
    store.remove_instance("not-recorded").await.unwrap();
    assert_eq!(
        store.instances(Some(&staging)).await.unwrap(),
        vec![restarted, worker]
    );
    assert_eq!(
        store.instances(Some(&production)).await.unwrap(),
        vec![prod]
    );
}

#[tokio::test]
async fn variables_are_set_updated_and_unset() {
    let (store, _dir) = file_store().await;
    let (staging, production) = (env("shop", "staging"), env("shop", "production"));
    let var = |key: &str, value: &str, build: bool| Variable {
        key: key.into(),
        value: value.into(),
        build,
    };
    assert!(store.variables(&staging).await.unwrap().is_empty());

    store
        .set_variables(
            &staging,
            &[
                var("SECRET_KEY", "s3cr3t", false),
                var("NODE_ENV", "staging", true),
            ],
        )
        .await
        .unwrap();
    store
        .set_variables(&production, &[var("SECRET_KEY", "prod-key", false)])
        .await
        .unwrap();
    assert_eq!(
        store.variables(&staging).await.unwrap(),
        vec![
            var("NODE_ENV", "staging", true),
            var("SECRET_KEY", "s3cr3t", false)
        ],
        "sorted by key"
    );

    // Update a value and the build flag; unset one key and one that was never set.
    store
        .set_variables(&staging, &[var("NODE_ENV", "production", false)])
        .await
        .unwrap();
    store
        .unset_variables(&staging, &["SECRET_KEY".into(), "NEVER_SET".into()])
        .await
        .unwrap();
    assert_eq!(
        store.variables(&staging).await.unwrap(),
        vec![var("NODE_ENV", "production", false)]
    );
    assert_eq!(
        store.variables(&production).await.unwrap(),
        vec![var("SECRET_KEY", "prod-key", false)]
    );
    assert_eq!(
        store.environments().await.unwrap(),
        vec![production, staging]
    );
}
