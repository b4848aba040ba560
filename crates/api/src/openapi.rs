//! The OpenAPI 3 description, generated from the handlers' annotations (never hand-kept),
//! served at `/api/openapi.json` with interactive docs at `/api/docs`.
//!
//! Responses every operation shares because of a layer, not because of its handler (401 and
//! 429 from the key check, 403 for admin-only operations, 400 for a path parameter that does
//! not decode) are added by [`CrossCutting`] from the same rules the middleware applies.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "fnbox", description = "Serverless functions in Docker (runc) and gVisor (runsc) sandboxes.\n\n\
        When API keys are on, every operation but `/healthz` needs `Authorization: Bearer <token>` \
        (keys are made with `fnbox keys create` or `POST /api/v1/keys`). An `invoke` key may read and invoke; \
        everything else needs an `admin` key."),
    modifiers(&CrossCutting),
    paths(
        routes::health::healthz,
        routes::cluster::view,
        routes::functions::list,
        routes::functions::create,
        routes::functions::get,
        routes::functions::update,
        routes::functions::patch,
        routes::functions::delete,
        routes::functions::invoke,
        routes::functions::build,
        routes::versions::list,
        routes::versions::get,
        routes::versions::rollback,
        routes::versions::list_events,
        routes::versions::save_event,
        routes::versions::delete_event,
        routes::executions::list,
        routes::executions::stream,
        routes::executions::get,
        routes::schedules::create,
        routes::schedules::list_of,
        routes::schedules::list,
        routes::schedules::get,
        routes::schedules::update,
        routes::schedules::delete,
        routes::queue::stats,
        routes::queue::list,
        routes::queue::get,
        routes::queue::retry,
        routes::queue::discard,
        routes::templates::list,
        routes::pools::stats,
        routes::comparisons::compare,
        routes::comparisons::list,
        routes::comparisons::get,
        routes::metrics::summary,
        routes::metrics::timeseries,
        routes::metrics::errors,
        routes::metrics::prometheus,
        routes::keys::create,
        routes::keys::list,
        routes::keys::revoke,
        crate::function_url::call_root,
        crate::function_url::call_path,
    ),
    tags(
        (name = "functions", description = "Create, change, delete and invoke functions"),
        (name = "executions", description = "The record of every invocation"),
        (name = "metrics", description = "Aggregates, comparisons, Prometheus"),
        (name = "async", description = "Asynchronous calls (`Prefer: respond-async`), schedules, the durable queue and its dead letters"),
        (name = "keys", description = "API keys (admin only)"),
        (name = "system", description = "Health and pools"),
        (name = "function URLs", description = "Functions called over plain HTTP, Lambda function URL style (`http: key` or `public`)"),
    )
)]
pub struct ApiDoc;

const BEARER: &str = "bearer";

pub struct CrossCutting;

fn error_response(description: &str, header: Option<(&str, &str)>) -> RefOr<utoipa::openapi::Response> {
    let mut b = ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build());
    if let Some((name, what)) = header {
        b = b.header(name, HeaderBuilder::new().schema(Some(string_schema())).description(Some(what)).build());
    }
    RefOr::T(b.build())
}

fn string_schema() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::T(utoipa::openapi::schema::Schema::Object(
        utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).build(),
    ))
}

fn add(op: &mut Operation, status: &str, response: RefOr<utoipa::openapi::Response>) {
    op.responses.responses.entry(status.to_owned()).or_insert(response);
}

impl Modify for CrossCutting {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key's token (`fnbox keys create`); required when keys are on"))
                    .build(),
            ),
        );
        doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                ("GET", item.get.as_mut()),
                ("PUT", item.put.as_mut()),
                ("POST", item.post.as_mut()),
                ("DELETE", item.delete.as_mut()),
                ("PATCH", item.patch.as_mut()),
                ("HEAD", item.head.as_mut()),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                // One handler serves every method of a function URL; OpenAPI wants an
                // operation id per method.
                if path.starts_with("/fn/") {
                    if let Some(id) = op.operation_id.as_mut() {
                        id.push_str(&method[..1]);
                        id.push_str(&method[1..].to_lowercase());
                    }
                }
                let has_path_params = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
                if has_path_params {
                    add(op, "400", error_response("A path parameter does not decode (bad percent-encoding)", None));
                }
                if path == "/healthz" {
                    // No key needed: an empty requirement is OpenAPI's "anonymous".
                    op.security = Some(vec![SecurityRequirement::default()]);
                    continue;
                }
                add(
                    op,
                    "401",
                    error_response(
                        "Keys are on and no valid key was sent (`unauthorized`, `invalid_token`)",
                        Some(("WWW-Authenticate", "Bearer realm=\"fnbox\"")),
                    ),
                );
                let method = method.parse().unwrap_or(axum::http::Method::GET);
                let concrete = path.replace("{name}", "x").replace("{id}", "x").replace("{version}", "1").replace("{event_name}", "x");
                if !crate::auth::invoke_role_may(&method, &concrete) {
                    add(op, "403", error_response("The key's role may not do this (needs `admin`)", None));
                }
                let retry = Some(("Retry-After", "Seconds to wait"));
                // Answered by the accept loop, before any route, when every connection is busy.
                match op.responses.responses.get_mut("503") {
                    Some(RefOr::T(r)) => r.description.push_str("; or every connection is busy (`too_many_connections`)"),
                    _ => add(op, "503", error_response("Every connection the server keeps is busy (`too_many_connections`)", retry)),
                }
                match op.responses.responses.get_mut("429") {
                    Some(RefOr::T(r)) => r.description.push_str("; or the key's rate limit was exceeded (`rate_limited`)"),
                    _ => add(op, "429", error_response("The key's rate limit was exceeded (`rate_limited`)", retry)),
                }
            }
        }
    }
}
