//! `/openapi.json`, generated from the handlers' `#[utoipa::path]` and the [`model`] types.
//!
//! [`model`]: super::model

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{read, release, ui, write};

/// The OpenAPI description of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "shoal",
        description = "Control plane API: services, servers, scaling, deploys. Errors are \
                       {\"error\": \"...\"}; mutating endpoints need Authorization: Bearer."
    ),
    paths(
        read::root,
        read::status,
        read::servers,
        read::services,
        read::stats,
        read::events,
        read::metrics,
        read::openapi,
        ui::ui,
        write::scale_up,
        write::scale_down,
        release::status,
        release::revisions,
        release::deploy,
        release::rolling_update,
        release::rollback,
        write::reload,
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "status", description = "Liveness, status, metrics, the status page and this document"),
        (name = "servers", description = "The fleet"),
        (name = "services", description = "Services, their replicas and their journal"),
        (name = "commands", description = "Changes: scale, deploy, reload (bearer token)"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme the mutating operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The OpenAPI 3.1 description of this API.
#[must_use]
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use serde_json::Value;

    use super::super::{routes, Access, ApiState};

    fn doc() -> Value {
        serde_json::to_value(super::openapi_document()).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                out.push((path.clone(), method.to_uppercase(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let served: BTreeSet<(String, String)> = routes()
            .iter()
            .map(|r| (r.path.to_owned(), r.method.to_string()))
            .collect();
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(p, m, _)| (p, m))
            .collect();
        let missing: Vec<_> = served.difference(&documented).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
        assert_eq!(served.len(), routes().len(), "a route is listed twice");
    }

    #[test]
    fn token_routes_and_only_they_name_the_bearer_scheme() {
        let doc = doc();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"],
            serde_json::json!({ "type": "http", "scheme": "bearer" })
        );
        for r in routes() {
            let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
            let security = op["security"].as_array();
            match r.access {
                Access::Token => {
                    assert_eq!(
                        security.map(Vec::as_slice),
                        Some(&[serde_json::json!({ "bearer": [] })][..]),
                        "{} {}",
                        r.method,
                        r.path
                    );
                    assert!(
                        op["responses"]["401"].is_object(),
                        "{} {}",
                        r.method,
                        r.path
                    );
                }
                Access::Open => assert!(security.is_none(), "{} {}", r.method, r.path),
            }
        }
    }

    /// Every `$ref` in `v` names a schema in `components.schemas`.
    fn check_refs(v: &Value, doc: &Value, at: &str) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let name = r
                        .strip_prefix("#/components/schemas/")
                        .unwrap_or_else(|| panic!("{at}: unexpected $ref {r}"));
                    assert!(
                        doc["components"]["schemas"][name].is_object(),
                        "{at}: $ref {r} has no schema"
                    );
                }
                for (k, x) in m {
                    check_refs(x, doc, &format!("{at}/{k}"));
                }
            }
            Value::Array(a) => a.iter().for_each(|x| check_refs(x, doc, at)),
            _ => {}
        }
    }

    #[test]
    fn every_response_has_a_schema_and_errors_are_error_bodies() {
        let doc = doc();
        for (path, method, op) in operations(&doc) {
            let responses = op["responses"].as_object().expect("responses");
            assert!(responses.contains_key("200") || responses.contains_key("202"));
            for (status, resp) in responses {
                let at = format!("{method} {path} {status}");
                let content = resp["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{at}: no content"));
                assert!(!content.is_empty(), "{at}: no media type");
                for (media, body) in content {
                    let schema = &body["schema"];
                    assert!(
                        schema.as_object().is_some_and(|s| !s.is_empty()),
                        "{at} {media}: no schema"
                    );
                    match path.as_str() {
                        "/metrics" => {}
                        "/ui" => assert_eq!(media, "text/html; charset=utf-8", "{at}"),
                        _ => assert_eq!(media, "application/json", "{at}"),
                    }
                    if !status.starts_with('2') {
                        assert_eq!(
                            schema["$ref"], "#/components/schemas/ErrorBody",
                            "{at}: errors are ErrorBody"
                        );
                    }
                }
            }
        }
        check_refs(&doc, &doc, "");
        let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        assert!(metrics[crate::metrics::CONTENT_TYPE]["schema"]["type"] == "string");
    }

    #[test]
    fn schemas_mark_always_present_fields_required_and_left_out_ones_not() {
        let doc = doc();
        let schema = |name: &str| doc["components"]["schemas"][name].clone();
        let required = |name: &str| -> BTreeSet<String> {
            schema(name)["required"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no required"))
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        // `null` when unknown, never left out.
        let summary = required("ServiceSummary");
        for f in [
            "business_hours",
            "utilization",
            "autoscaler",
            "rollout",
            "last_error",
        ] {
            assert!(summary.contains(f), "ServiceSummary.{f}");
        }
        assert!(required("Server").contains("reason"));
        // Left out when empty.
        let event = required("Event");
        for f in [
            "desired_before",
            "desired_after",
            "replica",
            "server",
            "details",
        ] {
            assert!(!event.contains(f), "Event.{f}");
        }
        assert_eq!(required("ErrorBody"), BTreeSet::from(["error".to_owned()]));
    }

    /// A real router on a real socket: every route of the table answers with its handler
    /// (not the fallback), and token routes refuse a request without the token.
    #[tokio::test]
    async fn the_router_serves_every_route_in_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::test_app(dir.path());
        let state = Arc::new(ApiState::new(app, Some("secret".into())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, super::super::router(state))
                .await
                .unwrap();
        });
        let http = reqwest::Client::new();
        for r in routes() {
            let url = format!("http://{addr}{}", r.path.replace("{name}", "web"));
            let resp = http.request(r.method.clone(), &url).send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let at = format!("{} {}: {status} {text}", r.method, r.path);
            assert!(!text.contains("no such endpoint"), "{at}");
            assert!(!text.contains("method not allowed"), "{at}");
            match r.access {
                Access::Token => assert_eq!(status, 401, "{at}"),
                // The service is configured but not started in this test: stats, its
                // update and its revisions are 404.
                Access::Open
                    if ["/stats", "/update", "/revisions"]
                        .iter()
                        .any(|p| r.path.ends_with(p)) =>
                {
                    assert_eq!(status, 404, "{at}")
                }
                Access::Open => assert_eq!(status, 200, "{at}"),
            }
        }
        let nothing = http
            .get(format!("http://{addr}/nothing"))
            .send()
            .await
            .unwrap();
        assert_eq!(nothing.status(), 404);
        server.abort();
    }
}
