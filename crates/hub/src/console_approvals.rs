//! Approvals from the IT console: a signed-in person reads the requests waiting for them
//! or their groups (`GET /v1/my-approvals`, full arguments as the asking device recorded
//! them) and answers one (`POST /v1/my-approvals/{id}`), bound to the request's nonce and
//! arguments hash as a device's answer is. The hub decides as for a device: the person
//! must be eligible now, never the asker under separation of duties, before the deadline;
//! the first valid answer wins. An API token is nobody: it answers nothing.
//!
//! Must never: answer for anyone but the signed-in person, or skip a check a device's
//! answer gets ([`crate::approval_requests::answer`] makes them all).

use crate::approval_requests::{self as requests, NewAnswer};
use crate::approval_routes::{refused, waiting_item};
use crate::callers::{log_action, staff, Staff};
use crate::reply::error;
use crate::roles::Permission;
use crate::state::Hub;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

/// What the console's answers are recorded as coming from, in place of a device.
pub const CONSOLE_DEVICE: &str = "console";

/// The signed-in person behind `who`, if it is one (never an API token).
fn person_of(who: &Staff) -> Option<String> {
    match (who.session.as_ref(), who.actor.strip_prefix("person ")) {
        (Some(_), Some(email)) => Some(email.to_lowercase()),
        _ => None,
    }
}

fn nobody() -> Response {
    error(StatusCode::FORBIDDEN, "only a person signed in with the company's IdP answers approvals")
}

/// `GET /v1/my-approvals`: what waits for the signed-in person, with each request's nonce.
pub(crate) async fn waiting(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    let who = match staff(&hub, &headers, Permission::Identify, "GET /v1/my-approvals").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(person) = person_of(&who) else { return nobody() };
    match requests::waiting_for(&hub.db, &person).await {
        Ok(list) => Json(list.iter().map(|(r, nonce)| waiting_item(r, nonce)).collect::<Vec<_>>()).into_response(),
        Err(e) => refused(e),
    }
}

/// `POST /v1/my-approvals/{id}`: `{verdict, nonce, args_hash}` from the signed-in person.
pub(crate) async fn answer(
    State(hub): State<Arc<Hub>>,
    Extension(who): Extension<Staff>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(person) = person_of(&who) else { return nobody() };
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return error(StatusCode::NOT_FOUND, "no such request");
    }
    let new: NewAnswer = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not an answer: {e}")),
    };
    match requests::answer(&hub.db, &id, &person, CONSOLE_DEVICE, &new).await {
        Ok(r) => {
            let detail = format!("request {id} {} by {person} for {} (in the console)", r.state, r.requester);
            if let Err(resp) = log_action(&hub, &who, "approval-answered", detail).await {
                return resp;
            }
            hub.approvals_changed.notify_waiters();
            Json(json!({"id": r.id, "state": r.state, "answered_by": r.answered_by})).into_response()
        }
        Err(e) => {
            let _ = log_action(&hub, &who, "approval-refused", format!("request {id} by {person}: {e}")).await;
            refused(e)
        }
    }
}
