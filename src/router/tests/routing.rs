//! Which requests go where: hosts, domains, fixed ports, and the router's own answers when
//! nothing can take a request; which release answered, and `probe`.

use hyper::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::support::*;
use crate::ids::{EnvKey, ReleaseNumber};
use crate::pipeline::traits::Traffic;

#[tokio::test]
async fn requests_are_routed_by_host_in_any_case_and_with_any_port() {
    let router = TestRouter::start().await;
    let shop = TestBackend::start("shop").await;
    let blog = TestBackend::start("blog").await;
    router.router.switch(&env(), vec![shop.backend(1)]).await;
    router
        .router
        .switch(&EnvKey::new("blog", "prod"), vec![blog.backend(1)])
        .await;

    assert_eq!(get(router.address, &router.host(), "/").await.body, "shop");
    assert_eq!(
        get(router.address, "Blog-Prod.LOCALHOST", "/").await.body,
        "blog"
    );
    assert_eq!(
        get(router.address, "blog-prod.localhost:9999", "/")
            .await
            .body,
        "blog"
    );
    assert_eq!(router.router.requests_total(), 3);
}

#[tokio::test]
async fn an_unknown_host_gets_404_naming_it() {
    let router = TestRouter::start().await;
    let reply = get(router.address, "nobody-here.localhost", "/").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body.trim(),
        "no app is routed at nobody-here.localhost"
    );
}

#[tokio::test]
async fn a_known_host_without_instances_gets_503() {
    let router = TestRouter::start().await;
    router.router.switch(&env(), Vec::new()).await;
    let reply = get(router.address, &router.host(), "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body.trim(), "no healthy instance of shop/staging");
}

#[tokio::test]
async fn configured_domains_route_and_removed_environments_stop_routing() {
    let router = TestRouter::start().await;
    let shop = TestBackend::start("shop").await;
    router.router.switch(&env(), vec![shop.backend(1)]).await;
    router
        .router
        .set_domains(&env(), vec!["Shop.Example.com".to_owned()]);
    assert_eq!(
        get(router.address, "shop.example.com", "/").await.body,
        "shop"
    );

    router.router.remove(&env());
    assert_eq!(
        get(router.address, "shop.example.com", "/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(router.address, &router.host(), "/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_fixed_port_routes_every_host_to_its_environment() {
    let router = TestRouter::start().await;
    let shop = TestBackend::start("shop").await;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fixed port");
    let fixed = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(router.router.clone().serve_environment(
        env(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));

    let reply = get(fixed, "anything.example", "/").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not switched yet: {}",
        reply.body
    );
    router.router.switch(&env(), vec![shop.backend(1)]).await;
    assert_eq!(get(fixed, "anything.example", "/").await.body, "shop");

    let _ = stop.send(());
    within(served).await.expect("task").expect("served");
}

#[tokio::test]
async fn the_release_header_is_added_only_when_asked_for() {
    let router = TestRouter::start().await;
    let shop = TestBackend::start("shop").await;
    router.router.switch(&env(), vec![shop.backend(7)]).await;

    let mut client = Client::connect(router.address).await;
    let plain = client.get(&router.host(), "/").await;
    assert_eq!(plain.header("x-slipway-release"), None);

    let request = hyper::Request::get("/")
        .header("host", router.host())
        .header("X-Slipway-Debug", "Release")
        .body(empty_body())
        .expect("request");
    let asked = Reply::read(client.send(request).await).await;
    assert_eq!(asked.header("x-slipway-release"), Some("v7"));
}

#[tokio::test]
async fn probe_says_which_release_answers_through_the_router() {
    let router = TestRouter::start().await;
    let old = TestBackend::start("old").await;
    let new = TestBackend::start("new").await;
    router.router.switch(&env(), vec![old.backend(3)]).await;
    assert_eq!(router.router.probe(&env()).await, Ok(ReleaseNumber(3)));

    router.router.switch(&env(), vec![new.backend(4)]).await;
    assert_eq!(router.router.probe(&env()).await, Ok(ReleaseNumber(4)));

    router.router.switch(&env(), Vec::new()).await;
    let error = router.router.probe(&env()).await.expect_err("no instance");
    assert!(
        error.contains("503") && error.contains("no healthy instance of shop/staging"),
        "{error}"
    );

    let error = router
        .router
        .probe(&EnvKey::new("ghost", "town"))
        .await
        .expect_err("unknown");
    assert!(error.contains("404"), "{error}");
}

#[tokio::test]
async fn the_url_names_the_host_and_the_router_port() {
    let router = TestRouter::start().await;
    assert_eq!(
        router.router.url(&env()),
        format!("http://shop-staging.localhost:{}", router.address.port())
    );
}
