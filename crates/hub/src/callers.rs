//! Who a request comes from, from its headers alone: an enrolled device by the credential
//! enrollment gave it, or a member of staff by an API token (whose role decides what they
//! may do, [`crate::roles`]), a sign-in cookie (a person and their groups' roles) or the
//! break-glass admin token. It never reads a request
//! body, never compares a credential other than by its digest, and never echoes one in a
//! refusal. A use of the break-glass token that cannot be raised as an alert is refused.

use crate::api_tokens::{self, Lookup};
use crate::auth;
use crate::db::{Db, DbError};
use crate::reply::{error, internal};
use crate::roles::{Permission, Role};
use crate::staff_sessions;
use crate::state::Hub;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// A member of staff, authenticated and permitted for the request at hand.
#[derive(Debug, Clone)]
pub struct Staff {
    /// Who, as the admin log names them: `api-token NAME (ID)`, `person EMAIL` (signed in
    /// with the IdP), `break-glass`, or the hub's CLI.
    pub actor: String,
    /// What they hold: an API token one role, a person the roles of their groups.
    pub roles: Vec<Role>,
    /// The sign-in session they came with, if they signed in.
    pub session: Option<String>,
}

impl Staff {
    pub fn new(actor: String, roles: Vec<Role>) -> Self {
        Staff { actor, roles, session: None }
    }

    pub fn permits(&self, permission: Permission) -> bool {
        self.roles.iter().any(|r| r.permits(permission))
    }

    fn roles_shown(&self) -> String {
        let names: Vec<String> = self.roles.iter().map(|r| format!("`{r}`")).collect();
        match names.len() {
            1 => format!("role {}", names[0]),
            _ => format!("roles {}", names.join(", ")),
        }
    }
}

/// The actor name of the break-glass token.
pub const BREAK_GLASS: &str = "break-glass";

/// The member of staff a request comes from, if they may do what `permission` names:
/// by a bearer token (an API token or the break-glass token) or a sign-in cookie. `what`
/// is the method and route (`GET /v1/audit`): it goes into the break-glass alert, and a
/// cookie-carrying request other than `GET` must name the hub's own origin (CSRF).
pub(crate) async fn staff(
    hub: &Hub,
    headers: &HeaderMap,
    permission: Permission,
    what: &str,
) -> Result<Staff, Response> {
    let Some(token) = auth::bearer(headers) else {
        return signed_in(hub, headers, permission, what).await;
    };
    let staff = if hub.admin_token_sha256.as_deref() == Some(auth::digest(token).as_str()) {
        raise_break_glass_alert(hub, what).await?;
        Staff::new(BREAK_GLASS.into(), vec![Role::Admin])
    } else {
        match api_tokens::lookup(&hub.db, token).await.map_err(internal)? {
            Lookup::Valid(t) => Staff::new(format!("api-token {} ({})", t.name, t.id), vec![t.role]),
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
    permitted(staff, permission)
}

// The refusal is the answer itself, as every caller check here returns it.
#[allow(clippy::result_large_err)]
fn permitted(staff: Staff, permission: Permission) -> Result<Staff, Response> {
    if !staff.permits(permission) {
        let may: Vec<&str> = Role::permitting(permission).into_iter().map(Role::as_str).collect();
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("{} may not {}; that needs one of: {}", staff.roles_shown(), permission.describe(), may.join(", ")),
        ));
    }
    Ok(staff)
}

/// A person signed in with the IdP, by the session cookie.
async fn signed_in(hub: &Hub, headers: &HeaderMap, permission: Permission, what: &str) -> Result<Staff, Response> {
    // Sessions opened while [oidc] was configured open nothing once it is not.
    let cookie = staff_sessions::cookie(headers, staff_sessions::COOKIE).filter(|_| hub.sign_in.is_some());
    let Some(token) = cookie else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "a bearer token (an API token: `countersign-hub api-token create --role ROLE`) or a sign-in \
             (/v1/auth/login) is required",
        ));
    };
    let Some(session) = staff_sessions::find(&hub.db, token).await.map_err(internal)? else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "the sign-in has expired or was ended: sign in again at /v1/auth/login",
        ));
    };
    if !what.starts_with("GET ") {
        let origin = headers.get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok());
        let ours = hub.sign_in.as_ref().map(|s| s.public_origin.as_str());
        if origin.is_none() || origin != ours {
            return Err(error(
                StatusCode::FORBIDDEN,
                "a signed-in request that changes something must come from the hub's own pages (its Origin)",
            ));
        }
    }
    let staff = Staff { actor: format!("person {}", session.email), roles: session.roles, session: Some(session.id) };
    permitted(staff, permission)
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

/// A staff request on a route without a body: the caller authenticated and permitted
/// (`what` names the route for a break-glass alert), and the action in the admin log.
pub(crate) async fn staff_action(
    hub: &Hub,
    headers: &HeaderMap,
    permission: Permission,
    what: &str,
    action: &str,
    detail: String,
) -> Result<Staff, Response> {
    let staff = staff(hub, headers, permission, what).await?;
    log_action(hub, &staff, action, detail).await?;
    Ok(staff)
}

/// The enrolled device a request comes from.
pub(crate) async fn device(hub: &Hub, headers: &HeaderMap) -> Result<String, Response> {
    let Some(credential) = auth::bearer(headers) else {
        return Err(error(StatusCode::UNAUTHORIZED, "a device credential is required"));
    };
    match auth::device_of(&hub.db, credential).await {
        Ok(auth::DeviceCredential::Valid(d)) => Ok(d),
        Ok(auth::DeviceCredential::Revoked(at, why)) => Err(error(
            StatusCode::UNAUTHORIZED,
            format!("this device was revoked at {at} ({why}); it keeps its local policy until enrolled again"),
        )),
        Ok(auth::DeviceCredential::Unknown) => {
            Err(error(StatusCode::UNAUTHORIZED, "unknown device credential; enroll again"))
        }
        Err(e) => Err(internal(e)),
    }
}
