//! Tests of the SQLite store against real database files in a temporary directory.

mod durability;
mod instances;
mod operations;
mod progress;
mod releases;
mod switch;

use std::collections::BTreeMap;

use tempfile::TempDir;

use super::SqliteStore;
use crate::ids::{EnvKey, OperationId, ServiceName};
use crate::pipeline::model::*;
use crate::pipeline::traits::{NewRelease, Store};

/// A store on a fresh database file; the directory lives as long as the returned guard.
async fn file_store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).await.expect("open store");
    (store, dir)
}

fn env(app: &str, name: &str) -> EnvKey {
    EnvKey::new(app, name)
}

fn new_deploy(env: &EnvKey) -> NewOperation {
    NewOperation {
        env: env.clone(),
        kind: OperationKind::Deploy,
        source: Some(SourceSpec::Git {
            url: "https://github.com/acme/shop.git".into(),
            reference: "main".into(),
        }),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        args: serde_json::json!({ "services": { "web": 2 } }),
        initiator: "github push by alice".into(),
    }
}

async fn create_deploy(store: &SqliteStore, env: &EnvKey) -> Operation {
    store
        .create_operation(new_deploy(env))
        .await
        .expect("create operation")
}

fn new_release(env: &EnvKey, operation: OperationId) -> NewRelease {
    let mut services = BTreeMap::new();
    services.insert(
        ServiceName::from("web"),
        ServiceScale {
            instances: 2,
            size_mb: 512,
            pinned: true,
        },
    );
    let mut variables = BTreeMap::new();
    variables.insert(
        "DATABASE_URL".to_owned(),
        "postgres://secret@db/shop".to_owned(),
    );
    NewRelease {
        env: env.clone(),
        commit: Some("abc123".into()),
        artifact: Artifact::Image {
            reference: "registry/shop:v1".into(),
            digest: "sha256:feed".into(),
        },
        config_hash: "c0ffee".into(),
        variables,
        scale: Scale { services },
        operation,
    }
}
