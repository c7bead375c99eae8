//! Staff sign in to the hub with the company's IdP: `GET /v1/auth/login` sends the browser
//! to the IdP, `GET /v1/auth/callback` checks what comes back, maps the person's groups to
//! roles (`[roles]` in hub.toml) and opens a session in a cookie; `POST /v1/auth/logout`
//! ends it; `GET /v1/auth/whoami` says who the caller is. A person whose groups hold no
//! role is refused. Every refused sign-in (the IdP's error, a token that does not verify)
//! is an alert and a line in the admin log, without the token.
//!
//! A browser's callback goes on to the IT console at `/` (`crate::console`); an API
//! client's gets the session as JSON.
//!
//! It never opens a session for an ID token it did not verify, never sets a cookie a
//! script can read or another site can send, and never redirects anywhere but the IdP
//! and the hub's own console.

use crate::callers::{log_action_db, Staff};
use crate::reply::{error, internal};
use crate::roles::Permission;
use crate::staff_sessions::{self, Purpose, COOKIE};
use crate::state::Hub;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

fn not_configured() -> Response {
    error(StatusCode::NOT_IMPLEMENTED, "staff sign-in is not configured on this hub ([oidc] in hub.toml)")
}

/// `GET /v1/auth/login`: to the IdP.
pub(crate) async fn login(State(hub): State<Arc<Hub>>) -> Response {
    staff_sessions::to_the_idp(&hub, Purpose::Staff).await
}

#[derive(Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A refused sign-in: an alert and an admin log line (never a token), then the answer.
async fn refuse(hub: &Hub, status: StatusCode, who: Option<&str>, why: String) -> Response {
    tracing::warn!(who, "staff sign-in refused: {why}");
    let detail = match who {
        Some(w) => format!("{w}: {why}"),
        None => why.clone(),
    };
    let alert = sqlx::query("INSERT INTO alerts (id, time, device_id, kind, detail) VALUES ($1, $2, NULL, $3, $4)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(countersign_audit::now_rfc3339())
        .bind("sign-in-refused")
        .bind(&detail)
        .execute(&hub.db.pool)
        .await;
    let actor = Staff::new(format!("sign-in {}", who.unwrap_or("(unverified)")), Vec::new());
    let logged = log_action_db(&hub.db, &actor, "sign-in-refused", detail).await;
    if let Some(e) = alert.err() {
        return internal(e);
    }
    if let Err(e) = logged {
        return internal(e);
    }
    error(status, format!("sign-in refused: {why}"))
}

/// `GET /v1/auth/callback`: the IdP's answer, checked; a session for a person with a role.
pub(crate) async fn callback(State(hub): State<Arc<Hub>>, headers: HeaderMap, Query(q): Query<Callback>) -> Response {
    let Some(sign_in) = &hub.sign_in else { return not_configured() };
    let Some(state) = q.state.filter(|s| !s.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "no `state`: start at /v1/auth/login");
    };
    let pending = match staff_sessions::take(&hub.db, &state).await {
        Ok(Some(p)) => p,
        Ok(None) => return error(
            StatusCode::BAD_REQUEST,
            "this sign-in is unknown, was already used or took longer than ten minutes: start again at /v1/auth/login",
        ),
        Err(e) => return internal(e),
    };
    // Only the browser that started this sign-in finishes it: a link to someone else's
    // callback (their sign-in, the victim's browser) opens nothing. The sign-in is spent.
    if !staff_sessions::same_browser(&headers, &state) {
        let why = "this sign-in was started in another browser (its link was followed elsewhere)".to_string();
        return refuse(&hub, StatusCode::BAD_REQUEST, None, why).await;
    }
    if let Some(e) = q.error {
        let said: String =
            q.error_description.unwrap_or_default().chars().filter(|c| !c.is_control()).take(300).collect();
        let e: String = e.chars().filter(|c| !c.is_control()).take(100).collect();
        return refuse(&hub, StatusCode::UNAUTHORIZED, None, format!("the identity provider said `{e}`: {said}")).await;
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "no `code` from the identity provider");
    };
    let person = match sign_in.provider.finish(&code, &pending.pkce_verifier, &pending.nonce).await {
        Ok(p) => p,
        Err(e) => return refuse(&hub, StatusCode::UNAUTHORIZED, None, e.to_string()).await,
    };
    // A person confirming a device's enrollment needs no role on the hub.
    if let Purpose::Enroll(user_code) = pending.purpose {
        return crate::enroll_device::confirm_page(&hub, &user_code, &person).await;
    }
    let roles = sign_in.roles_of(&person);
    if roles.is_empty() {
        let why = format!("none of {}'s groups {:?} holds a role on this hub", person.email, person.groups);
        return refuse(&hub, StatusCode::FORBIDDEN, Some(&person.email), why).await;
    }
    let (session, token) = match staff_sessions::open(&hub.db, &person, &roles, sign_in.session_hours).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let shown: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let actor = Staff::new(format!("person {}", person.email), roles.clone());
    if let Err(e) = log_action_db(&hub.db, &actor, "sign-in", format!("roles {}", shown.join(", "))).await {
        return internal(e);
    }
    tracing::info!(email = %person.email, roles = ?shown, "staff signed in");
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        sign_in.session_hours * 3600,
        if sign_in.secure_cookie { "; Secure" } else { "" }
    );
    // A browser (it asks for a page) goes on to the console; an API client gets JSON.
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.split(',').any(|t| t.trim().starts_with("text/html")));
    let mut response = if browser {
        (
            StatusCode::SEE_OTHER,
            [(header::SET_COOKIE, cookie), (header::CACHE_CONTROL, "no-store".into()), (header::LOCATION, "/".into())],
        )
            .into_response()
    } else {
        (
            [(header::SET_COOKIE, cookie), (header::CACHE_CONTROL, "no-store".into())],
            Json(json!({"signed_in": person.email, "name": person.name, "roles": shown, "expires_unix": session.expires_unix})),
        )
            .into_response()
    };
    // Appended, not set: the session's cookie stays beside it.
    if let Ok(v) = header::HeaderValue::from_str(&spent()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// Clears the cookie that bound the finished sign-in to this browser.
fn spent() -> String {
    format!("{}=; Path=/v1/auth/callback; HttpOnly; SameSite=Lax; Max-Age=0", staff_sessions::SIGN_IN_COOKIE)
}

/// `POST /v1/auth/logout`: ends the caller's session.
pub(crate) async fn logout(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    let staff = match crate::callers::staff(&hub, &headers, Permission::Identify, "POST /v1/auth/logout").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(id) = staff.session.as_deref() else {
        return error(StatusCode::BAD_REQUEST, "only a signed-in session signs out; revoke an API token instead");
    };
    if let Err(e) = staff_sessions::close(&hub.db, id).await {
        return internal(e);
    }
    let gone = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, gone)], Json(json!({"signed_out": staff.actor}))).into_response()
}

/// `GET /v1/auth/whoami`: who the caller is and what they may do.
pub(crate) async fn whoami(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    match crate::callers::staff(&hub, &headers, Permission::Identify, "GET /v1/auth/whoami").await {
        Ok(staff) => {
            let roles: Vec<&str> = staff.roles.iter().map(|r| r.as_str()).collect();
            Json(json!({"actor": staff.actor, "roles": roles})).into_response()
        }
        Err(r) => r,
    }
}

#[cfg(test)]
#[path = "sign_in_tests.rs"]
mod tests;
