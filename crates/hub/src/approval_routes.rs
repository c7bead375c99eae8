//! `/v1/approvals`: devices raise routed approval requests, approvers' devices list what
//! waits for their person and answer, the asking device waits for the answer or withdraws.
//! Waiting lists and answers are long polls woken when any request changes. Raising,
//! answering, withdrawing and every refused answer are lines in the admin log.
//!
//! Every route here takes a device credential only; who a device acts for comes from the
//! hub's own record of it, never from the body.

use crate::approval_requests::{self as requests, ApprovalError, NewAnswer, NewRequest, Request};
use crate::callers::{device, log_action_db, Staff};
use crate::reply::{error, internal};
use crate::state::Hub;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

type Shared = State<Arc<Hub>>;

/// The longest a long poll is held.
const MAX_POLL_SECS: u64 = 30;

pub(crate) fn refused(e: ApprovalError) -> Response {
    let status = match &e {
        ApprovalError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApprovalError::Unroutable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ApprovalError::Mismatch(_) => StatusCode::CONFLICT,
        ApprovalError::Closed(_) => StatusCode::GONE,
        ApprovalError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
        ApprovalError::Bad(_) => StatusCode::BAD_REQUEST,
        ApprovalError::Db(e) => return internal(e),
    };
    error(status, e.to_string())
}

/// The admin log's actor for a device's action.
fn actor(asker: &requests::Asker) -> Staff {
    let who = asker.name().unwrap_or_else(|| "unverified".into());
    Staff::new(format!("device:{} ({who})", asker.device_id), Vec::new())
}

async fn log(hub: &Hub, asker: &requests::Asker, action: &str, detail: String) -> Result<(), Response> {
    log_action_db(&hub.db, &actor(asker), action, detail).await.map_err(internal)
}

async fn asker(hub: &Hub, headers: &HeaderMap) -> Result<requests::Asker, Response> {
    let id = device(hub, headers).await?;
    requests::asker(&hub.db, &id).await.map_err(refused)
}

/// `POST /v1/approvals`: raise a request for a call that policy routes elsewhere.
pub(crate) async fn raise(State(hub): Shared, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let asker = match asker(&hub, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut new: NewRequest = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not an approval request: {e}")),
    };
    let published = match published_policy(&hub).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match requests::check_route(published.as_ref(), &new) {
        Ok(true) => {}
        // A route only the device names never lets the asker answer it.
        Ok(false) => new.self_approval = false,
        Err(e) => {
            let _ = log(&hub, &asker, "approval-unroutable", format!("{}.{}: {e}", new.server, new.tool)).await;
            return refused(e);
        }
    }
    match requests::raise(&hub.db, &asker, &new).await {
        Ok((request, _nonce)) => {
            let detail = format!(
                "request {} by {} on {}: {}.{} ({}) for {} [{}]",
                request.id,
                request.requester,
                request.device_name,
                request.server,
                request.tool,
                request.class,
                request.approver,
                request.eligible.join(", ")
            );
            if let Err(r) = log(&hub, &asker, "approval-requested", detail).await {
                return r;
            }
            hub.approvals_changed.notify_waiters();
            (StatusCode::CREATED, Json(for_asker(&hub, &request))).into_response()
        }
        Err(e) => {
            let why = e.to_string();
            let _ = log(&hub, &asker, "approval-unroutable", format!("{}.{}: {why}", new.server, new.tool)).await;
            refused(e)
        }
    }
}

/// The newest signed bundle's policy, as laptops apply it (none without a signing key or
/// a published bundle).
async fn published_policy(hub: &Hub) -> Result<Option<countersign_policy::PolicySettings>, Response> {
    let Some(key) = &hub.signing_key else { return Ok(None) };
    let Some(latest) = crate::publish::latest(&hub.db).await.map_err(internal)? else { return Ok(None) };
    let checked = countersign_policy::verify_kept_bundle(
        latest.document.as_bytes(),
        Some(&latest.signature),
        Some(&key.public_base64()),
        None,
    );
    match checked {
        Ok(b) => Ok(Some(b.policy)),
        // What this hub signed no longer checks: route nothing by it, and say so.
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("the published policy does not check: {e}"))),
    }
}

/// A request as an approver is shown it (their device, or the console): everything the
/// call would do, and the nonce an answer must carry.
pub(crate) fn waiting_item(r: &Request, nonce: &str) -> serde_json::Value {
    json!({
        "id": r.id, "requester": r.requester, "device_name": r.device_name, "client": r.client,
        "server": r.server, "tool": r.tool, "class": r.class, "arguments": r.arguments,
        "args_hash": r.args_hash, "rule": r.rule, "reason": r.reason, "approver": r.approver,
        "self_approval": r.self_approval, "deadline_ms": r.deadline_ms, "nonce": nonce,
    })
}

/// What the asking device learns: never the nonce. An answered request carries the hub's
/// signature over what was answered (when the hub has a signing key), so the asker can
/// check that its approval comes from this hub and for these arguments.
fn for_asker(hub: &Hub, r: &Request) -> serde_json::Value {
    let signature = match (&hub.signing_key, r.state.as_str(), &r.answered_by) {
        (Some(key), "approved" | "denied", Some(by)) => {
            let text = countersign_audit::checkpoint::approval_statement(&r.id, &r.args_hash, &r.state, by);
            key.sign_text(&text, &format!("countersign approval {}", r.id)).ok()
        }
        _ => None,
    };
    json!({
        "id": r.id, "state": r.state, "approver": r.approver, "eligible": r.eligible,
        "deadline_ms": r.deadline_ms, "answered_by": r.answered_by, "answered_at": r.answered_at,
        "signature": signature,
    })
}

#[derive(Deserialize)]
pub(crate) struct Wait {
    #[serde(default)]
    wait: u64,
}

/// Waits until `ready` says something is there, or `wait` seconds (at most 30) pass.
async fn long_poll<T, F, Fut>(hub: &Hub, wait: u64, mut ready: F) -> Result<T, Response>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(bool, T), Response>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait.min(MAX_POLL_SECS));
    loop {
        // Registered before looking, so a change between the look and the wait is not missed.
        let changed = hub.approvals_changed.notified();
        let (done, value) = ready().await?;
        if done || tokio::time::Instant::now() >= deadline {
            return Ok(value);
        }
        // Other instances are seen by polling: look again at least every 2 s.
        let next = deadline.min(tokio::time::Instant::now() + Duration::from_secs(2));
        let _ = tokio::time::timeout_at(next, changed).await;
    }
}

/// `GET /v1/approvals/{id}?wait=N`: the asking device's request, once answered (or after N s).
pub(crate) async fn state(
    State(hub): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Wait>,
) -> Response {
    let device = match device(&hub, &headers).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let found = long_poll(&hub, q.wait, || async {
        match requests::find(&hub.db, &id).await {
            Ok(Some((r, _))) if r.device_id == device => Ok((r.state != "pending", r)),
            Ok(_) => Err(refused(ApprovalError::NotFound(id.clone()))),
            Err(e) => Err(refused(e)),
        }
    })
    .await;
    match found {
        Ok(r) => Json(for_asker(&hub, &r)).into_response(),
        Err(r) => r,
    }
}

/// `POST /v1/approvals/{id}/withdraw`: the asking device no longer waits.
pub(crate) async fn withdraw(State(hub): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let asker = match asker(&hub, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match requests::withdraw(&hub.db, &id, &asker.device_id).await {
        Ok(true) => {
            if let Err(r) = log(&hub, &asker, "approval-withdrawn", format!("request {id}")).await {
                return r;
            }
            hub.approvals_changed.notify_waiters();
            Json(json!({"withdrawn": id})).into_response()
        }
        Ok(false) => refused(ApprovalError::Closed(format!("request `{id}` is not pending on this device"))),
        Err(e) => refused(e),
    }
}

/// `GET /v1/approvals/waiting?wait=N` (`If-None-Match`: the last list's tag): what waits
/// for this device's person, with each request's nonce; at once when it differs from the
/// tag, else when it changes or after N s (304).
pub(crate) async fn waiting(State(hub): Shared, headers: HeaderMap, Query(q): Query<Wait>) -> Response {
    let asker = match asker(&hub, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(person) = asker.person.clone().filter(|_| asker.agent.is_none()) else {
        return error(StatusCode::FORBIDDEN, "only a device bound to a verified person answers approvals");
    };
    let known = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let found = long_poll(&hub, q.wait, || async {
        let list = requests::waiting_for(&hub.db, &person).await.map_err(refused)?;
        let tag = tag(&list);
        Ok((known.as_deref() != Some(tag.as_str()), (list, tag)))
    })
    .await;
    let (list, tag) = match found {
        Ok(v) => v,
        Err(r) => return r,
    };
    if known.as_deref() == Some(tag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    let items: Vec<_> = list.iter().map(|(r, nonce)| waiting_item(r, nonce)).collect();
    ([(header::ETAG, tag)], Json(json!({ "waiting": items }))).into_response()
}

fn tag(list: &[(Request, String)]) -> String {
    use sha2::{Digest, Sha256};
    let ids: Vec<&str> = list.iter().map(|(r, _)| r.id.as_str()).collect();
    format!("\"{}\"", &hex::encode(Sha256::digest(ids.join(",").as_bytes()))[..16])
}

/// `POST /v1/approvals/{id}/answer`: an approver's device answers, bound to the request's
/// nonce and arguments hash; refused answers are logged.
pub(crate) async fn answer(
    State(hub): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let asker = match asker(&hub, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(person) = asker.person.clone().filter(|_| asker.agent.is_none()) else {
        let _ = log(&hub, &asker, "approval-refused", format!("request {id}: not a verified person's device")).await;
        return error(StatusCode::FORBIDDEN, "only a device bound to a verified person answers approvals");
    };
    let new: NewAnswer = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not an answer: {e}")),
    };
    match requests::answer(&hub.db, &id, &person, &asker.device_id, &new).await {
        Ok(r) => {
            let detail = format!("request {id} {} by {person} for {}", r.state, r.requester);
            if let Err(resp) = log(&hub, &asker, "approval-answered", detail).await {
                return resp;
            }
            hub.approvals_changed.notify_waiters();
            Json(json!({"id": r.id, "state": r.state, "answered_by": r.answered_by})).into_response()
        }
        Err(e) => {
            let _ = log(&hub, &asker, "approval-refused", format!("request {id} by {person}: {e}")).await;
            refused(e)
        }
    }
}
