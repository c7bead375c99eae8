//! Staff sign-ins: a person the IdP verified, with the roles their groups hold, for a few
//! hours. The session is a random token in an `HttpOnly`, `SameSite=Strict` cookie; the
//! hub keeps its digest, the person and the roles, never the ID token. Pending sign-ins
//! (state, nonce, PKCE verifier) live in the database for ten minutes and are used once,
//! so any hub instance on a shared database can finish a sign-in another began.

use crate::auth;
use crate::db::{Db, DbError};
use crate::oidc::{Person, Started};
use crate::reply::{error, internal};
use crate::roles::Role;
use crate::state::Hub;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The cookie that carries a staff session.
pub const COOKIE: &str = "countersign_hub_session";
/// How long a sign-in may take at the IdP.
const PENDING_SECS: i64 = 600;

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The most sign-ins that may be in progress at once: anyone may start one, so past
/// this the hub answers "busy" rather than grow the table without bound.
pub const MAX_PENDING: i64 = 10_000;
/// The most sign-ins in progress for one device's user code.
pub const PENDING_PER_CODE: i64 = 5;

/// What a started sign-in is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A member of staff signing in to the hub.
    Staff,
    /// A person confirming the enrollment of the device that shows this user code.
    Enroll(String),
}

/// A sign-in taken back at its callback.
#[derive(Debug)]
pub struct Pending {
    pub nonce: String,
    pub pkce_verifier: String,
    pub purpose: Purpose,
}

/// Keeps a started sign-in until its callback (and drops ones older than ten minutes);
/// false, keeping nothing, when [`MAX_PENDING`] are already in progress.
pub async fn remember(db: &Db, started: &Started, purpose: &Purpose) -> Result<bool, DbError> {
    sqlx::query("DELETE FROM oidc_pending WHERE created_unix < $1")
        .bind(now_unix() - PENDING_SECS)
        .execute(&db.pool)
        .await?;
    let enroll_code = match purpose {
        Purpose::Staff => None,
        Purpose::Enroll(code) => Some(code.as_str()),
    };
    // Anyone may open a waiting code's page: such sign-ins get half the room, and one code
    // a few, so they can never keep staff from signing in.
    let (pending, enrolling, this_code): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(SUM(CASE WHEN enroll_code IS NOT NULL THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN enroll_code = $1 THEN 1 ELSE 0 END), 0) FROM oidc_pending",
    )
    .bind(enroll_code.unwrap_or_default())
    .fetch_one(&db.pool)
    .await?;
    let full = match enroll_code {
        None => pending - enrolling >= MAX_PENDING / 2,
        Some(_) => enrolling >= MAX_PENDING / 2 || this_code >= PENDING_PER_CODE,
    };
    if full {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO oidc_pending (state_sha256, nonce, pkce_verifier, created_unix, enroll_code) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(auth::digest(&started.state))
    .bind(&started.nonce)
    .bind(&started.pkce_verifier)
    .bind(now_unix())
    .bind(enroll_code)
    .execute(&db.pool)
    .await?;
    Ok(true)
}

/// Takes the sign-in `state` names, once, or none when it is unknown, used or older than
/// ten minutes.
pub async fn take(db: &Db, state: &str) -> Result<Option<Pending>, DbError> {
    let digest = auth::digest(state);
    let row: Option<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT nonce, pkce_verifier, created_unix, enroll_code FROM oidc_pending WHERE state_sha256 = $1",
    )
    .bind(&digest)
    .fetch_optional(&db.pool)
    .await?;
    let deleted =
        sqlx::query("DELETE FROM oidc_pending WHERE state_sha256 = $1").bind(&digest).execute(&db.pool).await?;
    // Two callbacks racing for one state: only the one whose delete removed it goes on.
    Ok(row.filter(|(_, _, at, _)| *at >= now_unix() - PENDING_SECS && deleted.rows_affected() == 1).map(
        |(nonce, pkce_verifier, _, code)| Pending {
            nonce,
            pkce_verifier,
            purpose: code.map_or(Purpose::Staff, Purpose::Enroll),
        },
    ))
}

/// A signed-in member of staff.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub email: String,
    pub roles: Vec<Role>,
    pub expires_unix: i64,
}

/// Opens a session for `person` with `roles`; returns it and the cookie's value.
pub async fn open(db: &Db, person: &Person, roles: &[Role], hours: u64) -> Result<(Session, String), DbError> {
    let token = auth::new_token("css_");
    let session = Session {
        id: uuid::Uuid::now_v7().to_string(),
        email: person.email.clone(),
        roles: roles.to_vec(),
        expires_unix: now_unix() + hours as i64 * 3600,
    };
    let roles_text: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    sqlx::query(
        "INSERT INTO staff_sessions (id, token_sha256, email, name, subject, roles, created_at, expires_unix) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&session.id)
    .bind(auth::digest(&token))
    .bind(&person.email)
    .bind(&person.name)
    .bind(&person.subject)
    .bind(roles_text.join(","))
    .bind(countersign_audit::now_rfc3339())
    .bind(session.expires_unix)
    .execute(&db.pool)
    .await?;
    Ok((session, token))
}

/// The live session a cookie value names, if any.
pub async fn find(db: &Db, token: &str) -> Result<Option<Session>, DbError> {
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT id, email, roles, expires_unix FROM staff_sessions \
         WHERE token_sha256 = $1 AND revoked_at IS NULL AND expires_unix > $2",
    )
    .bind(auth::digest(token))
    .bind(now_unix())
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|(id, email, roles, expires_unix)| Session {
        id,
        email,
        roles: roles.split(',').filter_map(|r| r.parse().ok()).collect(),
        expires_unix,
    }))
}

/// Ends a session (signing out).
pub async fn close(db: &Db, id: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE staff_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(countersign_audit::now_rfc3339())
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The value of `name` in a `Cookie` header.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Sends the browser to the IdP to sign in for `purpose`.
pub(crate) async fn to_the_idp(hub: &Hub, purpose: Purpose) -> Response {
    let Some(sign_in) = &hub.sign_in else {
        return error(StatusCode::NOT_IMPLEMENTED, "sign-in is not configured on this hub ([oidc] in hub.toml)");
    };
    let started = match sign_in.provider.start().await {
        Ok(s) => s,
        Err(e) => {
            // The detail (the provider's address, its answer) is for the hub's log only.
            tracing::error!("a sign-in could not start: {e}");
            return error(StatusCode::BAD_GATEWAY, "the identity provider cannot be reached; see the hub's log");
        }
    };
    match remember(&hub.db, &started, &purpose).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many sign-ins are in progress; try again in a few minutes",
            )
        }
        Err(e) => return internal(e),
    }
    // The browser that starts a sign-in is the one that may finish it: a callback link
    // from someone else's sign-in opens no session here (login CSRF).
    let bound = format!(
        "{SIGN_IN_COOKIE}={}; Path=/v1/auth/callback; HttpOnly; SameSite=Lax; Max-Age={PENDING_SECS}{}",
        state_digest(&started.state),
        if sign_in.secure_cookie { "; Secure" } else { "" }
    );
    (
        StatusCode::FOUND,
        [(header::LOCATION, started.url), (header::CACHE_CONTROL, "no-store".into()), (header::SET_COOKIE, bound)],
    )
        .into_response()
}

/// The cookie that binds a sign-in in progress to the browser that started it.
pub const SIGN_IN_COOKIE: &str = "countersign_sign_in";

/// What the binding cookie holds for a sign-in's `state`: its digest, never the state.
pub fn state_digest(state: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("countersign sign-in {state}").as_bytes()))
}

/// Whether the request comes from the browser that started the sign-in `state`.
pub fn same_browser(headers: &axum::http::HeaderMap, state: &str) -> bool {
    cookie(headers, SIGN_IN_COOKIE)
        .is_some_and(|v| crate::approval_requests::constant_time_eq(v.as_bytes(), state_digest(state).as_bytes()))
}
