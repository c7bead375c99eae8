//! The hub's HTTP API (axum). Devices authenticate with the credential enrollment gave
//! them; staff with an API token whose role must permit the route ([`crate::roles`]), or
//! the break-glass admin token (every use an alert); every staff action is itself
//! recorded in `admin_log` with who did it. Errors answer with JSON `{ "error": "…" }` and never
//! echo a credential. Every route that takes a body sits behind its [`crate::gate`]:
//! the credential is checked before the body is read, and the body is capped.

use crate::auth;
use crate::callers::{device, log_action, staff_action, Staff};
use crate::gate::{self, gated, Caller, Gate};
use crate::ingest;
use crate::query::{self, AuditQuery};
use crate::reply::{error, internal};
use crate::roles::Permission;
pub use crate::state::Hub;
use axum::extract::{DefaultBodyLimit, Extension, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use countersign_audit::wire::Batch;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

type Shared = State<Arc<Hub>>;

/// Every route the router serves (method, path): the OpenAPI document must list exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/enroll"),
    ("POST", "/v1/enroll/device_authorization"),
    ("POST", "/v1/enroll/token"),
    ("GET", "/enroll"),
    ("POST", "/enroll/confirm"),
    ("GET", "/v1/device"),
    ("POST", "/v1/ingest"),
    ("GET", "/v1/checkpoint"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/devices"),
    ("GET", "/v1/entitlements"),
    ("GET", "/v1/admin-log"),
    ("POST", "/v1/enrollment-tokens"),
    ("PUT", "/v1/policy"),
    ("GET", "/v1/policy/bundle"),
    ("GET", "/v1/api-tokens"),
    ("POST", "/v1/api-tokens"),
    ("POST", "/v1/api-tokens/{id}/revoke"),
    ("GET", "/v1/auth/login"),
    ("GET", "/v1/auth/callback"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/v1/auth/whoami"),
];

pub fn router(hub: Arc<Hub>) -> Router {
    let ingest_cap = hub.max_ingest_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route(
            "/v1/enroll",
            gated(post(enroll), &hub, Gate { route: "/v1/enroll", caller: Caller::Enrolling, cap: gate::ENROLL_CAP }),
        )
        .route(
            "/v1/enroll/device_authorization",
            gated(
                post(crate::enroll_device::device_authorization),
                &hub,
                Gate { route: "/v1/enroll/device_authorization", caller: Caller::Enrolling, cap: gate::ENROLL_CAP },
            ),
        )
        .route(
            "/v1/enroll/token",
            gated(
                post(crate::enroll_device::token),
                &hub,
                Gate { route: "/v1/enroll/token", caller: Caller::Enrolling, cap: gate::ENROLL_CAP },
            ),
        )
        .route("/enroll", get(crate::enroll_device::open))
        .route(
            "/enroll/confirm",
            gated(
                post(crate::enroll_device::confirm),
                &hub,
                Gate { route: "/enroll/confirm", caller: Caller::Enrolling, cap: gate::ENROLL_CAP },
            ),
        )
        .route("/v1/device", get(this_device))
        .route(
            "/v1/ingest",
            gated(post(ingest_batch), &hub, Gate { route: "/v1/ingest", caller: Caller::Device, cap: ingest_cap }),
        )
        .route("/v1/checkpoint", get(checkpoint))
        .route("/v1/audit", get(audit))
        .route("/v1/alerts", get(alerts))
        .route("/v1/devices", get(devices))
        .route("/v1/entitlements", get(entitlements))
        .route("/v1/admin-log", get(admin_log))
        .route(
            "/v1/enrollment-tokens",
            gated(
                post(new_enrollment_token),
                &hub,
                Gate {
                    route: "/v1/enrollment-tokens",
                    caller: Caller::Staff(Permission::Enroll),
                    cap: gate::ENROLLMENT_TOKEN_CAP,
                },
            ),
        )
        .route(
            "/v1/policy",
            gated(
                axum::routing::put(publish_policy),
                &hub,
                Gate { route: "/v1/policy", caller: Caller::Staff(Permission::PublishPolicy), cap: gate::POLICY_CAP },
            ),
        )
        .route("/v1/policy/bundle", get(policy_bundle))
        .route(
            "/v1/api-tokens",
            get(crate::token_routes::list).merge(gated(
                post(crate::token_routes::create),
                &hub,
                Gate {
                    route: "/v1/api-tokens",
                    caller: Caller::Staff(Permission::ManageTokens),
                    cap: gate::ENROLLMENT_TOKEN_CAP,
                },
            )),
        )
        .route("/v1/api-tokens/{id}/revoke", post(crate::token_routes::revoke))
        .route("/v1/auth/login", get(crate::sign_in::login))
        .route("/v1/auth/callback", get(crate::sign_in::callback))
        .route("/v1/auth/logout", post(crate::sign_in::logout))
        .route("/v1/auth/whoami", get(crate::sign_in::whoami))
        // Routes with a body have their own gate and cap; this is for any other.
        .layer(DefaultBodyLimit::max(gate::UNGATED_CAP))
        .with_state(hub)
}

#[derive(Deserialize)]
struct Enroll {
    token: String,
    name: String,
}

async fn enroll(State(hub): Shared, Json(req): Json<Enroll>) -> Response {
    let name: String = req.name.chars().filter(|c| !c.is_control()).take(128).collect();
    let mut tx = match hub.db.pool.begin().await {
        Ok(tx) => tx,
        Err(e) => return internal(e),
    };
    let now = countersign_audit::now_rfc3339();
    let device = uuid::Uuid::now_v7().to_string();
    // Single use: the token is claimed by exactly one device, before it expires.
    let claimed = sqlx::query(
        "UPDATE enrollment_tokens SET used_by = $1 WHERE token_sha256 = $2 AND used_by IS NULL AND expires_at > $3",
    )
    .bind(&device)
    .bind(auth::digest(&req.token))
    .bind(&now)
    .execute(&mut *tx)
    .await;
    match claimed {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return error(StatusCode::UNAUTHORIZED, "the enrollment token is unknown, used or expired"),
        Err(e) => return internal(e),
    }
    // The person IT made the token for, if it named one, is who the device answers for.
    let user: Option<(Option<String>,)> =
        match sqlx::query_as("SELECT user_name FROM enrollment_tokens WHERE token_sha256 = $1")
            .bind(auth::digest(&req.token))
            .fetch_optional(&mut *tx)
            .await
        {
            Ok(u) => u,
            Err(e) => return internal(e),
        };
    let credential = auth::new_token("csd_");
    let inserted = sqlx::query(
        "INSERT INTO devices (id, name, credential_sha256, enrolled_at, user_name) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&device)
    .bind(&name)
    .bind(auth::digest(&credential))
    .bind(&now)
    .bind(user.and_then(|(u,)| u))
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        return internal(e);
    }
    if let Err(e) = tx.commit().await {
        return internal(e);
    }
    tracing::info!(device, name, "device enrolled");
    Json(json!({ "device_id": device, "credential": credential })).into_response()
}

/// `GET /v1/device`: who the calling device answers for, as the hub knows it: the person
/// who signed in to enroll or bind it (verified), else the person IT named on its
/// enrollment token (unverified, as is the OS account its records name).
async fn this_device(State(hub): Shared, headers: HeaderMap) -> Response {
    let device = match device(&hub, &headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let row: Row = match sqlx::query_as("SELECT name, person_email, user_name, verified_at FROM devices WHERE id = $1")
        .bind(&device)
        .fetch_one(&hub.db.pool)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let (name, person, assigned, verified_at) = row;
    Json(json!({
        "device_id": device,
        "name": name,
        "user": person,
        "user_verified": person.is_some(),
        "verified_at": verified_at,
        "assigned_user": assigned,
    }))
    .into_response()
}

async fn ingest_batch(State(hub): Shared, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let device = match device(&hub, &headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let batch: Batch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a batch: {e}")),
    };
    match ingest::ingest(&hub.db, hub.signing_key.as_ref(), &device, &batch).await {
        Ok(ingest::Ingested::Stored { ack, new }) => {
            hub.siem.forward(&device, new);
            Json(ack).into_response()
        }
        Ok(ingest::Ingested::Refused(why)) => error(StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(e) => internal(e),
    }
}

/// The newest checkpoint the hub signed for the calling device (404 when none), so
/// `countersign audit verify` can compare its journal with what the hub holds.
async fn checkpoint(State(hub): Shared, headers: HeaderMap) -> Response {
    let device = match device(&hub, &headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match ingest::latest_checkpoint(&hub.db, &device).await {
        Ok(Some(cp)) => Json(cp).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "the hub holds no checkpoint for this device yet"),
        Err(e) => internal(e),
    }
}

async fn audit(State(hub): Shared, headers: HeaderMap, Query(q): Query<AuditQuery>) -> Response {
    if let Err(r) =
        staff_action(&hub, &headers, Permission::ReadAudit, "GET /v1/audit", "audit-query", format!("{q:?}")).await
    {
        return r;
    }
    let records = match query::records(&hub.db, &q).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    if q.format.as_deref() == Some("csv") {
        return match query::to_csv(&records) {
            Ok(text) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response(),
            Err(e) => internal(e),
        };
    }
    Json(records).into_response()
}

async fn alerts(State(hub): Shared, headers: HeaderMap) -> Response {
    if let Err(r) =
        staff_action(&hub, &headers, Permission::ReadFleet, "GET /v1/alerts", "alerts-query", String::new()).await
    {
        return r;
    }
    type AlertRow = (String, String, Option<String>, String, String);
    let rows: Result<Vec<AlertRow>, _> =
        sqlx::query_as("SELECT id, time, device_id, kind, detail FROM alerts ORDER BY time")
            .fetch_all(&hub.db.pool)
            .await;
    match rows {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|(id, time, device_id, kind, detail)| json!({"id": id, "time": time, "device_id": device_id, "kind": kind, "detail": detail}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

async fn devices(State(hub): Shared, headers: HeaderMap) -> Response {
    if let Err(r) =
        staff_action(&hub, &headers, Permission::ReadFleet, "GET /v1/devices", "devices-query", String::new()).await
    {
        return r;
    }
    type DeviceRow = (String, String, String, Option<i64>, Option<String>, Option<String>);
    let rows: Result<Vec<DeviceRow>, _> = sqlx::query_as(
        "SELECT id, name, enrolled_at, last_seq, last_hash, last_seen FROM devices ORDER BY enrolled_at",
    )
    .fetch_all(&hub.db.pool)
    .await;
    match rows {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|(id, name, enrolled_at, last_seq, last_hash, last_seen)| {
                    json!({"id": id, "name": name, "enrolled_at": enrolled_at, "last_seq": last_seq,
                           "last_hash": last_hash, "last_seen": last_seen})
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct NewToken {
    #[serde(default = "default_hours")]
    hours: u64,
    /// The person whose device enrolls with it.
    #[serde(default)]
    user: Option<String>,
}

fn default_hours() -> u64 {
    24 * 7
}

async fn new_enrollment_token(
    State(hub): Shared,
    Extension(staff): Extension<Staff>,
    body: Option<Json<NewToken>>,
) -> Response {
    let (hours, user) = body.map(|b| (b.0.hours, b.0.user)).unwrap_or_else(|| (default_hours(), None));
    let hours = hours.clamp(1, 24 * 90);
    let user: Option<String> = user.map(|u| u.chars().filter(|c| !c.is_control()).take(128).collect());
    if user.as_deref() == Some("") {
        return error(StatusCode::BAD_REQUEST, "`user` is empty");
    }
    let what = format!("valid {hours} h{}", user.as_deref().map(|u| format!(", for {u}")).unwrap_or_default());
    if let Err(r) = log_action(&hub, &staff, "enrollment-token-create", what).await {
        return r;
    }
    match auth::create_enrollment_token(&hub.db, hours, user.as_deref()).await {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(e) => internal(e),
    }
}

async fn publish_policy(State(hub): Shared, Extension(staff): Extension<Staff>, body: String) -> Response {
    if let Err(r) = log_action(&hub, &staff, "policy-publish", format!("{} bytes", body.len())).await {
        return r;
    }
    match crate::publish::publish(&hub.db, hub.signing_key.as_ref(), &body, hub.bundle_valid_for).await {
        Ok(p) => {
            hub.published.notify_waiters();
            tracing::info!(version = p.version, "policy published");
            Json(json!({ "version": p.version, "published_at": p.published_at })).into_response()
        }
        Err(e @ (crate::publish::PublishError::Invalid(_) | crate::publish::PublishError::NoKey)) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct Wait {
    /// Seconds to hold the request open for a newer bundle (at most 30).
    #[serde(default)]
    wait: u64,
}

/// The newest bundle for a device. With `If-None-Match` naming the version the device
/// holds, waits up to `wait` seconds for a newer one and answers 304 if none comes.
async fn policy_bundle(State(hub): Shared, headers: HeaderMap, Query(q): Query<Wait>) -> Response {
    if let Err(r) = device(&hub, &headers).await {
        return r;
    }
    let held = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().trim_start_matches("W/").trim_matches('"').parse::<i64>().ok());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(q.wait.min(30));
    loop {
        let notified = hub.published.notified();
        let latest = match crate::publish::latest(&hub.db).await {
            Ok(l) => l,
            Err(e) => return internal(e),
        };
        match latest {
            Some(p) if Some(p.version) != held => {
                let etag = format!("\"{}\"", p.version);
                return ([(header::ETAG, etag)], Json(p)).into_response();
            }
            None if held.is_none() && q.wait == 0 => return StatusCode::NOT_FOUND.into_response(),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        // Woken by a publication here, or after a second to see one made by another instance.
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn every_listed_route_is_served() {
        let db = crate::db::Db::connect("sqlite::memory:").await.unwrap();
        let hub = Arc::new(Hub {
            db,
            admin_token_sha256: None,
            signing_key: None,
            bundle_valid_for: std::time::Duration::from_secs(60),
            published: Default::default(),
            siem: crate::siem::Siem::disabled(),
            max_ingest_bytes: gate::DEFAULT_INGEST_CAP,
            sign_in: None,
        });
        for (method, path) in ROUTES {
            let req = axum::http::Request::builder()
                .method(*method)
                .uri(path.replace("{id}", "some-id"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let status = router(hub.clone()).oneshot(req).await.unwrap().status();
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status}"
            );
        }
    }
}

#[cfg(test)]
#[path = "route_roles_tests.rs"]
mod route_roles_tests;

#[derive(Deserialize)]
struct Format {
    format: Option<String>,
}

async fn entitlements(State(hub): Shared, headers: HeaderMap, Query(q): Query<Format>) -> Response {
    let detail = q.format.clone().unwrap_or_default();
    let what = "GET /v1/entitlements";
    if let Err(r) = staff_action(&hub, &headers, Permission::ReadAudit, what, "entitlements-export", detail).await {
        return r;
    }
    let ids = match crate::entitlements::entitlements(&hub.db, &countersign_audit::now_rfc3339()).await {
        Ok(ids) => ids,
        Err(e) => return internal(e),
    };
    if q.format.as_deref() == Some("csv") {
        return match crate::entitlements::to_csv(&ids) {
            Ok(text) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response(),
            Err(e) => internal(e),
        };
    }
    Json(ids).into_response()
}

/// Every admin action, oldest first (reading it is an admin action too).
async fn admin_log(State(hub): Shared, headers: HeaderMap) -> Response {
    let what = "GET /v1/admin-log";
    if let Err(r) = staff_action(&hub, &headers, Permission::ReadAudit, what, "admin-log-query", String::new()).await {
        return r;
    }
    type LogRow = (String, String, String, String, Option<String>);
    let rows: Result<Vec<LogRow>, _> =
        sqlx::query_as("SELECT id, time, action, detail, actor FROM admin_log ORDER BY time, id")
            .fetch_all(&hub.db.pool)
            .await;
    match rows {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|(id, time, action, detail, actor)| {
                    json!({"id": id, "time": time, "action": action, "detail": detail, "actor": actor})
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}
