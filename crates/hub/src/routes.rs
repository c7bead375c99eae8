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
    ("POST", "/v1/alerts/{id}/acknowledge"),
    ("GET", "/v1/devices"),
    ("POST", "/v1/devices/{id}/revoke"),
    ("GET", "/v1/entitlements"),
    ("GET", "/v1/admin-log"),
    ("POST", "/v1/enrollment-tokens"),
    ("PUT", "/v1/policy"),
    ("GET", "/v1/policy"),
    ("GET", "/v1/policy/history"),
    ("GET", "/v1/policy/versions/{id}"),
    ("POST", "/v1/policy/check"),
    ("POST", "/v1/policy/preview"),
    ("GET", "/v1/policy/bundle"),
    ("GET", "/v1/api-tokens"),
    ("POST", "/v1/api-tokens"),
    ("POST", "/v1/api-tokens/{id}/revoke"),
    ("GET", "/v1/auth/login"),
    ("GET", "/v1/auth/callback"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/v1/auth/whoami"),
    ("GET", "/v1/agents"),
    ("POST", "/v1/agents"),
    ("POST", "/v1/agents/{name}/{action}"),
    ("POST", "/v1/approvals"),
    ("GET", "/v1/approvals/waiting"),
    ("GET", "/v1/approvals/{id}"),
    ("POST", "/v1/approvals/{id}/answer"),
    ("POST", "/v1/approvals/{id}/withdraw"),
    ("GET", "/v1/my-approvals"),
    ("POST", "/v1/my-approvals/{id}"),
    ("GET", "/scim/v2/Users"),
    ("POST", "/scim/v2/Users"),
    ("GET", "/scim/v2/Users/{id}"),
    ("PUT", "/scim/v2/Users/{id}"),
    ("PATCH", "/scim/v2/Users/{id}"),
    ("DELETE", "/scim/v2/Users/{id}"),
    ("GET", "/scim/v2/Groups"),
    ("POST", "/scim/v2/Groups"),
    ("PATCH", "/scim/v2/Groups/{id}"),
    ("DELETE", "/scim/v2/Groups/{id}"),
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
        .route("/v1/alerts", get(crate::alert_routes::alerts))
        .route(
            "/v1/alerts/{id}/acknowledge",
            gated(
                post(crate::alert_routes::acknowledge),
                &hub,
                Gate {
                    route: "/v1/alerts/{id}/acknowledge",
                    caller: Caller::Staff(Permission::ReadAudit),
                    cap: gate::ENROLLMENT_TOKEN_CAP,
                },
            ),
        )
        .route("/v1/devices", get(devices))
        .route(
            "/v1/devices/{id}/revoke",
            gated(
                post(crate::device_admin::revoke_route),
                &hub,
                Gate {
                    route: "/v1/devices/{id}/revoke",
                    caller: Caller::Staff(Permission::Enroll),
                    cap: gate::ENROLLMENT_TOKEN_CAP,
                },
            ),
        )
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
            get(crate::policy_routes::current).merge(gated(
                axum::routing::put(publish_policy),
                &hub,
                Gate { route: "/v1/policy", caller: Caller::Staff(Permission::PublishPolicy), cap: gate::POLICY_CAP },
            )),
        )
        .route("/v1/policy/history", get(crate::policy_routes::history))
        .route("/v1/policy/versions/{id}", get(crate::policy_routes::version))
        .route(
            "/v1/policy/check",
            gated(
                post(crate::policy_routes::check),
                &hub,
                Gate {
                    route: "/v1/policy/check",
                    caller: Caller::Staff(Permission::PublishPolicy),
                    cap: gate::POLICY_CAP,
                },
            ),
        )
        .route(
            "/v1/policy/preview",
            gated(
                post(crate::policy_routes::preview),
                &hub,
                Gate {
                    route: "/v1/policy/preview",
                    caller: Caller::Staff(Permission::PublishPolicy),
                    cap: gate::POLICY_CAP,
                },
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
        .route(
            "/v1/agents",
            get(crate::agent_routes::list).merge(gated(
                post(crate::agent_routes::create),
                &hub,
                Gate {
                    route: "/v1/agents",
                    caller: Caller::Staff(Permission::ManageAgents),
                    cap: gate::ENROLLMENT_TOKEN_CAP,
                },
            )),
        )
        .route(
            "/v1/agents/{name}/{action}",
            gated(
                post(crate::agent_routes::change),
                &hub,
                Gate {
                    route: "/v1/agents/{name}/{action}",
                    caller: Caller::Staff(Permission::ManageAgents),
                    cap: gate::ENROLLMENT_TOKEN_CAP,
                },
            ),
        )
        .route(
            "/v1/approvals",
            gated(
                post(crate::approval_routes::raise),
                &hub,
                Gate { route: "/v1/approvals", caller: Caller::Device, cap: gate::APPROVAL_CAP },
            ),
        )
        .route("/v1/approvals/waiting", get(crate::approval_routes::waiting))
        .route("/v1/approvals/{id}", get(crate::approval_routes::state))
        .route(
            "/v1/approvals/{id}/answer",
            gated(
                post(crate::approval_routes::answer),
                &hub,
                Gate { route: "/v1/approvals/{id}/answer", caller: Caller::Device, cap: gate::ENROLLMENT_TOKEN_CAP },
            ),
        )
        .route("/v1/approvals/{id}/withdraw", post(crate::approval_routes::withdraw))
        .route("/v1/my-approvals", get(crate::console_approvals::waiting))
        .route(
            "/v1/my-approvals/{id}",
            gated(
                post(crate::console_approvals::answer),
                &hub,
                Gate {
                    route: "/v1/my-approvals/{id}",
                    caller: Caller::Staff(Permission::Identify),
                    cap: gate::ENROLLMENT_TOKEN_CAP,
                },
            ),
        )
        .route(
            "/scim/v2/Users",
            get(crate::scim::list_users).merge(gated(
                post(crate::scim::create_user),
                &hub,
                Gate { route: "/scim/v2/Users", caller: Caller::Staff(Permission::Provision), cap: gate::SCIM_CAP },
            )),
        )
        .route(
            "/scim/v2/Users/{id}",
            get(crate::scim::get_user).delete(crate::scim::delete_user).merge(gated(
                axum::routing::put(crate::scim::replace_user).patch(crate::scim::patch_user),
                &hub,
                Gate {
                    route: "/scim/v2/Users/{id}",
                    caller: Caller::Staff(Permission::Provision),
                    cap: gate::SCIM_CAP,
                },
            )),
        )
        .route(
            "/scim/v2/Groups",
            get(crate::scim::list_groups).merge(gated(
                post(crate::scim::create_group),
                &hub,
                Gate { route: "/scim/v2/Groups", caller: Caller::Staff(Permission::Provision), cap: gate::SCIM_CAP },
            )),
        )
        .route(
            "/scim/v2/Groups/{id}",
            axum::routing::delete(crate::scim::delete_group).merge(gated(
                axum::routing::patch(crate::scim::patch_group),
                &hub,
                Gate {
                    route: "/scim/v2/Groups/{id}",
                    caller: Caller::Staff(Permission::Provision),
                    cap: gate::SCIM_CAP,
                },
            )),
        )
        // Anything else is the IT console's (its files, its pages), or not found.
        .fallback(crate::console::serve)
        // Routes with a body have their own gate and cap; this is for any other.
        .layer(DefaultBodyLimit::max(gate::UNGATED_CAP))
        .with_state(hub)
}

#[derive(Deserialize)]
struct Enroll {
    token: String,
    name: String,
    /// The agent this host enrolls as: the token must have been made for it.
    #[serde(default)]
    agent: Option<String>,
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
    // The person IT made the token for, if it named one, is who the device answers for; a
    // token made for an agent enrolls only that agent's host.
    let made_for: Option<(Option<String>, Option<String>)> =
        match sqlx::query_as("SELECT user_name, agent FROM enrollment_tokens WHERE token_sha256 = $1")
            .bind(auth::digest(&req.token))
            .fetch_optional(&mut *tx)
            .await
        {
            Ok(u) => u,
            Err(e) => return internal(e),
        };
    let (user, agent) = made_for.unwrap_or_default();
    if agent != req.agent {
        // Nothing is committed: the token stays unused for the host it was made for.
        return match (&agent, &req.agent) {
            (Some(a), _) => {
                error(StatusCode::UNAUTHORIZED, format!("this token enrolls the agent `{a}` (--agent {a})"))
            }
            (None, Some(_)) => {
                error(StatusCode::UNAUTHORIZED, "this token is not an agent's: an admin makes one with `agent create`")
            }
            (None, None) => internal("unreachable: agents differ yet both are none"),
        };
    }
    // Read in the transaction (SQLite's pool holds one connection, which it has).
    let owner = match &agent {
        Some(name) => match sqlx::query_as::<_, (String,)>("SELECT owner_email FROM agents WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
        {
            Ok(Some((owner,))) => Some(owner),
            Ok(None) => return error(StatusCode::UNAUTHORIZED, "the agent this token was made for no longer exists"),
            Err(e) => return internal(e),
        },
        None => None,
    };
    let credential = auth::new_token("csd_");
    let inserted = sqlx::query(
        "INSERT INTO devices (id, name, credential_sha256, enrolled_at, user_name, agent) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&device)
    .bind(&name)
    .bind(auth::digest(&credential))
    .bind(&now)
    .bind(user)
    .bind(&agent)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        return internal(e);
    }
    if let Err(e) = tx.commit().await {
        return internal(e);
    }
    tracing::info!(device, name, agent, "device enrolled");
    let mut answer = json!({ "device_id": device, "credential": credential });
    if let (Some(agent), Some(owner)) = (agent, owner) {
        answer["agent"] = json!(agent);
        answer["owner"] = json!(owner);
    }
    Json(answer).into_response()
}

/// `GET /v1/device`: who the calling device answers for, as the hub knows it: the person
/// who signed in to enroll or bind it (verified), else the person IT named on its
/// enrollment token (unverified, as is the OS account its records name).
async fn this_device(State(hub): Shared, headers: HeaderMap) -> Response {
    let device = match device(&hub, &headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    type Row = (String, Option<String>, Option<String>, Option<String>, Option<String>);
    let row: Row =
        match sqlx::query_as("SELECT name, person_email, user_name, verified_at, agent FROM devices WHERE id = $1")
            .bind(&device)
            .fetch_one(&hub.db.pool)
            .await
        {
            Ok(r) => r,
            Err(e) => return internal(e),
        };
    let (name, person, assigned, verified_at, agent) = row;
    let mut answer = json!({
        "device_id": device,
        "name": name,
        "user": person,
        "user_verified": person.is_some(),
        "verified_at": verified_at,
        "assigned_user": assigned,
    });
    if let Some(agent) = agent {
        match crate::agents::find(&hub.db, &agent).await {
            Ok(a) => {
                answer["user"] = json!(format!("agent:{}", a.name));
                answer["user_verified"] = json!(true);
                answer["agent"] = json!(a.name);
                answer["owner"] = json!(a.owner);
                answer["suspended"] = json!(a.suspended_why);
                answer["review_overdue"] = json!(a.review_overdue);
            }
            Err(e) => return internal(e),
        }
    }
    Json(answer).into_response()
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
    if q.before.as_deref().is_some_and(|b| query::parse_cursor(b).is_none()) {
        return error(StatusCode::BAD_REQUEST, "`before` is not a cursor: pass the X-Next-Cursor of the page before");
    }
    let records = match query::records(&hub.db, &q).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    // A full page newest first names where the next one starts.
    let next = (query::newest_first(&q) && records.len() as i64 == q.limit.unwrap_or(1000).clamp(1, 100_000))
        .then(|| records.last().and_then(query::cursor))
        .flatten();
    if q.format.as_deref() == Some("csv") {
        return match query::to_csv(&records) {
            Ok(text) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response(),
            Err(e) => internal(e),
        };
    }
    let mut response = Json(records).into_response();
    if let Some(next) = next.and_then(|n| header::HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert("x-next-cursor", next);
    }
    response
}

async fn devices(State(hub): Shared, headers: HeaderMap) -> Response {
    if let Err(r) =
        staff_action(&hub, &headers, Permission::ReadFleet, "GET /v1/devices", "devices-query", String::new()).await
    {
        return r;
    }
    type DeviceRow = (String, String, String, Option<i64>, Option<String>, Option<String>, Option<String>);
    type Who = (Option<String>, Option<String>, Option<String>, Option<String>);
    let rows: Result<Vec<(DeviceRow, Who)>, _> = sqlx::query_as::<
        _,
        (
            String,
            String,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
    >(
        "SELECT id, name, enrolled_at, last_seq, last_hash, last_seen, person_email, user_name, agent, revoked_at, \
         revoked_why FROM devices ORDER BY enrolled_at",
    )
    .fetch_all(&hub.db.pool)
    .await
    .map(|rows| rows.into_iter().map(|r| ((r.0, r.1, r.2, r.3, r.4, r.5, r.6), (r.7, r.8, r.9, r.10))).collect());
    match rows {
        Ok(rows) => Json(
            rows.into_iter()
                .map(
                    |(
                        (id, name, enrolled_at, last_seq, last_hash, last_seen, person),
                        (assigned, agent, revoked_at, revoked_why),
                    )| {
                        json!({"id": id, "name": name, "enrolled_at": enrolled_at, "last_seq": last_seq,
                           "last_hash": last_hash, "last_seen": last_seen, "person": person,
                           "assigned_user": assigned, "agent": agent, "revoked_at": revoked_at,
                           "revoked_why": revoked_why})
                    },
                )
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
            guesses: Default::default(),
            approvals_changed: Default::default(),
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
