//! Deploys without loss: switching, draining, holding, retrying a request whose instance
//! died, and the answers when an instance fails.

use std::time::{Duration, Instant};

use hyper::StatusCode;

use super::support::*;
use crate::pipeline::traits::{Backend, Traffic};
use crate::router::RouterOptions;

#[tokio::test]
async fn a_switch_moves_new_requests_while_the_old_instance_finishes_its_own() {
    let router = TestRouter::start().await;
    let old = TestBackend::start("old").await;
    let new = TestBackend::start("new").await;
    router.router.switch(&env(), vec![old.backend(1)]).await;

    let (address, host) = (router.address, router.host());
    let slow = tokio::spawn(async move { get(address, &host, "/slow").await });
    assert_eq!(old.arrived().await, "slow");

    router.router.switch(&env(), vec![new.backend(2)]).await;
    assert_eq!(get(router.address, &router.host(), "/").await.body, "new");
    assert_eq!(
        router
            .router
            .drain(&[old.backend(1)], Duration::from_millis(100))
            .await,
        1
    );

    old.open_gate(1);
    let slow = within(slow).await.expect("slow request");
    assert_eq!((slow.status, slow.body.as_str()), (StatusCode::OK, "old"));
    assert_eq!(router.router.drain(&[old.backend(1)], PATIENCE).await, 0);
}

#[tokio::test]
async fn drain_of_backends_that_never_served_returns_at_once() {
    let router = TestRouter::start().await;
    let idle = TestBackend::start("idle").await;
    router.router.switch(&env(), vec![idle.backend(1)]).await;
    let started = Instant::now();
    assert_eq!(router.router.drain(&[idle.backend(1)], PATIENCE).await, 0);
    assert!(started.elapsed() < PATIENCE);
}

#[tokio::test]
async fn a_keep_alive_connection_survives_a_switch() {
    let router = TestRouter::start().await;
    let old = TestBackend::start("old").await;
    let new = TestBackend::start("new").await;
    router.router.switch(&env(), vec![old.backend(1)]).await;

    let mut client = Client::connect(router.address).await;
    assert_eq!(client.get(&router.host(), "/").await.body, "old");
    router.router.switch(&env(), vec![new.backend(2)]).await;
    assert!(client.is_open());
    assert_eq!(client.get(&router.host(), "/").await.body, "new");
    assert!(client.is_open());
}

#[tokio::test]
async fn a_request_held_during_a_deploy_hook_goes_to_the_new_release() {
    let router = TestRouter::start().await;
    let old = TestBackend::start("old").await;
    let new = TestBackend::start("new").await;
    router.router.switch(&env(), vec![old.backend(1)]).await;
    router.router.hold(&env(), PATIENCE).await;

    let (address, host) = (router.address, router.host());
    let held = tokio::spawn(async move { get(address, &host, "/").await });
    // The router has the request once it has counted it; it must still be waiting.
    eventually(|| router.router.requests_total() == 1).await;
    assert!(!held.is_finished());

    router.router.switch(&env(), vec![new.backend(2)]).await;
    router.router.release_hold(&env()).await;
    let reply = within(held).await.expect("held request");
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "new"));
    assert_eq!(get(router.address, &router.host(), "/").await.body, "new");
}

#[tokio::test]
async fn a_request_held_longer_than_the_hold_gets_503() {
    let router = TestRouter::start().await;
    let old = TestBackend::start("old").await;
    router.router.switch(&env(), vec![old.backend(1)]).await;
    let hold = Duration::from_millis(300);
    router.router.hold(&env(), hold).await;

    let started = Instant::now();
    let reply = get(router.address, &router.host(), "/").await;
    assert!(started.elapsed() >= hold);
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body.trim(),
        "deploy in progress: request held for 300ms; try again"
    );
}

#[tokio::test]
async fn a_get_whose_instance_refuses_is_retried_on_another() {
    let router = TestRouter::start().await;
    let alive = TestBackend::start("alive").await;
    let dead = refusing_backend(1, "dead").await;
    // Round-robin starts with the first backend: the dead one.
    router
        .router
        .switch(&env(), vec![dead.clone(), alive.backend(1)])
        .await;
    for _ in 0..4 {
        let reply = get(router.address, &router.host(), "/").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "alive")
        );
    }
}

#[tokio::test]
async fn a_get_that_cannot_reach_the_new_release_is_answered_by_the_one_on_standby() {
    let router = TestRouter::start().await;
    let old = TestBackend::start("old").await;
    let crashed = refusing_backend(2, "crashed").await;
    router.router.switch(&env(), vec![crashed]).await;
    router.router.standby(&env(), vec![old.backend(1)]).await;
    for _ in 0..3 {
        let reply = get(router.address, &router.host(), "/").await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "old"));
    }
    // Never routed to: a request that cannot be sent twice is not sent there.
    let reply = post(router.address, &router.host(), "order").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.body.trim(),
        "could not connect to an instance of shop/staging"
    );

    // Ended: a GET fails as it would without it.
    router.router.standby(&env(), Vec::new()).await;
    let reply = get(router.address, &router.host(), "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.body.trim(),
        "could not connect to an instance of shop/staging"
    );
}

#[tokio::test]
async fn a_get_whose_instance_dies_before_answering_is_retried_but_a_post_is_not() {
    let router = TestRouter::start().await;
    let alive = TestBackend::start("alive").await;
    let (address, dying) = dying_instance().await;
    let dead = Backend {
        address,
        release: crate::ids::ReleaseNumber(1),
        instance: "dying".into(),
    };
    router
        .router
        .switch(&env(), vec![dead.clone(), alive.backend(1)])
        .await;
    for _ in 0..4 {
        let reply = get(router.address, &router.host(), "/").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "alive")
        );
    }

    router.router.switch(&env(), vec![dead]).await;
    let reply = post(router.address, &router.host(), "order").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.body.trim(),
        "an instance of shop/staging closed the request without answering"
    );
    dying.abort();
}

#[tokio::test]
async fn a_post_whose_instance_refuses_gets_502() {
    let router = TestRouter::start().await;
    let dead = refusing_backend(1, "dead").await;
    router.router.switch(&env(), vec![dead.clone()]).await;
    let reply = post(router.address, &router.host(), "order").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.body.trim(),
        "could not connect to an instance of shop/staging"
    );
    assert_eq!(router.router.drain(&[dead], PATIENCE).await, 0);
}

#[tokio::test]
async fn an_instance_that_never_answers_gets_504() {
    let options = RouterOptions {
        upstream_timeout: Duration::from_millis(300),
        ..RouterOptions::default()
    };
    let router = TestRouter::with_options(options).await;
    let stuck = TestBackend::start("stuck").await;
    router.router.switch(&env(), vec![stuck.backend(1)]).await;

    let reply = get(router.address, &router.host(), "/never").await;
    assert_eq!(stuck.arrived().await, "never");
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        reply.body.trim(),
        "an instance of shop/staging did not answer within 300ms"
    );
    assert_eq!(router.router.drain(&[stuck.backend(1)], PATIENCE).await, 0);
}
