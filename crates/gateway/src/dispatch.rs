//! One client message after its face let it in: what the HTTP face (`POST /mcp…`) and the
//! shim socket both do with a well-formed JSON-RPC message from an authenticated client.
//! An answer to a server's request goes to the session; anything else is looked up in the
//! method table (`govern::methods`: a method it does not name, or names as another kind, is
//! refused and recorded); `initialize` opens a session (the server's gate first, then the
//! session limits); everything else needs the session and goes to it.
//!
//! Faces differ only in how they carry the result: HTTP maps it to a status and a body,
//! the socket to a line. This module never reads a transport, never checks a credential
//! (the face did) and never decides a call (the session hands it to `govern`).

use crate::front_door::Face;
use crate::govern::methods::{self, Operation};
use crate::message::{self, code, Envelope, Kind};
use crate::session::{self, Answer, AnswerTo, Door, LinkError, Route, Session};
use axum::http::StatusCode;
use countersign_audit::{Outcome, RecordKind};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// What became of one message.
pub(crate) enum Dispatched {
    /// Taken; nothing to answer (a notification, an answer to a server's request).
    Taken,
    /// Refused before any session took it: a JSON-RPC error, and the HTTP status it goes with.
    Refused(StatusCode, String),
    /// A request, its answer on its way.
    Answer(Answer, Operation),
    /// `initialize` opened this session; the answer is on its way.
    Opened(Arc<Session>, Answer),
}

fn refused(status: StatusCode, id: Option<&serde_json::value::RawValue>, code: i64, msg: &str) -> Dispatched {
    Dispatched::Refused(status, message::error_response(id, code, msg))
}

/// Takes one message `env` from the client `token_name` on `route`, in `session` when the
/// client named one (the face checked it belongs to this client, endpoint and face).
pub(crate) async fn dispatch(
    face: &Face,
    route: &Route,
    token_name: &str,
    door: Door,
    session: Option<Arc<Session>>,
    env: Envelope,
    to: AnswerTo,
) -> Dispatched {
    if env.kind() == Kind::Response {
        // An answer to a request a server made; the session knows which ids it handed out.
        return match session {
            Some(session) => {
                session.handle_response(env).await;
                Dispatched::Taken
            }
            None => refused(StatusCode::BAD_REQUEST, None, code::INVALID_REQUEST, "missing Mcp-Session-Id"),
        };
    }
    // The one table of methods a client may send: anything else is refused and audited.
    let op = match methods::lookup(env.method().unwrap_or_default(), env.kind()) {
        Ok(op) => op,
        Err(unlisted) => {
            let (status, body) = refuse_method(face, token_name, session.as_deref(), route, &env, &unlisted, false);
            return Dispatched::Refused(status, body);
        }
    };
    if op == Operation::Initialize {
        if session.is_some() {
            return refused(StatusCode::BAD_REQUEST, env.id(), code::INVALID_REQUEST, "already initialized");
        }
        return initialize(face, route, token_name, door, env, to).await;
    }
    let Some(session) = session else {
        if op == Operation::Discover {
            let msg = "this gateway uses the initialize handshake; stateless requests are not supported yet";
            return refused(StatusCode::OK, env.id(), code::METHOD_NOT_FOUND, msg);
        }
        let msg = match door {
            Door::Http => "missing Mcp-Session-Id: initialize first",
            Door::Socket => "initialize first",
        };
        return refused(StatusCode::BAD_REQUEST, env.id(), code::INVALID_REQUEST, msg);
    };
    match env.kind() {
        Kind::Notification => {
            session.handle_notification(op, env).await;
            Dispatched::Taken
        }
        _ => Dispatched::Answer(session.handle_request(op, env, to).await, op),
    }
}

/// Refuses a message the method table does not name (or names as another kind), with a
/// record of it (with the trace id of the message's `_meta.traceparent`, when valid):
/// −32601 for a request; for a notification, 400 with an error and no id. A stateless
/// (2026-07-28) request's refusal is 404.
pub(crate) fn refuse_method(
    face: &Face,
    token_name: &str,
    session: Option<&Session>,
    route: &Route,
    env: &Envelope,
    unlisted: &methods::Unlisted,
    stateless: bool,
) -> (StatusCode, String) {
    let mut record = face.shared.record(RecordKind::Call, countersign_audit::Decision::Deny);
    record.client = Some(token_name.to_string());
    record.session = if stateless { Some("stateless".into()) } else { session.map(|s| s.id.clone()) };
    record.trace_id = env.params().ok().and_then(|p| crate::trace_context::trace_id(&p));
    record.server = match route {
        Route::Single(s) => Some(s.clone()),
        Route::Aggregate => None,
    };
    record.method = Some(unlisted.method());
    record.rule = Some("method".into());
    record.reason = Some(unlisted.to_string());
    record.policy_version = Some(face.shared.policy.load().version().to_string());
    let (shared, record_id, started) = (face.shared.clone(), record.id, Instant::now());
    let detail = unlisted.to_string();
    tokio::spawn(async move {
        if shared.journal.commit(record).await.is_ok() {
            shared.outcome(session::outcome(record_id, started, Outcome::Rejected, Some(&detail)));
        }
    });
    tracing::warn!(client = %token_name, "refused: {unlisted}");
    let status = match (env.kind(), stateless) {
        (Kind::Notification, _) => StatusCode::BAD_REQUEST,
        (_, true) => StatusCode::NOT_FOUND,
        (_, false) => StatusCode::OK,
    };
    (status, message::error_response(env.id(), code::METHOD_NOT_FOUND, &format!("{unlisted}; it was not forwarded")))
}

async fn initialize(
    face: &Face,
    route: &Route,
    token_name: &str,
    door: Door,
    env: Envelope,
    to: AnswerTo,
) -> Dispatched {
    let limits = &face.shared.config.limits;
    // A server nothing of which this client may reach gets no session: it is not even
    // started, and the client is told why.
    if let Route::Single(server) = route {
        let servers = face.shared.servers();
        let gate = servers.get(server).and_then(|s| face.shared.policy.load().server_gate(&s.info, token_name, false));
        if let Some(v) = gate {
            let unlisted_like = format!("{} (rule `{}`); server `{server}` is not started", v.reason, v.rule);
            let mut record = face.shared.record(RecordKind::Call, countersign_audit::Decision::Deny);
            record.client = Some(token_name.to_string());
            record.server = Some(server.clone());
            record.method = Some("initialize".into());
            record.rule = Some(v.rule.clone());
            record.reason = Some(unlisted_like.clone());
            record.policy_version = Some(v.policy_version.clone());
            let (shared, record_id, started) = (face.shared.clone(), record.id, Instant::now());
            tokio::spawn(async move {
                if shared.journal.commit(record).await.is_ok() {
                    shared.outcome(session::outcome(record_id, started, Outcome::Denied, None));
                }
            });
            return refused(StatusCode::OK, env.id(), code::INVALID_REQUEST, &format!("Countersign: {unlisted_like}"));
        }
    }
    let params = env.params().unwrap_or(Value::Null);
    let session = Session::new(face.shared.clone(), &face.sessions, token_name.to_string(), route.clone(), door);
    session.set_initialize(&params);
    // Sessions are bounded per client token as well as in all, so one client cannot take
    // every slot; counted and added under one lock.
    {
        let mut table = face.sessions.lock();
        if table.len() >= limits.max_sessions {
            return refused(StatusCode::SERVICE_UNAVAILABLE, env.id(), code::INTERNAL_ERROR, "too many sessions");
        }
        let mine = table.values().filter(|s| s.token_name == token_name).count();
        if mine >= limits.max_sessions_per_token {
            let msg = format!(
                "client token `{token_name}` has {mine} sessions open, the most one client may have; close some \
                 (DELETE) or let them expire"
            );
            return refused(StatusCode::TOO_MANY_REQUESTS, env.id(), code::INTERNAL_ERROR, &msg);
        }
        table.insert(session.id.clone(), session.clone());
    }
    tracing::info!(session = %session::short(&session.id), client = %session.token_name, "session opened");
    // A line carries what the server sends on its own from the start, in order with the
    // answers (nothing waits in the backlog behind the initialize answer).
    if let AnswerTo::Line(line) = &to {
        session.send_own_messages_to(line.clone());
    }
    let answer = match route {
        Route::Aggregate => {
            let body = session.aggregate_initialize(env.id());
            match to {
                AnswerTo::Line(line) => {
                    let _ = line.send(body);
                    Answer::OnLine
                }
                _ => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let _ = tx.send(body);
                    Answer::Json(rx)
                }
            }
        }
        Route::Single(server) => {
            // Its server started first: with no room for its process under the cap, the
            // session is not kept, and the client is told which limit refused it. Any
            // other failure to start is answered by the initialize itself, as before.
            if let Err(why @ (LinkError::AtCap { .. } | LinkError::NoRoom { .. })) = session.link(server).await {
                face.sessions.close(&session.id);
                return refused(StatusCode::OK, env.id(), code::UPSTREAM_ERROR, &why.to_string());
            }
            session.handle_request(Operation::Initialize, env, to).await
        }
    };
    Dispatched::Opened(session, answer)
}
