//! Control endpoints beyond status and approvals: accepting pinned tools, listing and
//! revoking grants, reloading the policy. Every one needs the control token (which only
//! the user's own CLI and app can read); none is reachable with a client token.

use crate::http_face::{control_auth, json_response, Face};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `POST /_countersign/pins/{server}/accept` with `{"tools": [...]}` (empty: all).
pub(crate) async fn accept_pins(State(face): State<Face>, Path(server): Path<String>, req: Request<Body>) -> Response {
    if let Err(r) = control_auth(&face, &req) {
        return r;
    }
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024).await.unwrap_or_default();
    let tools: Vec<String> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("tools").and_then(|t| serde_json::from_value(t.clone()).ok()))
        .unwrap_or_default();
    let result = face
        .shared
        .pins
        .lock()
        .map_err(|_| "pin store unavailable".to_string())
        .and_then(|mut p| p.accept(&server, &tools));
    match result {
        Ok(n) => {
            tracing::info!(server, accepted = n, "tools accepted and pinned");
            let what = if tools.is_empty() { "every tool".to_string() } else { tools.join(", ") };
            face.shared.policy_event(crate::shared::PolicyEvent {
                decision: "allow",
                rule: "pins-accepted",
                reason: format!("accepted {what} as listed now"),
                server: Some(server.clone()),
                tool: (tools.len() == 1).then(|| tools[0].clone()),
            });
            json_response(StatusCode::OK, json!({"server": server, "accepted": n}).to_string())
        }
        Err(e) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    }
}

/// `GET /_countersign/grants`.
pub(crate) async fn list_grants(State(face): State<Face>, req: Request<Body>) -> Response {
    if let Err(r) = control_auth(&face, &req) {
        return r;
    }
    let grants = face.shared.grants.lock().map(|mut g| g.list(now_ms())).unwrap_or_default();
    json_response(StatusCode::OK, json!({"grants": grants}).to_string())
}

/// `POST /_countersign/grants/{id}/revoke`.
pub(crate) async fn revoke_grant(State(face): State<Face>, Path(id): Path<String>, req: Request<Body>) -> Response {
    if let Err(r) = control_auth(&face, &req) {
        return r;
    }
    if face.shared.grants.lock().is_ok_and(|mut g| g.revoke(&id)) {
        tracing::info!(grant = %id, "grant revoked");
        json_response(StatusCode::OK, json!({"revoked": id}).to_string())
    } else {
        (StatusCode::NOT_FOUND, format!("no grant `{id}`\n")).into_response()
    }
}

/// `POST /_countersign/policy/reload`: read every layer again now.
pub(crate) async fn reload_policy(State(face): State<Face>, req: Request<Body>) -> Response {
    if let Err(r) = control_auth(&face, &req) {
        return r;
    }
    crate::policy_watch::reload(&face.shared);
    json_response(StatusCode::OK, json!({"policy_version": face.shared.policy.load().version()}).to_string())
}
