//! The `/api/v1` router and its OpenAPI document, built together: every route is
//! registered through `utoipa_axum::routes!` from the `#[utoipa::path]` of its handler,
//! so a route cannot be mounted without being documented (and `/api/v1/openapi.json`
//! is generated from the code, never written by hand).

use std::sync::OnceLock;

use axum::extract::DefaultBodyLimit;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::server::error::MAX_JSON_BYTES;
use crate::server::{activity, api, catalog, maintenance, operations, tokens, AppState};
use crate::source::upload::MAX_UPLOAD_BYTES;

#[derive(OpenApi)]
#[openapi(
    info(title = "Slipway API", description = "Deploys, operations, logs, releases, configuration, activity and tokens. \
        Every route takes `Authorization: Bearer <token>`; a token sees only its environments (others answer 404)."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "environments"), (name = "operations"), (name = "activity"), (name = "tokens"), (name = "meta"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document (no token needed).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document of this API", content_type = "application/json")))]
pub async fn openapi_json() -> Json<&'static Document> {
    Json(document())
}

/// The routes under `/api/v1` with their documentation.
///
/// Each route reads at most `MAX_JSON_BYTES` of body, except the folder upload, which
/// has its own limit (`MAX_UPLOAD_BYTES`).
pub fn api_router() -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(api::deploy_upload))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES as usize));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(catalog::list_apps))
        .routes(routes!(catalog::list_environments))
        .routes(routes!(catalog::get_environment))
        .routes(routes!(api::create_operation))
        .routes(routes!(api::list_releases))
        .routes(routes!(api::list_variables, api::change_variables))
        .routes(routes!(maintenance::set_maintenance))
        .routes(routes!(operations::list_operations))
        .routes(routes!(operations::get_operation))
        .routes(routes!(operations::cancel_operation))
        .routes(routes!(operations::operation_log))
        .routes(routes!(operations::operation_log_stream))
        .routes(routes!(activity::activity))
        .routes(routes!(activity::activity_csv))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .merge(uploads)
}

/// The OpenAPI document, generated once from `api_router()`.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(|| api_router().into_openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route_with_its_methods() {
        let doc = serde_json::to_value(document()).expect("the document serializes");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, methods) in [
            ("/api/v1/operations/{id}/log/stream", &["get"][..]),
            (
                "/api/v1/apps/{app}/environments/{env}/config",
                &["get", "patch"],
            ),
            ("/api/v1/tokens", &["get", "post"]),
            ("/api/v1/tokens/{id}", &["delete"]),
            ("/api/v1/activity.csv", &["get"]),
        ] {
            for method in methods {
                assert!(
                    paths.get(path).and_then(|p| p.get(method)).is_some(),
                    "{method} {path} is missing"
                );
            }
        }
        assert!(doc["components"]["schemas"]["OperationView"].is_object());
    }
}
