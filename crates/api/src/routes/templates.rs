use axum::Json;
use fnbox_engine::templates::{self, Template};

/// The bundled example functions, in Python and JavaScript, with sample inputs.
#[utoipa::path(get, operation_id = "listTemplates", path = "/api/v1/templates", tag = "functions",
    responses((status = 200, description = "Bundled examples in Python and JavaScript", body = Vec<Template>)))]
pub async fn list() -> Json<Vec<Template>> {
    Json(templates::all())
}
