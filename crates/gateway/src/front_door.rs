//! The loopback port's front door: the state every route shares ([`Face`]) and the checks
//! every request passes before a route sees it (Host, Origin and URL through `guard`, each
//! refusal audited), plus the control token for the control routes, applied as a layer.
//!
//! Every refusal at a door, the shim socket's included, is recorded the same way
//! ([`record_refusal`]).
//!
//! It never lets a request past without the guard's checks, and never accepts a client
//! token where the control token is required.

use crate::guard::{self, Refusal};
use crate::shared::Shared;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use countersign_audit::{Outcome, RecordKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// What every route of the loopback port shares.
#[derive(Clone)]
pub(crate) struct Face {
    pub shared: Arc<Shared>,
    pub sessions: Arc<crate::session::Sessions>,
    pub listen: SocketAddr,
}

/// The guard's checks (Host, Origin, URL), with refusals audited.
#[allow(clippy::result_large_err)]
pub(crate) fn pre_auth(face: &Face, req: &Request<Body>) -> Result<(), Response> {
    guard::check_request(
        req.method(),
        req.uri(),
        req.headers(),
        face.listen,
        &face.shared.config.gateway.allowed_origins,
    )
    .map_err(|r| rejected(face, req.method(), req.uri().path(), None, r))
}

/// A refusal at the door: recorded in the journal, logged, and answered with its status.
pub(crate) fn rejected(face: &Face, method: &Method, path: &str, client: Option<String>, refusal: Refusal) -> Response {
    record_refusal(&face.shared, format!("{method} {path}"), client, &refusal.reason);
    tracing::warn!(status = %refusal.status, "refused {method} {path}: {}", refusal.reason);
    // A JSON-RPC error body, as everything else on the MCP endpoints answers: no id (the
    // body was not read), the reason as its message.
    let body = crate::message::error_response(None, crate::message::code::INVALID_REQUEST, &refusal.reason);
    let mut resp = json_response(refusal.status, body);
    if refusal.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    resp
}

/// Records a refusal at a door (this port's, or the shim socket's) as a `rejected` record
/// of the transport: what was tried (`what`: method and path, or the socket's connect),
/// by which client when one is known, and why.
pub(crate) fn record_refusal(shared: &Arc<Shared>, what: String, client: Option<String>, reason: &str) {
    let mut record = shared.record(RecordKind::Rejected, countersign_audit::Decision::Deny);
    record.client = client;
    record.method = Some(what);
    record.reason = Some(reason.to_string());
    record.rule = Some("transport".into());
    let record_id = record.id;
    let shared = shared.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        if shared.journal.commit(record).await.is_ok() {
            shared.outcome(crate::session::outcome(record_id, started, Outcome::Rejected, None));
        }
    });
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

/// The layer in front of every control route: the guard's checks, then the control token
/// (which only the user's own CLI and app can read). A client token is not enough.
pub(crate) async fn require_control_token(State(face): State<Face>, req: Request, next: Next) -> Response {
    if let Err(r) = pre_auth(&face, &req) {
        return r;
    }
    match guard::bearer(req.headers()) {
        Some(t) if t == face.shared.control_token => next.run(req).await,
        _ => rejected(
            &face,
            req.method(),
            req.uri().path(),
            None,
            Refusal { status: StatusCode::UNAUTHORIZED, reason: "the control token is required".into() },
        ),
    }
}
