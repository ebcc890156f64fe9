//! The router's connections to instances: reused while idle, never lent while a response
//! is still streaming on them, replaced when the instance closed them, and closed when
//! the instance leaves the routing table.

use hyper::{Request, StatusCode};

use super::support::{env, eventually, text_body, Client, Reply, TestBackend, TestRouter};
use crate::pipeline::traits::Traffic;

#[tokio::test]
async fn requests_one_after_another_share_one_connection_to_the_instance() {
    let router = TestRouter::start().await;
    let backend = TestBackend::start("one").await;
    router.router.switch(&env(), vec![backend.backend(1)]).await;
    let mut client = Client::connect(router.address).await;
    for _ in 0..5 {
        assert_eq!(client.get(&router.host(), "/").await.body, "one");
    }
    // A second client is served by whichever worker accepted it; each worker keeps its
    // own connections, so at most one more is opened.
    let mut other = Client::connect(router.address).await;
    for _ in 0..5 {
        assert_eq!(other.get(&router.host(), "/").await.body, "one");
    }
    assert!(
        backend.accepted() <= 2,
        "{} connections for 10 sequential requests",
        backend.accepted()
    );
}

#[tokio::test]
async fn a_connection_is_not_lent_while_its_response_still_streams() {
    let router = TestRouter::start().await;
    let backend = TestBackend::start("one").await;
    router.router.switch(&env(), vec![backend.backend(1)]).await;
    let mut streaming = Client::connect(router.address).await;
    let request = Request::get("/stream")
        .header("host", router.host())
        .body(super::support::empty_body())
        .expect("request");
    let response = streaming.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let opened = backend.accepted();

    // The stream's connection is busy: this request needs a connection of its own.
    let mut client = Client::connect(router.address).await;
    assert_eq!(client.get(&router.host(), "/").await.body, "one");
    assert_eq!(backend.accepted(), opened + 1);

    backend.open_gate(1);
    let streamed = Reply::read(response).await;
    assert_eq!(streamed.body, "first\nlast\n");
}

#[tokio::test]
async fn a_post_on_a_connection_the_instance_closed_while_idle_goes_on_a_fresh_one() {
    let router = TestRouter::start().await;
    let backend = TestBackend::start("one").await;
    router.router.switch(&env(), vec![backend.backend(1)]).await;
    let mut client = Client::connect(router.address).await;
    assert_eq!(client.get(&router.host(), "/").await.body, "one");
    let opened = backend.accepted();

    backend.close_connections();
    eventually(|| backend.open() == 0).await;
    let request = Request::post("/upload")
        .header("host", router.host())
        .body(text_body("data"))
        .expect("request");
    let reply = Reply::read(client.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "one received 4 bytes");
    assert_eq!(backend.accepted(), opened + 1);
}

#[tokio::test]
async fn an_instance_switched_away_from_has_its_idle_connections_closed() {
    let router = TestRouter::start().await;
    let old = TestBackend::start("old").await;
    let new = TestBackend::start("new").await;
    router.router.switch(&env(), vec![old.backend(1)]).await;
    let mut client = Client::connect(router.address).await;
    assert_eq!(client.get(&router.host(), "/").await.body, "old");
    assert_eq!(
        old.open(),
        1,
        "the router keeps its connection to the instance"
    );

    router.router.switch(&env(), vec![new.backend(2)]).await;
    assert_eq!(client.get(&router.host(), "/").await.body, "new");
    eventually(|| old.open() == 0).await;
}

#[tokio::test]
async fn a_burst_of_client_connections_is_spread_over_the_workers_and_each_is_counted_until_it_closes(
) {
    let router = TestRouter::with_options(crate::router::RouterOptions {
        workers: 2,
        ..Default::default()
    })
    .await;
    let backend = TestBackend::start("one").await;
    router.router.switch(&env(), vec![backend.backend(1)]).await;

    // All at once, as a load balancer's pool opens: whichever worker wakes first accepts
    // them, and hands over what the other should serve.
    let mut clients = Vec::new();
    for _ in 0..32 {
        clients.push(Client::connect(router.address).await);
    }
    for client in &mut clients {
        assert_eq!(client.get(&router.host(), "/").await.body, "one");
    }
    let open = router.router.client_connections();
    assert_eq!(open.iter().sum::<usize>(), 32, "{open:?}");
    let (fewest, most) = (open.iter().min().unwrap(), open.iter().max().unwrap());
    assert!(most - fewest <= 2, "32 connections served as {open:?}");

    clients.truncate(10);
    eventually(|| router.router.client_connections().iter().sum::<usize>() == 10).await;
    for client in &mut clients {
        assert_eq!(client.get(&router.host(), "/").await.body, "one");
    }
}

#[tokio::test]
async fn requests_to_an_app_slow_to_answer_all_reach_it_though_their_connections_are_new() {
    let router = TestRouter::start().await;
    let backend = TestBackend::start("one").await;
    router.router.switch(&env(), vec![backend.backend(1)]).await;

    // Ten at once on a cold pool, each held by the app: past the few new connections
    // allowed to wait unanswered, the others still go out (after a short wait).
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let (address, host) = (router.address, router.host());
            tokio::spawn(async move { super::support::get(address, &host, "/slow").await })
        })
        .collect();
    for _ in 0..10 {
        assert_eq!(backend.arrived().await, "slow");
    }
    assert_eq!(backend.accepted(), 10);
    backend.open_gate(10);
    for request in requests {
        let reply = super::support::within(request).await.expect("a request");
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "one"));
    }
}

#[tokio::test]
async fn a_burst_on_a_cold_pool_reuses_answered_connections_instead_of_opening_one_each() {
    let router = TestRouter::start().await;
    let backend = TestBackend::start("one").await;
    router.router.switch(&env(), vec![backend.backend(1)]).await;

    let mut clients = Vec::new();
    for _ in 0..32 {
        clients.push(Client::connect(router.address).await);
    }
    let host = router.host();
    let replies =
        futures_util::future::join_all(clients.iter_mut().map(|client| client.get(&host, "/")))
            .await;
    assert!(replies.iter().all(|r| r.body == "one"), "{replies:?}");
    // Each of the 32 requests found no idle connection; only a few new ones may wait to
    // be taken by the app at once (a small app's accept queue overflows past that, and
    // the kernel retries a dropped connection a second later).
    assert!(
        backend.accepted() < 32,
        "{} connections opened for 32 requests at once",
        backend.accepted()
    );
}

#[tokio::test]
async fn a_head_answer_has_no_body_and_its_connection_serves_the_next_request() {
    let router = TestRouter::start().await;
    let backend = TestBackend::start("one").await;
    router.router.switch(&env(), vec![backend.backend(1)]).await;
    let mut client = Client::connect(router.address).await;

    let head = Request::head("/")
        .header("host", router.host())
        .body(super::support::empty_body())
        .expect("request");
    let reply = Reply::read(client.send(head).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    // The length of the GET it stands for, and no body: nothing is waited for.
    assert_eq!(reply.header("content-length"), Some("3"));
    assert_eq!(reply.body, "");
    assert_eq!(client.get(&router.host(), "/").await.body, "one");
    assert_eq!(
        backend.accepted(),
        1,
        "the HEAD's connection was not reused"
    );
}
