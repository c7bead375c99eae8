//! An admin revokes a device (`POST /v1/devices/{id}/revoke`, `countersign-hub device
//! revoke ID`): a lost laptop, a person leaving outside the IdP. Its credential opens
//! nothing from then on; its gateway stops syncing, keeps its local policy and says so,
//! and drops its grants. The device's records stay. Every revocation is in the admin log.
//!
//! It never deletes a device or its records.

use crate::callers::{log_action, Staff};
use crate::db::{Db, DbError};
use crate::reply::{error, internal};
use crate::state::Hub;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

/// Revokes device `id` saying `why`; false when no such live device.
pub async fn revoke(db: &Db, id: &str, why: &str) -> Result<bool, DbError> {
    let why: String = why.chars().filter(|c| !c.is_control()).take(300).collect();
    let done = sqlx::query("UPDATE devices SET revoked_at = $1, revoked_why = $2 WHERE id = $3 AND revoked_at IS NULL")
        .bind(countersign_audit::now_rfc3339())
        .bind(if why.trim().is_empty() { "revoked by an admin" } else { why.as_str() })
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// `POST /v1/devices/{id}/revoke` `{"why"?}`.
pub(crate) async fn revoke_route(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
    Extension(staff): Extension<Staff>,
    body: axum::body::Bytes,
) -> Response {
    let why = match body.is_empty() {
        true => String::new(),
        false => match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => v.get("why").and_then(|w| w.as_str()).unwrap_or_default().to_string(),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("expected {{\"why\"?}}: {e}")),
        },
    };
    let id: String = id.chars().filter(|c| !c.is_control()).take(64).collect();
    match revoke(&hub.db, &id, &why).await {
        Ok(true) => {
            if let Err(r) = log_action(&hub, &staff, "device-revoke", format!("device {id}: {why}")).await {
                return r;
            }
            Json(json!({"revoked": id})).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such device, or it was revoked already"),
        Err(e) => internal(e),
    }
}
