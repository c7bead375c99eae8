//! Who a request comes from, from its headers alone: an enrolled device by the credential
//! enrollment gave it, or a member of staff by an API token (whose role decides what they
//! may do, [`crate::roles`]) or the break-glass admin token. It never reads a request
//! body, never compares a credential other than by its digest, and never echoes one in a
//! refusal. A use of the break-glass token that cannot be raised as an alert is refused.

use crate::api_tokens::{self, Lookup};
use crate::auth;
use crate::db::{Db, DbError};
use crate::reply::{error, internal};
use crate::roles::{Permission, Role};
use crate::state::Hub;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// A member of staff, authenticated and permitted for the request at hand.
#[derive(Debug, Clone)]
pub struct Staff {
    /// Who, as the admin log names them: `api-token NAME (ID)` or `break-glass`.
    pub actor: String,
    pub role: Role,
}

/// The actor name of the break-glass token.
pub const BREAK_GLASS: &str = "break-glass";

/// The member of staff a request comes from, if they may do what `permission` names.
/// `what` (method and route) goes into the break-glass alert.
pub(crate) async fn staff(
    hub: &Hub,
    headers: &HeaderMap,
    permission: Permission,
    what: &str,
) -> Result<Staff, Response> {
    let Some(token) = auth::bearer(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required: an API token (`countersign-hub api-token create --role ROLE`)",
        ));
    };
    let staff = if hub.admin_token_sha256.as_deref() == Some(auth::digest(token).as_str()) {
        raise_break_glass_alert(hub, what).await?;
        Staff { actor: BREAK_GLASS.into(), role: Role::Admin }
    } else {
        match api_tokens::lookup(&hub.db, token).await.map_err(internal)? {
            Lookup::Valid(t) => Staff { actor: format!("api-token {} ({})", t.name, t.id), role: t.role },
            Lookup::Expired(t) => {
                let at = t.expires_at.unwrap_or_default();
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    format!("the API token `{}` expired at {at}; an admin makes a new one", t.name),
                ));
            }
            Lookup::Revoked(t) => {
                let at = t.revoked_at.unwrap_or_default();
                return Err(error(StatusCode::UNAUTHORIZED, format!("the API token `{}` was revoked at {at}", t.name)));
            }
            Lookup::Unknown => return Err(error(StatusCode::UNAUTHORIZED, "unknown API token")),
        }
    };
    if !staff.role.permits(permission) {
        let may: Vec<&str> = Role::permitting(permission).into_iter().map(Role::as_str).collect();
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("role `{}` may not {}; that needs one of: {}", staff.role, permission.describe(), may.join(", ")),
        ));
    }
    Ok(staff)
}

/// Every use of the break-glass token is an alert; if the alert cannot be stored, the use
/// is refused.
async fn raise_break_glass_alert(hub: &Hub, what: &str) -> Result<(), Response> {
    tracing::warn!(what, "the break-glass admin token was used");
    sqlx::query("INSERT INTO alerts (id, time, device_id, kind, detail) VALUES ($1, $2, NULL, $3, $4)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(countersign_audit::now_rfc3339())
        .bind("break-glass")
        .bind(format!("the break-glass admin token was used: {what}"))
        .execute(&hub.db.pool)
        .await
        .map(drop)
        .map_err(internal)
}

/// Records what `staff` did in the admin log; a request whose action cannot be recorded
/// is refused.
pub(crate) async fn log_action(hub: &Hub, staff: &Staff, action: &str, detail: String) -> Result<(), Response> {
    log_action_db(&hub.db, staff, action, detail).await.map_err(internal)
}

/// Records what `staff` did in the admin log (the HTTP API's actions and the CLI's).
pub async fn log_action_db(db: &Db, staff: &Staff, action: &str, detail: String) -> Result<(), DbError> {
    sqlx::query("INSERT INTO admin_log (id, time, action, detail, actor) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(countersign_audit::now_rfc3339())
        .bind(action)
        .bind(detail)
        .bind(&staff.actor)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The enrolled device a request comes from.
pub(crate) async fn device(hub: &Hub, headers: &HeaderMap) -> Result<String, Response> {
    let Some(credential) = auth::bearer(headers) else {
        return Err(error(StatusCode::UNAUTHORIZED, "a device credential is required"));
    };
    match auth::device_of(&hub.db, credential).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(error(StatusCode::UNAUTHORIZED, "unknown device credential; enroll again")),
        Err(e) => Err(internal(e)),
    }
}
