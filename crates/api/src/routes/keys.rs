//! API keys over the API (admin keys only; the middleware refuses every other caller). The
//! same operations work without a server: `fnbox keys create|list|revoke --data-dir DIR`.

use axum::extract::State;
use axum::Extension;
use axum::http::StatusCode;
use axum::Json;
use fnbox_core::{ApiKey, Role};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::extract::{Json as Body, Path};
use crate::{ApiError, AppState, ErrorBody};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// For people: who or what uses the key.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9]([A-Za-z0-9 ._@:/-]{0,62}[A-Za-z0-9._@:/-])?$")]
    name: String,
    role: Role,
}

/// A new key with its token. The token is shown only here, once; only its hash is stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    key: ApiKey,
    /// Send as `Authorization: Bearer <token>`.
    token: String,
}

#[utoipa::path(post, operation_id = "createKey", path = "/api/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, description = "Created; the token is in this answer only", body = CreatedKey),
        (status = 400, description = "Malformed or empty JSON, or nested too deep (`json_too_deep`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid name or role", body = ErrorBody)))]
pub async fn create(State(s): State<AppState>, Body(req): Body<CreateKey>) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let (key, token) = s.auth.create_key(&req.name, req.role).await?;
    s.engine.keys_changed();
    tracing::info!(id = %key.id, name = %key.name, role = %key.role, "API key created");
    Ok((StatusCode::CREATED, Json(CreatedKey { key, token })))
}

#[utoipa::path(get, operation_id = "listKeys", path = "/api/v1/keys", tag = "keys",
    responses((status = 200, description = "Every key, revoked ones included, oldest first (never tokens)", body = Vec<ApiKey>)))]
pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<ApiKey>>, ApiError> {
    Ok(Json(s.auth.list_keys().await?))
}

#[utoipa::path(delete, operation_id = "revokeKey", path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked (at once on this server; the record stays)"),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "A key cannot revoke itself (`key_in_use`): use another admin key or `fnbox keys revoke`", body = ErrorBody)))]
pub async fn revoke(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Revoking the key a request came with would lock its holder out mid-session (and with the
    // last admin key, lock every admin out of the API), so that takes a second key or the CLI.
    if caller.is_some_and(|Extension(c)| uuid::Uuid::parse_str(&id).is_ok_and(|id| id == c.key_id)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_in_use",
            "an API key cannot revoke itself: use another admin key, or `fnbox keys revoke` on the data dir",
        ));
    }
    s.auth.revoke_key(&id).await?;
    s.engine.keys_changed();
    tracing::info!(%id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn documented_name_pattern_is_the_one_enforced() {
        let doc = serde_json::to_value(crate::ApiDoc::openapi()).expect("doc");
        let pattern = &doc["components"]["schemas"]["CreateKey"]["properties"]["name"]["pattern"];
        assert_eq!(pattern, fnbox_core::keys::KEY_NAME_PATTERN);
    }
}
