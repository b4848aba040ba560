//! The OpenAPI 3 description, generated from the handlers' annotations (never hand-kept),
//! served at `/api/openapi.json` with interactive docs at `/api/docs`.

use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "fnbox", description = "Serverless functions in Docker (runc) and gVisor (runsc) sandboxes."),
    paths(
        routes::health::healthz,
        routes::functions::list,
        routes::functions::create,
        routes::functions::get,
        routes::functions::update,
        routes::functions::delete,
        routes::functions::invoke,
        routes::executions::list,
        routes::executions::stream,
        routes::executions::get,
        routes::templates::list,
        routes::pools::stats,
        routes::comparisons::compare,
        routes::comparisons::list,
        routes::comparisons::get,
        routes::metrics::summary,
        routes::metrics::timeseries,
        routes::metrics::errors,
        routes::metrics::prometheus,
    ),
    tags(
        (name = "functions", description = "Create, change, delete and invoke functions"),
        (name = "executions", description = "The record of every invocation"),
        (name = "metrics", description = "Aggregates, comparisons, Prometheus"),
        (name = "system", description = "Health and pools"),
    )
)]
pub struct ApiDoc;
