//! The control routes under `/_countersign/`: status, answering prompts, pins, grants,
//! the kill switch, policy reload and shutdown. Each is a thin adapter from HTTP to the
//! [`Gateway`] handle, which implements the action once for every front end; the control
//! token is checked by a layer in front of every route here (`front_door`), so no route
//! can forget it. None is reachable with a client token.

use crate::api::{AnswerRequest, ControlError, Gateway};
use crate::front_door::{json_response, require_control_token, Face};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

/// The control routes, behind the control-token layer.
pub(crate) fn router(face: Face, gateway: Gateway) -> Router {
    Router::new()
        .route("/_countersign/status", get(status))
        .route("/_countersign/approvals/{id}/{answer}", post(answer))
        .route("/_countersign/pins/{server}/accept", post(accept_pins))
        .route("/_countersign/grants", get(list_grants))
        .route("/_countersign/grants/{id}/revoke", post(revoke_grant))
        .route("/_countersign/pause", post(pause))
        .route("/_countersign/resume", post(resume))
        .route("/_countersign/policy/reload", post(reload_policy))
        .route("/_countersign/shutdown", post(shutdown))
        // A control body is a short list of names; the token layer runs before any is read.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .route_layer(axum::middleware::from_fn_with_state(face, require_control_token))
        .with_state(gateway)
}

fn refused(e: ControlError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, format!("{e}\n")).into_response()
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /_countersign/status`.
async fn status(State(gateway): State<Gateway>) -> Response {
    match serde_json::to_string(&gateway.status()) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => refused(ControlError::Unavailable(format!("status: {e}"))),
    }
}

#[derive(serde::Deserialize)]
struct AnswerQuery {
    /// Grant length: once (default), session, 15m, 1h, today.
    #[serde(rename = "for")]
    length: Option<String>,
    /// An argument condition limiting the grant (`path=/work/**`).
    #[serde(rename = "where")]
    condition: Option<String>,
    /// How many identical waiting calls to release (the count the person saw); 1 when absent.
    all: Option<usize>,
    /// `true`: the prompt's "Allow similar" offer (its scope and length; no `for`/`where`).
    #[serde(default)]
    similar: bool,
}

/// `POST /_countersign/approvals/{id}/{approve|deny}?for=1h&where=path%3D%2Fwork%2F**`, or
/// `…/approve?similar=true` for the scope the prompt offers.
/// The length must be one the policy allows and the condition must parse, or nothing is
/// answered.
async fn answer(
    State(gateway): State<Gateway>,
    Path((id, verdict)): Path<(String, String)>,
    Query(q): Query<AnswerQuery>,
) -> Response {
    if verdict != "approve" && verdict != "deny" {
        return refused(ControlError::NotFound("answer is approve or deny".into()));
    }
    let request = match AnswerRequest::parse(&verdict, q.length.as_deref(), q.condition, q.all, None) {
        Ok(r) => r.with_similar(q.similar),
        Err(e) => return refused(e),
    };
    match gateway.answer(&id, request) {
        Ok(()) => ok(json!({"answered": id})),
        Err(e) => refused(e),
    }
}

/// `POST /_countersign/pins/{server}/accept` with `{"tools": [...]}` (empty: all).
async fn accept_pins(State(gateway): State<Gateway>, Path(server): Path<String>, body: Bytes) -> Response {
    let tools: Vec<String> = if body.is_empty() {
        Vec::new()
    } else {
        match serde_json::from_slice::<Value>(&body).map(|v| v.get("tools").cloned()) {
            Ok(None) => Vec::new(),
            Ok(Some(t)) => match serde_json::from_value(t) {
                Ok(tools) => tools,
                Err(_) => return refused(ControlError::BadRequest("`tools` is a list of tool names".into())),
            },
            Err(e) => return refused(ControlError::BadRequest(format!("the body is not JSON: {e}"))),
        }
    };
    match gateway.accept_pins(&server, &tools) {
        Ok(n) => ok(json!({"server": server, "accepted": n})),
        Err(e) => refused(e),
    }
}

/// `GET /_countersign/grants`.
async fn list_grants(State(gateway): State<Gateway>) -> Response {
    ok(json!({"grants": gateway.grants()}))
}

/// `POST /_countersign/grants/{id}/revoke`.
async fn revoke_grant(State(gateway): State<Gateway>, Path(id): Path<String>) -> Response {
    match gateway.revoke_grant(&id) {
        Ok(()) => ok(json!({"revoked": id})),
        Err(e) => refused(e),
    }
}

/// `POST /_countersign/pause`: the kill switch (audited).
async fn pause(State(gateway): State<Gateway>) -> Response {
    let changed = gateway.set_paused(true);
    ok(json!({"paused": true, "changed": changed}))
}

/// `POST /_countersign/resume`.
async fn resume(State(gateway): State<Gateway>) -> Response {
    let changed = gateway.set_paused(false);
    ok(json!({"paused": false, "changed": changed}))
}

/// `POST /_countersign/policy/reload`: read every layer again now.
async fn reload_policy(State(gateway): State<Gateway>) -> Response {
    ok(json!({"policy_version": gateway.reload_policy()}))
}

/// `POST /_countersign/shutdown`: stop this gateway cleanly, so a desktop app can take
/// over its port.
async fn shutdown(State(gateway): State<Gateway>) -> Response {
    gateway.shutdown();
    ok(json!({"stopping": true}))
}

#[cfg(test)]
#[path = "control_api_tests.rs"]
mod tests;
