//! `/v1/api-tokens`: admins make, list and revoke API tokens over HTTP, as
//! `countersign-hub api-token …` does on the hub's host. A new token's plaintext is in the
//! answer to its creation and nowhere else (not the admin log, not a later listing).

use crate::api_tokens::{self, TokenError};
use crate::callers::{log_action, staff_action, Staff};
use crate::reply::{error, internal};
use crate::roles::{Permission, Role};
use crate::state::Hub;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiToken {
    role: String,
    name: String,
    /// `30d`, `12h`…; none: until revoked.
    #[serde(default)]
    expires: Option<String>,
}

/// `POST /v1/api-tokens` `{"role", "name", "expires"?}` → the token, once.
pub(crate) async fn create(
    State(hub): State<Arc<Hub>>,
    Extension(staff): Extension<Staff>,
    body: Result<Json<NewApiToken>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("expected {{\"role\", \"name\", \"expires\"?}}: {e}")),
    };
    let role: Role = match req.role.parse() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{e}")),
    };
    let lifetime = match req.expires.as_deref().map(api_tokens::parse_lifetime).transpose() {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match api_tokens::create(&hub.db, role, &req.name, lifetime, &staff.actor).await {
        Ok((made, token)) => {
            let detail = format!(
                "`{}` ({}), role {role}, expires {}",
                made.name,
                made.id,
                made.expires_at.as_deref().unwrap_or("never")
            );
            if let Err(r) = log_action(&hub, &staff, "api-token-create", detail).await {
                return r;
            }
            Json(json!({"token": token, "api_token": made})).into_response()
        }
        Err(e @ (TokenError::TooLong(_) | TokenError::EmptyName)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(TokenError::Db(e)) => internal(e),
    }
}

/// `GET /v1/api-tokens`: every token, without secrets.
pub(crate) async fn list(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    let what = "GET /v1/api-tokens";
    if let Err(r) = staff_action(&hub, &headers, Permission::ManageTokens, what, "api-token-list", String::new()).await
    {
        return r;
    }
    match api_tokens::list(&hub.db).await {
        Ok(tokens) => Json(tokens).into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /v1/api-tokens/{id}/revoke`: the token stops working on its next request.
pub(crate) async fn revoke(State(hub): State<Arc<Hub>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let id: String = id.chars().filter(|c| !c.is_control()).take(64).collect();
    let what = "POST /v1/api-tokens/{id}/revoke";
    if let Err(r) = staff_action(&hub, &headers, Permission::ManageTokens, what, "api-token-revoke", id.clone()).await {
        return r;
    }
    match api_tokens::revoke(&hub.db, &id).await {
        Ok(Some(t)) => Json(t).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no API token `{id}`")),
        Err(e) => internal(e),
    }
}
