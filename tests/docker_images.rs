//! Image deploys on a real Docker Engine and a real registry (Debian's `docker-registry`
//! on loopback): a tag is resolved to a digest through the registry's HTTP API, the
//! release pins that digest, so the same bytes run wherever it goes even after the tag
//! moves, the configuration comes from the image itself, and a tag that does not exist
//! fails the deploy before anything changes.

mod docker;

use docker::*;
use slipway::ids::EnvKey;
use slipway::pipeline::model::{Artifact, OperationKind, OperationState, SourceSpec};
use slipway::pipeline::traits::Store;

fn image(reference: String) -> SourceSpec {
    SourceSpec::Image { reference }
}

async fn serving_digest(stack: &Stack, app: &str, env: &str) -> String {
    let release = stack
        .store
        .current_release(&EnvKey::new(app, env))
        .await
        .expect("releases")
        .expect("a release serves");
    match release.artifact {
        Artifact::Image { digest, .. } => digest,
        other => panic!("an image artifact, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_tag_pins_its_digest_even_after_the_tag_moves() {
    let registry = Registry::start().await;
    let app = unique_app("dkimage");
    let repository = format!("{}/{app}", registry.address);
    let _cleanup = Cleanup {
        app: app.clone(),
        images: vec![format!("{repository}:v1")],
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let data = work.path().join("data");
    let stack = Stack::start(&data).await;

    // The image carries its own slipway.yml (in /app): no git repository is needed.
    let one = app_dir(
        work.path(),
        "one",
        "image one",
        &web_config(&app, HTTPD, "2s", ""),
    );
    let digest_one = registry.push(&one, &app, "v1");
    let op = stack
        .deploy(&app, "staging", image(format!("{repository}:v1")))
        .await;
    let log = stack.log(&op).await;
    assert_eq!(op.state, OperationState::Succeeded, "{log}");
    assert!(
        log.contains(&format!("{repository}:v1 is {digest_one}")),
        "{log}"
    );
    assert!(
        !log.contains("[build]"),
        "an image deploy builds nothing:\n{log}"
    );
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "image one".to_owned()))
    );
    assert_eq!(serving_digest(&stack, &app, "staging").await, digest_one);

    // The tag moves to another image.
    let two = app_dir(
        work.path(),
        "two",
        "image two",
        &web_config(&app, HTTPD, "2s", ""),
    );
    let digest_two = registry.push(&two, &app, "v1");
    assert_ne!(digest_one, digest_two);

    // The staging release still runs the digest it pinned, also when redeployed, and the
    // pinned digest goes to production as the same bytes.
    let op = stack
        .run(&app, "staging", OperationKind::Redeploy, None)
        .await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "image one".to_owned()))
    );
    let op = stack
        .deploy(
            &app,
            "production",
            image(format!("{repository}@{digest_one}")),
        )
        .await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );
    assert_eq!(
        stack.get(&app, "production").await,
        Ok((200, "image one".to_owned()))
    );
    assert_eq!(serving_digest(&stack, &app, "production").await, digest_one);

    // Deploying the tag again resolves it anew.
    let op = stack
        .deploy(&app, "staging", image(format!("{repository}:v1")))
        .await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "image two".to_owned()))
    );
    assert_eq!(serving_digest(&stack, &app, "staging").await, digest_two);

    // With Slipway's own copy of the configuration gone, it is read back from the image.
    std::fs::remove_dir_all(data.join("images")).expect("remove the kept configurations");
    let op = stack
        .run(&app, "production", OperationKind::Redeploy, None)
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
async fn a_tag_that_does_not_exist_fails_the_deploy_before_anything_changes() {
    let registry = Registry::start().await;
    let app = unique_app("dkmissing");
    let repository = format!("{}/{app}", registry.address);
    let _cleanup = Cleanup {
        app: app.clone(),
        images: vec![format!("{repository}:v1")],
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let stack = Stack::start(&work.path().join("data")).await;
    let one = app_dir(
        work.path(),
        "one",
        "still here",
        &web_config(&app, HTTPD, "2s", ""),
    );
    registry.push(&one, &app, "v1");
    let op = stack
        .deploy(&app, "staging", image(format!("{repository}:v1")))
        .await;
    assert_eq!(
        op.state,
        OperationState::Succeeded,
        "{}",
        stack.log(&op).await
    );
    let before = containers_of(&app, "instance");

    let op = stack
        .deploy(&app, "staging", image(format!("{repository}:v9")))
        .await;
    let log = stack.log(&op).await;
    assert_eq!(op.state, OperationState::Failed, "{log}");
    let expected = format!("the tag `v9` of {repository} does not exist in the registry");
    assert!(log.contains(&expected), "{log}");
    assert!(
        op.message.as_deref().is_some_and(|m| m.contains(&expected)),
        "{:?}",
        op.message
    );
    assert_eq!(
        stack.get(&app, "staging").await,
        Ok((200, "still here".to_owned()))
    );
    assert_eq!(
        containers_of(&app, "instance"),
        before,
        "no container was started or stopped"
    );
    stack.stop().await;
}
