//! Which requests go where: hosts, domains, fixed ports, and the router's own answers when
//! nothing can take a request; which release answered, and `probe`.

use std::net::SocketAddr;

use hyper::StatusCode;
use tokio::net::TcpListener;

use super::support::*;
use crate::ids::{EnvKey, ReleaseNumber};
use crate::pipeline::traits::{Exposure, Traffic};

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
async fn an_exposed_port_and_domain_route_to_their_environment_until_closed() {
    let router = TestRouter::start().await;
    let shop = TestBackend::start("shop").await;
    let port = free_port().await;
    let fixed = SocketAddr::from(([127, 0, 0, 1], port));
    let exposure = Exposure {
        domain: Some("shop.example.com".to_owned()),
        port: Some(port),
    };
    router
        .router
        .expose(&env(), &exposure)
        .await
        .expect("the port is free");
    let reply = get(fixed, "anything.example", "/").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not switched yet: {}",
        reply.body
    );
    router.router.switch(&env(), vec![shop.backend(1)]).await;
    assert_eq!(get(fixed, "anything.example", "/").await.body, "shop");
    assert_eq!(
        get(router.address, "Shop.Example.com", "/").await.body,
        "shop"
    );
    assert_eq!(
        router.router.url(&env()),
        format!("http://shop.example.com:{}", router.address.port())
    );

    // Another environment cannot have the same port, and nothing of the first changes.
    let blog = EnvKey::new("blog", "prod");
    let refused = router
        .router
        .expose(
            &blog,
            &Exposure {
                domain: None,
                port: Some(port),
            },
        )
        .await
        .expect_err("the port is the shop's");
    assert_eq!(
        refused,
        format!("port {port} is already the port of shop/staging (its environments.staging.port); give blog/prod another one (environments.prod.port)")
    );
    assert_eq!(get(fixed, "anything.example", "/").await.body, "shop");

    router
        .router
        .expose(&env(), &Exposure::default())
        .await
        .expect("closing cannot fail");
    eventually(|| std::net::TcpStream::connect(fixed).is_err()).await;
    assert_eq!(
        get(router.address, "shop.example.com", "/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_environment_port_closes_with_the_router() {
    let router = TestRouter::start().await;
    let port = free_port().await;
    router
        .router
        .expose(
            &env(),
            &Exposure {
                domain: None,
                port: Some(port),
            },
        )
        .await
        .expect("the port is free");
    let fixed = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(std::net::TcpStream::connect(fixed).is_ok());
    router.shut_down().await.expect("served");
    assert!(std::net::TcpStream::connect(fixed).is_err());
}

/// A port nothing listens on right now.
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
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
