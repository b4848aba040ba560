use axum::Json;
use fnbox_engine::templates::{self, Template};

/// The bundled example functions, in Python and JavaScript, with sample inputs.
pub async fn list() -> Json<Vec<Template>> {
    Json(templates::all())
}
