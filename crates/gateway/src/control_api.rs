//! Control endpoints beyond status and approvals: accepting pinned tools, listing and
//! revoking grants, reloading the policy. Every one needs the control token (which only
//! the user's own CLI and app can read); none is reachable with a client token.

use crate::approver::Answer;
use crate::clock::now_ms;
use crate::http_face::{control_auth, json_response, Face};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_policy::GrantLength;
use serde_json::{json, Value};

#[derive(serde::Deserialize)]
pub(crate) struct AnswerQuery {
    /// Grant length: once (default), session, 15m, 1h, today.
    #[serde(rename = "for")]
    length: Option<String>,
    /// An argument condition limiting the grant (`path=/work/**`).
    #[serde(rename = "where")]
    condition: Option<String>,
    /// How many identical waiting calls to release (the count the person saw); 1 when absent.
    all: Option<usize>,
}

/// `POST /_countersign/approvals/{id}/{approve|deny}?for=1h&where=path%3D%2Fwork%2F**`.
/// The length must be one the policy allows and the condition must parse, or nothing is
/// answered.
pub(crate) async fn answer(
    State(face): State<Face>,
    Path((id, verdict)): Path<(String, String)>,
    Query(q): Query<AnswerQuery>,
    req: Request<Body>,
) -> Response {
    if let Err(r) = control_auth(&face, &req) {
        return r;
    }
    let refuse = |status, text: String| (status, format!("{text}\n")).into_response();
    let answer = match verdict.as_str() {
        "deny" => Answer::Denied,
        "approve" => {
            let length = match q.length.as_deref().map(|l| (l, GrantLength::parse(l))) {
                None => GrantLength::Once,
                Some((_, Some(length))) => length,
                Some((l, None)) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        format!("`{l}` is not a grant length (once, session, 15m, 1h, today)"),
                    )
                }
            };
            let policy = face.shared.policy.load();
            let (settings, layer) = policy.grant_settings();
            if !settings.lengths.contains(&length) {
                let allowed: Vec<&str> = settings.lengths.iter().map(|l| l.as_str()).collect();
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "the {} policy does not allow approvals for `{}` (allowed: {})",
                        layer.as_str(),
                        length.as_str(),
                        allowed.join(", ")
                    ),
                );
            }
            if let Some(cond) = &q.condition {
                if let Err(e) = countersign_policy::Rule::parse(&format!("mcp__x__y({cond})")) {
                    return refuse(StatusCode::BAD_REQUEST, format!("bad condition `{cond}`: {e}"));
                }
                if length == GrantLength::Once {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "a condition needs a grant longer than once (--for)".into(),
                    );
                }
            }
            Answer::Approved { length, condition: q.condition, count: q.all.unwrap_or(1).max(1) }
        }
        _ => return refuse(StatusCode::NOT_FOUND, "answer is approve or deny".into()),
    };
    if face.shared.approver.answer(&id, answer) {
        json_response(StatusCode::OK, json!({"answered": id}).to_string())
    } else if let Some(why) = face.shared.approvals.gone(&id) {
        refuse(StatusCode::GONE, format!("the call `{id}` is gone ({why}); nothing was run"))
    } else {
        refuse(StatusCode::NOT_FOUND, format!("no pending approval `{id}`"))
    }
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
                decision: countersign_audit::Decision::Allow,
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

/// `POST /_countersign/shutdown`: stop this gateway cleanly (sessions closed, upstreams
/// stopped, outcomes flushed), so a desktop app can take over its port.
pub(crate) async fn shutdown(State(face): State<Face>, req: Request<Body>) -> Response {
    if let Err(r) = control_auth(&face, &req) {
        return r;
    }
    face.shared.shutdown.notify_one();
    json_response(StatusCode::OK, json!({"stopping": true}).to_string())
}
