//! Image references parse the way `docker pull` reads them, and tags resolve through a
//! registry that challenges for a Bearer token, as Docker Hub and GHCR do.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;

use super::*;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn parses_references_like_docker() {
    let local = ImageRef::parse("127.0.0.1:5000/acme/shop:v1.2").expect("valid");
    assert_eq!(local.registry, "127.0.0.1:5000");
    assert_eq!(local.repository, "acme/shop");
    assert_eq!(local.tag.as_deref(), Some("v1.2"));
    assert_eq!(local.base_url(), "http://127.0.0.1:5000");
    assert_eq!(
        local.pinned(DIGEST),
        format!("127.0.0.1:5000/acme/shop@{DIGEST}")
    );

    let hub = ImageRef::parse("nginx").expect("valid");
    assert_eq!(
        (hub.registry.as_str(), hub.repository.as_str()),
        ("docker.io", "library/nginx")
    );
    assert_eq!(hub.tag_or_latest(), "latest");
    assert_eq!(hub.base_url(), "https://registry-1.docker.io");

    let pinned = ImageRef::parse(&format!("ghcr.io/acme/shop:v1@{DIGEST}")).expect("valid");
    assert_eq!(pinned.digest.as_deref(), Some(DIGEST));
    assert_eq!(pinned.to_string(), format!("ghcr.io/acme/shop:v1@{DIGEST}"));

    let port_no_tag = ImageRef::parse("localhost:5000/shop").expect("valid");
    assert_eq!(
        (port_no_tag.registry.as_str(), port_no_tag.tag.as_deref()),
        ("localhost:5000", None)
    );
}

#[test]
fn refuses_what_is_not_a_reference() {
    for bad in [
        "",
        "Shop:v1",
        "shop@sha256:short",
        "shop:-bad",
        "acme//shop",
    ] {
        assert!(
            matches!(ImageRef::parse(bad), Err(ImageError::BadReference(_))),
            "{bad:?} should be refused"
        );
    }
}

#[test]
fn reads_a_bearer_challenge() {
    let params = bearer_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:acme/shop:pull""#)
        .expect("a bearer challenge");
    assert_eq!(
        params,
        vec![
            ("realm".to_owned(), "https://auth.example/token".to_owned()),
            ("service".to_owned(), "registry.example".to_owned()),
            ("scope".to_owned(), "repository:acme/shop:pull".to_owned()),
        ]
    );
    assert_eq!(bearer_challenge("Basic realm=x"), None);
}

/// A registry that wants a token from its own `/token` endpoint and knows one tag.
async fn fake_registry() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let manifests = |State(address): State<String>,
                     headers: HeaderMap,
                     axum::extract::Path((repo, name, tag)): axum::extract::Path<(
        String,
        String,
        String,
    )>| async move {
        let authorized =
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer good-token");
        let accepts_lists = headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.contains("manifest.list.v2+json") && v.contains("image.index.v1+json")
            });
        if !authorized {
            let challenge = format!(
                r#"Bearer realm="http://{address}/token",service="fake",scope="repository:{repo}/{name}:pull""#
            );
            return (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)]).into_response();
        }
        match (tag.as_str(), accepts_lists) {
            ("v1", true) => (
                StatusCode::OK,
                [("docker-content-digest", DIGEST.to_owned())],
                "{}",
            )
                .into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    };
    let token = |Query(query): Query<std::collections::HashMap<String, String>>| async move {
        if query.get("scope").map(String::as_str) == Some("repository:acme/shop:pull")
            && query.get("service").map(String::as_str) == Some("fake")
        {
            axum::Json(serde_json::json!({ "token": "good-token" })).into_response()
        } else {
            StatusCode::FORBIDDEN.into_response()
        }
    };
    let app = axum::Router::new()
        .route("/v2/{repo}/{name}/manifests/{tag}", get(manifests))
        .route("/token", get(token))
        .with_state(address.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

#[tokio::test]
async fn resolves_a_tag_through_a_token_challenge() {
    let registry = fake_registry().await;
    let resolver = RegistryResolver::new().expect("a client");
    let image = ImageRef::parse(&format!("{registry}/acme/shop:v1")).expect("valid");
    assert_eq!(resolver.resolve(&image).await, Ok(DIGEST.to_owned()));

    let missing = ImageRef::parse(&format!("{registry}/acme/shop:v9")).expect("valid");
    let error = resolver
        .resolve(&missing)
        .await
        .expect_err("v9 does not exist");
    assert_eq!(
        error,
        ImageError::TagNotFound {
            name: format!("{registry}/acme/shop"),
            tag: "v9".into()
        }
    );
    assert!(error.to_string().contains("the tag `v9` of"), "{error}");
}

#[tokio::test]
async fn a_pinned_reference_needs_no_registry() {
    let resolver = RegistryResolver::new().expect("a client");
    let image = ImageRef::parse(&format!("127.0.0.1:1/acme/shop@{DIGEST}")).expect("valid");
    assert_eq!(resolver.resolve(&image).await, Ok(DIGEST.to_owned()));
}
