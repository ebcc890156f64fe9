//! Builds: the hook's writable directories, the cache that survives between builds,
//! and that nothing half-built is ever taken for an artifact.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::pipeline::traits::{BuildSpec, Runtime};
use crate::runtime::local::LocalRuntime;

fn source_tree(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).expect("bin");
    fs::write(dir.join("bin/serve"), "#!/bin/sh\necho serving\n").expect("script");
    fs::set_permissions(dir.join("bin/serve"), fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("bin/serve", dir.join("serve")).expect("symlink");
    fs::create_dir_all(dir.join(".git")).expect(".git");
    fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").expect("HEAD");
    fs::create_dir_all(dir.join(".slipway/artifacts")).expect(".slipway");
}

fn spec(source: &Path, key: &str, hook: Option<Vec<CommandSpec>>) -> BuildSpec {
    BuildSpec {
        env: EnvKey::new("shop", "staging"),
        source_dir: source.to_owned(),
        artifact_key: key.to_owned(),
        commit: Some("abc123".into()),
        hook,
        dockerfile: None,
    }
}

const COUNTING_HOOK: &str = r#"set -e
test "$(pwd)" = "$SLIPWAY_APP_DIR"
test "$TMPDIR" = /tmp
echo "built with $API_KEY" > "$SLIPWAY_APP_DIR/built.txt"
count=$(cat "$SLIPWAY_CACHE_DIR/count" 2>/dev/null || echo 0)
count=$((count + 1))
echo "$count" > "$SLIPWAY_CACHE_DIR/count"
echo "build number $count"
echo "using $API_KEY" >&2"#;

fn counting_hook() -> Vec<CommandSpec> {
    let mut hook = script("build", COUNTING_HOOK, Duration::from_secs(60));
    hook.env.insert("API_KEY".into(), "hunter2-secret".into());
    vec![hook]
}

#[tokio::test]
async fn a_build_copies_the_source_runs_the_hook_and_keeps_the_cache() {
    let (data, source) = (
        tempfile::tempdir().expect("data"),
        tempfile::tempdir().expect("source"),
    );
    source_tree(source.path());
    let runtime = LocalRuntime::new(data.path().to_owned());
    let (log, store) = recorded_log(&["hunter2-secret"]);

    let artifact = runtime
        .build(&spec(source.path(), "k1", Some(counting_hook())), &log)
        .await
        .expect("build");
    assert_eq!(
        runtime.artifact("k1").await.expect("artifact"),
        Some(artifact.clone())
    );
    let Artifact::Directory { path } = &artifact else {
        panic!("a directory artifact")
    };
    let dir = Path::new(path);
    assert_eq!(
        fs::read_to_string(dir.join("built.txt")).expect("built"),
        "built with hunter2-secret\n"
    );
    let mode = fs::metadata(dir.join("bin/serve"))
        .expect("script")
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "the script stays executable");
    assert_eq!(
        fs::read_link(dir.join("serve")).expect("link"),
        Path::new("bin/serve")
    );
    assert!(!dir.join(".git").exists() && !dir.join(".slipway").exists());
    let lines = store.lines();
    assert!(
        lines.contains(&"[build] build number 1".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"[build] using ****".to_owned()),
        "stderr is logged, masked: {lines:?}"
    );

    // Another commit of the same app finds what the first build left in the cache.
    runtime
        .build(&spec(source.path(), "k2", Some(counting_hook())), &log)
        .await
        .expect("second build");
    assert!(store.lines().contains(&"[build] build number 2".to_owned()));
    assert_eq!(
        fs::read_dir(data.path().join("builds"))
            .expect("builds")
            .count(),
        0
    );
}

#[tokio::test]
async fn a_failed_build_leaves_no_artifact() {
    let (data, source) = (
        tempfile::tempdir().expect("data"),
        tempfile::tempdir().expect("source"),
    );
    let runtime = LocalRuntime::new(data.path().to_owned());
    let (log, store) = recorded_log(&[]);
    let hook = vec![
        script("build", "echo first", Duration::from_secs(60)),
        script("build", "echo second; exit 3", Duration::from_secs(60)),
        script("build", "echo third", Duration::from_secs(60)),
    ];

    let error = runtime
        .build(&spec(source.path(), "k1", Some(hook)), &log)
        .await
        .expect_err("fails");
    assert_eq!(error.to_string(), "build hook failed: exit code 3");
    assert_eq!(store.lines(), ["[build] first", "[build] second"]);
    assert_eq!(runtime.artifact("k1").await.expect("artifact"), None);
    assert!(!data.path().join("artifacts/k1").exists());
    assert_eq!(
        fs::read_dir(data.path().join("builds"))
            .expect("builds")
            .count(),
        0
    );
}

#[tokio::test]
async fn a_build_that_runs_too_long_is_stopped_and_fails() {
    let (data, source) = (
        tempfile::tempdir().expect("data"),
        tempfile::tempdir().expect("source"),
    );
    let runtime = LocalRuntime::new(data.path().to_owned());
    let (log, _) = recorded_log(&[]);
    let hook = vec![script("build", "sleep 1000", Duration::from_millis(300))];

    let error = runtime
        .build(&spec(source.path(), "k1", Some(hook)), &log)
        .await
        .expect_err("fails");
    assert_eq!(error.to_string(), "build hook timed out after 300ms");
    assert_eq!(runtime.artifact("k1").await.expect("artifact"), None);
}

#[tokio::test]
async fn only_a_marked_directory_is_an_artifact() {
    let (data, source) = (
        tempfile::tempdir().expect("data"),
        tempfile::tempdir().expect("source"),
    );
    fs::write(source.path().join("app.py"), "print('hi')\n").expect("source file");
    let runtime = LocalRuntime::new(data.path().to_owned());
    let (log, _) = recorded_log(&[]);

    // What a build killed between its rename and its marker leaves behind.
    fs::create_dir_all(data.path().join("artifacts/k1")).expect("half-built");
    fs::write(data.path().join("artifacts/k1/partial"), "").expect("partial file");
    assert_eq!(runtime.artifact("k1").await.expect("artifact"), None);

    let artifact = runtime
        .build(&spec(source.path(), "k1", None), &log)
        .await
        .expect("build without hook");
    assert_eq!(
        runtime.artifact("k1").await.expect("artifact"),
        Some(artifact.clone())
    );
    assert!(data.path().join("artifacts/k1/app.py").is_file());
    assert!(
        !data.path().join("artifacts/k1/partial").exists(),
        "the half-built directory was replaced"
    );

    runtime.prune(&artifact).await.expect("prune");
    assert_eq!(runtime.artifact("k1").await.expect("artifact"), None);
    assert!(!data.path().join("artifacts/k1").exists());
    let elsewhere = directory(source.path());
    assert!(
        runtime.prune(&elsewhere).await.is_err(),
        "prune deletes nothing outside the artifacts"
    );
    assert!(source.path().join("app.py").exists());
}
