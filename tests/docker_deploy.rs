//! The docker runtime on a real Docker Engine: an app's Dockerfile is built and its
//! release runs as containers behind the router, with the local runtime's guarantees —
//! hooks in ephemeral containers, health checks, zero-downtime switch, rollback when the
//! new release never gets healthy, SIGKILL after `stop_timeout`, build reuse, and
//! re-adoption of running containers when the server restarts.

mod docker;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use docker::*;
use slipway::ids::EnvKey;
use slipway::pipeline::model::{Artifact, OperationKind, OperationState};
use slipway::pipeline::traits::Store;

const HOOKS: &str = "hooks:\n  before_release: \"echo before_release of $SLIPWAY_RELEASE in $(pwd)\"\n  post_deploy: \"echo post_deploy ran\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_deploys_reuses_the_build_and_readopts_after_a_restart() {
    let app = unique_app("dkbuild");
    let _cleanup = Cleanup {
        app: app.clone(),
        images: vec![],
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let data = work.path().join("data");
    let stack = Stack::start(&data).await;

    let v1 = app_dir(
        work.path(),
        "v1",
        "hello from one",
        &web_config(&app, HTTPD, "2s", HOOKS),
    );
    let op = stack.deploy(&app, "staging", upload(&v1)).await;
    let log = stack.log(&op).await;
    assert_eq!(op.state, OperationState::Succeeded, "{log}");
    assert!(
        log.contains("[build] Step 1/"),
        "build output is streamed into the log:\n{log}"
    );
    assert!(
        log.contains("[before_release] before_release of v1 in /app"),
        "{log}"
    );
    assert!(log.contains("[post_deploy] post_deploy ran"), "{log}");
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "hello from one".to_owned()))
    );
    assert!(
        containers_of(&app, "hook").is_empty(),
        "hook containers are removed after they ran"
    );

    // The instance is a labelled container with a memory limit from `size`.
    let instances = stack
        .store
        .instances(Some(&EnvKey::new(&app, "staging")))
        .await
        .expect("instances");
    assert_eq!(instances.len(), 1);
    let handle = &instances[0].handle;
    let labels = docker(&["inspect", "-f", "{{json .Config.Labels}}", handle]);
    for expected in [
        format!("\"slipway.app\":\"{app}\""),
        "\"slipway.env\":\"staging\"".to_owned(),
        "\"slipway.service\":\"web\"".to_owned(),
        "\"slipway.release\":\"v1\"".to_owned(),
        "\"slipway.instance\":\"1\"".to_owned(),
    ] {
        assert!(labels.contains(&expected), "{expected} in {labels}");
    }
    assert_eq!(
        docker(&["inspect", "-f", "{{.HostConfig.Memory}}", handle]),
        (64 * 1024 * 1024).to_string()
    );
    let release = stack
        .store
        .current_release(&EnvKey::new(&app, "staging"))
        .await
        .expect("release")
        .expect("one");
    let Artifact::Image { reference, .. } = &release.artifact else {
        panic!("an image artifact: {:?}", release.artifact)
    };
    assert!(
        reference.starts_with(&format!("slipway/{app}:")),
        "{reference}"
    );

    // A new version replaces the container; the old one stops on SIGTERM.
    let v2 = app_dir(
        work.path(),
        "v2",
        "hello from two",
        &web_config(&app, HTTPD, "2s", HOOKS),
    );
    let op = stack.deploy(&app, "staging", upload(&v2)).await;
    let log = stack.log(&op).await;
    assert_eq!(op.state, OperationState::Succeeded, "{log}");
    assert!(log.contains("web.1 (v1) stopped on SIGTERM"), "{log}");
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "hello from two".to_owned()))
    );
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("id={handle}")]),
        "",
        "the old container is removed"
    );

    // The same folder again: no build, no new release; only post_deploy runs.
    let op = stack.deploy(&app, "staging", upload(&v2)).await;
    let log = stack.log(&op).await;
    assert_eq!(op.state, OperationState::Succeeded, "{log}");
    assert!(!log.contains("[build]"), "no rebuild:\n{log}");
    assert!(log.contains("no change since v2"), "{log}");

    // The same build deployed to another environment is reused, not rebuilt.
    let op = stack.deploy(&app, "production", upload(&v2)).await;
    let log = stack.log(&op).await;
    assert_eq!(op.state, OperationState::Succeeded, "{log}");
    assert!(log.contains("reusing the build"), "{log}");
    assert_eq!(
        stack.get(&app, "production").await,
        Ok((200, "hello from two".to_owned()))
    );

    // A restarted server finds its containers and routes to them without a redeploy.
    stack.stop().await;
    let stack = Stack::start(&data).await;
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "hello from two".to_owned()))
    );
    assert_eq!(
        stack.get(&app, "production").await,
        Ok((200, "hello from two".to_owned()))
    );
    let op = stack
        .run(&app, "staging", OperationKind::Redeploy, None)
        .await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_never_gets_healthy_is_rolled_back_while_the_old_one_serves() {
    let app = unique_app("dkunhealthy");
    let _cleanup = Cleanup {
        app: app.clone(),
        images: vec![],
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let stack = Stack::start(&work.path().join("data")).await;

    let good = app_dir(
        work.path(),
        "good",
        "good release",
        &web_config(&app, HTTPD, "2s", ""),
    );
    let op = stack.deploy(&app, "staging", upload(&good)).await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );

    // Serves, but its health check path answers 404: never healthy under `strict`.
    let bad = app_dir(
        work.path(),
        "bad",
        "bad release",
        &web_config(&app, HTTPD, "2s", ""),
    );
    std::fs::remove_file(bad.join("www/healthcheck")).expect("remove the health page");
    let op = stack.deploy(&app, "staging", upload(&bad)).await;
    let log = stack.log(&op).await;
    assert_eq!(op.state, OperationState::RolledBack, "{log}");
    assert!(log.contains("did not become healthy within 8s"), "{log}");
    assert!(log.contains("rolled back: v1 is serving"), "{log}");
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "good release".to_owned()))
    );
    let running = containers_of(&app, "instance");
    assert_eq!(
        running.len(),
        1,
        "only the old container is left: {running:?}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_ignores_sigterm_is_killed_after_its_stop_timeout() {
    let app = unique_app("dkstubborn");
    let _cleanup = Cleanup {
        app: app.clone(),
        images: vec![],
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let stack = Stack::start(&work.path().join("data")).await;

    let stubborn = "trap '' TERM; httpd -f -p $PORT -h /www & wait";
    let v1 = app_dir(
        work.path(),
        "v1",
        "stubborn",
        &web_config(&app, stubborn, "1s", ""),
    );
    let op = stack.deploy(&app, "staging", upload(&v1)).await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );

    let v2 = app_dir(
        work.path(),
        "v2",
        "polite",
        &web_config(&app, HTTPD, "1s", ""),
    );
    let started = Instant::now();
    let op = stack.deploy(&app, "staging", upload(&v2)).await;
    let log = stack.log(&op).await;
    assert_eq!(op.state, OperationState::Succeeded, "{log}");
    assert!(
        log.contains("web.1 (v1) ignored SIGTERM for 1s: killed with SIGKILL"),
        "{log}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "polite".to_owned()))
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_containers_are_deployed() {
    let app = unique_app("dkzero");
    let _cleanup = Cleanup {
        app: app.clone(),
        images: vec![],
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let stack = Stack::start(&work.path().join("data")).await;
    let v1 = app_dir(work.path(), "v1", "one", &web_config(&app, HTTPD, "2s", ""));
    let op = stack.deploy(&app, "staging", upload(&v1)).await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );

    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(std::sync::Mutex::new(Vec::new())),
    );
    let seen_two = Arc::new(AtomicBool::new(false));
    let host = format!("{app}-staging.localhost");
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (done, ok, failed, seen_two, host) = (
            done.clone(),
            ok.clone(),
            failed.clone(),
            seen_two.clone(),
            host.clone(),
        );
        let router = stack.router_addr;
        clients.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                match get_via(router, &host).await {
                    Ok((200, body)) if body == "one" || body == "two" => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if body == "two" {
                            seen_two.store(true, Ordering::Relaxed);
                        }
                    }
                    other => failed.lock().expect("lock").push(format!("{other:?}")),
                }
            }
        }));
    }
    let v2 = app_dir(work.path(), "v2", "two", &web_config(&app, HTTPD, "2s", ""));
    let op = stack.deploy(&app, "staging", upload(&v2)).await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );
    wait_for(
        Duration::from_secs(10),
        "requests answered by the new release",
        || {
            let seen = seen_two.clone();
            async move { seen.load(Ordering::Relaxed) }
        },
    )
    .await;
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client task");
    }
    let failed = failed.lock().expect("lock").clone();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        failed.len() + ok.load(Ordering::Relaxed)
    );
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "the clients made requests throughout"
    );
    stack.stop().await;
}

#[test]
fn the_server_refuses_to_start_when_docker_host_names_no_engine() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "serve",
            "--runtime",
            "docker",
            "--listen",
            "127.0.0.1:0",
            "--router",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("slipway starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().expect("wait for slipway") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = server.kill();
            panic!("slipway serve --runtime docker kept running without an engine");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success());
    assert!(
        stderr.contains("cannot reach the Docker Engine at unix:///nonexistent/docker.sock"),
        "{stderr}"
    );
}
