//! The streamable HTTP face on loopback: `/mcp/<server>` (one upstream, names unchanged)
//! and `/mcp` (all upstreams, names namespaced), with the control routes (`control_api`)
//! merged in behind their own token layer.
//!
//! Order of checks for every request: Host, Origin and URL (guard) → token → content
//! type and size → JSON well-formedness → 2026-07-28 header/body agreement → the method
//! table (`govern::methods`: a method it does not name, or names as another kind, is
//! refused) → session (`dispatch`, shared with the shim socket). Only then does the
//! session see the message. Every refusal is audited.
//!
//! A stateless (2026-07-28) request, one whose `MCP-Protocol-Version` is not a handshake
//! revision, passes the same guard, token, size and JSON checks, then the revision's own
//! (`modern::check`: `_meta` envelope, headers against the body, version), then the same
//! method table (a method the revision removed is −32601 too), and goes to its token's
//! stateless session for the route; its answer's HTTP status follows its error code.
//! It is never served by a session id, and opens no session of the client's.

use crate::dispatch::{dispatch, Dispatched};
use crate::front_door::{json_response, pre_auth, rejected, Face};
use crate::govern::methods::{self, Operation};
use crate::guard::{self, Refusal};
use crate::message::{self, code, Envelope, Kind};
use crate::session::flow::{Flow, Weighed};
use crate::session::{self, AnswerTo, Door, Route, Session};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;

pub(crate) fn router(face: Face) -> Router {
    let gateway = crate::api::Gateway::new(face.shared.clone(), face.sessions.clone(), face.listen);
    Router::new()
        .route("/mcp", any(mcp_aggregate))
        .route("/mcp/{server}", any(mcp_single))
        .route(crate::gateway_link::HELLO_PATH, post(hello))
        .fallback(not_found)
        .with_state(face.clone())
        .merge(crate::control_api::router(face, gateway))
        .layer(axum::middleware::from_fn(crate::request_body::read_to_end))
}

async fn mcp_aggregate(State(face): State<Face>, req: Request<Body>) -> Response {
    handle(face, Route::Aggregate, req).await
}

async fn mcp_single(State(face): State<Face>, Path(server): Path<String>, req: Request<Body>) -> Response {
    handle(face, Route::Single(server), req).await
}

async fn not_found(State(face): State<Face>, req: Request<Body>) -> Response {
    if let Err(r) = pre_auth(&face, &req) {
        return r;
    }
    rpc_error(StatusCode::NOT_FOUND, None, code::INVALID_REQUEST, "not found: MCP clients use /mcp or /mcp/<server>")
}

fn rpc_error(status: StatusCode, id: Option<&serde_json::value::RawValue>, code: i64, msg: &str) -> Response {
    json_response(status, message::error_response(id, code, msg))
}

async fn handle(face: Face, route: Route, req: Request<Body>) -> Response {
    if let Err(r) = pre_auth(&face, &req) {
        return r;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let token_name = match guard::bearer(req.headers()).and_then(|t| face.shared.tokens.verify(t)) {
        Some(name) => name,
        None => {
            let reason = if guard::bearer(req.headers()).is_some() {
                "unknown client token"
            } else {
                "a client token is required"
            };
            return rejected(
                &face,
                &method,
                &path,
                None,
                Refusal { status: StatusCode::UNAUTHORIZED, reason: reason.into() },
            );
        }
    };
    if let Route::Single(server) = &route {
        let servers = face.shared.servers();
        if !servers.contains_key(server) {
            let known: Vec<&String> = servers.keys().collect();
            let msg = format!("no server named `{server}`; configured: {known:?}");
            return rpc_error(StatusCode::NOT_FOUND, None, code::INVALID_REQUEST, &msg);
        }
    }
    if crate::modern::is_stateless(req.headers()) {
        if method != Method::POST {
            let mut resp = StatusCode::METHOD_NOT_ALLOWED.into_response();
            resp.headers_mut().insert("allow", HeaderValue::from_static("POST"));
            return resp;
        }
        return post_stateless(face, route, token_name, req).await;
    }
    let session_id = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let session = match &session_id {
        None => None,
        Some(id) => match face.sessions.get(id) {
            // A session answers only the token, the endpoint and the face that opened it; a
            // stateless session answers no id at all.
            Some(s) if s.token_name == token_name && s.route == route && s.door == Door::Http && !s.stateless => {
                Some(s)
            }
            _ => return rpc_error(StatusCode::NOT_FOUND, None, code::INVALID_REQUEST, "unknown or expired session"),
        },
    };
    match method {
        Method::POST => post_message(face, route, token_name, session, req).await,
        Method::GET => {
            let Some(session) = session else {
                return rpc_error(StatusCode::BAD_REQUEST, None, code::INVALID_REQUEST, "GET needs an Mcp-Session-Id");
            };
            let accepts_sse = header_has(req.headers(), "accept", "text/event-stream");
            if !accepts_sse {
                let msg = "a GET stream is text/event-stream: send Accept: text/event-stream";
                return rpc_error(StatusCode::NOT_ACCEPTABLE, None, code::INVALID_REQUEST, msg);
            }
            session.touch();
            let resume = req.headers().get("last-event-id").and_then(|v| v.to_str().ok());
            if let Some(events) = resume.and_then(|id| session.resume(id)) {
                return sse_events(events);
            }
            sse_response(session.open_get_stream())
        }
        Method::DELETE => match session {
            Some(session) => {
                face.sessions.remove(&session.id);
                session.close();
                StatusCode::NO_CONTENT.into_response()
            }
            None => rpc_error(StatusCode::BAD_REQUEST, None, code::INVALID_REQUEST, "DELETE needs an Mcp-Session-Id"),
        },
        _ => {
            let mut resp =
                rpc_error(StatusCode::METHOD_NOT_ALLOWED, None, code::INVALID_REQUEST, "use POST, GET or DELETE");
            resp.headers_mut().insert("allow", HeaderValue::from_static("GET, POST, DELETE"));
            resp
        }
    }
}

fn header_has(headers: &HeaderMap, name: &str, needle: &str) -> bool {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(needle))
}

async fn post_message(
    face: Face,
    route: Route,
    token_name: String,
    session: Option<Arc<Session>>,
    req: Request<Body>,
) -> Response {
    if !guard::is_json(req.headers()) {
        let refusal = Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "POST bodies must be Content-Type: application/json".into(),
        };
        return rejected(&face, req.method(), req.uri().path(), Some(token_name), refusal);
    }
    let limits = &face.shared.config.limits;
    let headers = req.headers().clone();
    let sse = header_has(&headers, "accept", "text/event-stream");
    let deadline = std::time::Duration::from_secs(limits.read_timeout_secs);
    let bytes = match tokio::time::timeout(deadline, axum::body::to_bytes(req.into_body(), limits.max_body_bytes)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            let msg = format!("message larger than the {}-byte limit", limits.max_body_bytes);
            return rpc_error(StatusCode::PAYLOAD_TOO_LARGE, None, code::INVALID_REQUEST, &msg);
        }
        Err(_) => {
            let msg = format!("the request body did not arrive within {}s", limits.read_timeout_secs);
            return rpc_error(StatusCode::REQUEST_TIMEOUT, None, code::INVALID_REQUEST, &msg);
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return rpc_error(StatusCode::BAD_REQUEST, None, code::PARSE_ERROR, "body is not UTF-8");
    };
    if let Err(e) = message::check(text, limits.max_depth) {
        return rpc_error(StatusCode::BAD_REQUEST, None, e.code, &e.message);
    }
    let env = match Envelope::parse(text) {
        Ok(env) => env,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, None, e.code, &e.message),
    };
    if let Err(msg) = check_mcp_headers(&headers, &env) {
        return rpc_error(StatusCode::BAD_REQUEST, env.id(), code::HEADER_MISMATCH, &msg);
    }
    let to = if sse { AnswerTo::Stream } else { AnswerTo::Json };
    match dispatch(&face, &route, &token_name, Door::Http, session, env, to).await {
        Dispatched::Taken => StatusCode::ACCEPTED.into_response(),
        Dispatched::Refused(status, body) => json_response(status, body),
        // Only tool calls, the governed hot path, may come back as one JSON body.
        Dispatched::Answer(answer, op) => reply(answer, op == Operation::CallTool, None).await,
        Dispatched::Opened(session, answer) => reply(answer, false, Some(&session.id)).await,
    }
}

/// One stateless (2026-07-28) POST: checked as the revision says, looked up in the same
/// method table, and handed to the token's stateless session for the route.
async fn post_stateless(face: Face, route: Route, token_name: String, req: Request<Body>) -> Response {
    use crate::modern;
    if !guard::is_json(req.headers()) {
        let refusal = Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "POST bodies must be Content-Type: application/json".into(),
        };
        return rejected(&face, req.method(), req.uri().path(), Some(token_name), refusal);
    }
    let headers = req.headers().clone();
    let sse = header_has(&headers, "accept", "text/event-stream");
    let env = match read_envelope(&face, req).await {
        Ok(env) => env,
        Err(resp) => return resp,
    };
    match env.kind() {
        Kind::Response => {
            let msg = "a stateless client answers no server request: there is none to answer on this revision";
            return rpc_error(StatusCode::BAD_REQUEST, env.id(), code::INVALID_REQUEST, msg);
        }
        // The revision defines no client notifications on this wire (a request is
        // cancelled by closing its stream): acknowledged, and not forwarded.
        Kind::Notification => {
            let version = headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !modern::VERSIONS.contains(&version) {
                let data = json!({ "supported": modern::VERSIONS, "requested": version });
                let body =
                    message::error_with_data(None, modern::UNSUPPORTED_VERSION, "Unsupported protocol version", &data);
                return json_response(StatusCode::BAD_REQUEST, body);
            }
            return StatusCode::ACCEPTED.into_response();
        }
        Kind::Request => {}
    }
    if let Err(refusal) = modern::check(&headers, &env) {
        return json_response(modern::status_of(refusal.code), refusal.response(env.id()));
    }
    let method = env.method().unwrap_or_default();
    let op = match methods::lookup(method, env.kind()) {
        Ok(_) if modern::REMOVED.contains(&method) => Err(methods::Unlisted::Removed(method.to_string())),
        found => found,
    };
    let op = match op {
        Ok(op) => op,
        Err(unlisted) => {
            let (status, body) =
                crate::dispatch::refuse_method(&face, &token_name, None, &route, &env, &unlisted, true);
            return json_response(status, body);
        }
    };
    let limits = &face.shared.config.limits;
    let bounds = (limits.max_sessions, limits.max_sessions_per_token);
    let make = || Session::new_stateless(face.shared.clone(), &face.sessions, token_name.clone(), route.clone());
    let session = match face.sessions.stateless(&token_name, &route, bounds, make) {
        Ok(session) => session,
        Err(session::Full::All) => {
            return rpc_error(StatusCode::SERVICE_UNAVAILABLE, env.id(), code::INTERNAL_ERROR, "too many sessions");
        }
        Err(session::Full::Token(n)) => {
            let msg = format!(
                "client token `{token_name}` has {n} sessions open, the most one client may have; close some (DELETE) \
                 or let them expire"
            );
            return rpc_error(StatusCode::TOO_MANY_REQUESTS, env.id(), code::INTERNAL_ERROR, &msg);
        }
    };
    if op == Operation::CallTool {
        if let Some(why) = param_headers_disagree(&session, &route, &headers, &env).await {
            return rpc_error(StatusCode::BAD_REQUEST, env.id(), code::HEADER_MISMATCH, &why);
        }
    }
    let to = if sse { AnswerTo::Stream } else { AnswerTo::Json };
    stateless_reply(session.handle_request(op, env, to).await).await
}

/// Why a stateless tool call's `Mcp-Param-*` headers disagree with its body, judged by the
/// `x-mcp-header` marks of the tool's listed schema, on `/mcp/<server>` and the aggregate
/// `/mcp` alike (listed now if the session has no fresh listing: the call's decision reads
/// it anyway). A tool the server does not list, or a server that cannot be reached, is
/// left to the call, which refuses it itself.
async fn param_headers_disagree(
    session: &Session,
    route: &Route,
    headers: &HeaderMap,
    env: &Envelope,
) -> Option<String> {
    let params = env.params().ok()?;
    let name = params.get("name")?.as_str()?;
    // On the aggregate `/mcp` a tool is named `server__tool`.
    let (server, tool) = match route {
        Route::Single(server) => (server.as_str(), name),
        Route::Aggregate => session::split_name(name)?,
    };
    let def = session.tool_def(server, tool).await.ok()??;
    let marks = crate::param_headers::ParamHeaders::of_schema(&def.input_schema).ok()?;
    marks.check(params.get("arguments").unwrap_or(&serde_json::Value::Null), headers).err()
}

/// Reads a POST body within the limits and parses it as one checked JSON-RPC message.
async fn read_envelope(face: &Face, req: Request<Body>) -> Result<Envelope, Response> {
    let limits = &face.shared.config.limits;
    let deadline = std::time::Duration::from_secs(limits.read_timeout_secs);
    let bytes = match tokio::time::timeout(deadline, axum::body::to_bytes(req.into_body(), limits.max_body_bytes)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            let msg = format!("message larger than the {}-byte limit", limits.max_body_bytes);
            return Err(rpc_error(StatusCode::PAYLOAD_TOO_LARGE, None, code::INVALID_REQUEST, &msg));
        }
        Err(_) => {
            let msg = format!("the request body did not arrive within {}s", limits.read_timeout_secs);
            return Err(rpc_error(StatusCode::REQUEST_TIMEOUT, None, code::INVALID_REQUEST, &msg));
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(rpc_error(StatusCode::BAD_REQUEST, None, code::PARSE_ERROR, "body is not UTF-8"));
    };
    if let Err(e) = message::check(text, limits.max_depth) {
        return Err(rpc_error(StatusCode::BAD_REQUEST, None, e.code, &e.message));
    }
    Envelope::parse(text).map_err(|e| rpc_error(StatusCode::BAD_REQUEST, None, e.code, &e.message))
}

/// How long a stateless answer may take before its response commits to a stream (which
/// then carries keep-alive comments): a quicker answer goes back as JSON, with the HTTP
/// status its error code calls for.
const STATELESS_COMMIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A stateless request's answer: JSON when the answer comes first (with its status), an
/// SSE stream when a notification (progress, a listen stream's events) comes first.
async fn stateless_reply(answer: session::Answer) -> Response {
    let is_answer = |text: &str| Envelope::parse(text).is_ok_and(|e| e.kind() == Kind::Response);
    match answer {
        session::Answer::Json(mut rx) => match rx.recv().await {
            Some(body) => json_response(crate::modern::status_of_answer(&body), body),
            None => rpc_error(StatusCode::OK, None, code::INTERNAL_ERROR, "the request ended without an answer"),
        },
        session::Answer::Live(mut flow) => match tokio::time::timeout(STATELESS_COMMIT, flow.recv()).await {
            Ok(Some(text)) if is_answer(&text) => json_response(crate::modern::status_of_answer(&text), text),
            Ok(Some(text)) => sse_frames(Source { early: [text].into(), rest: flow }, data_frame),
            Ok(None) => rpc_error(StatusCode::OK, None, code::INTERNAL_ERROR, "the request ended without an answer"),
            Err(_) => sse_frames(Source { early: Default::default(), rest: flow }, data_frame),
        },
        session::Answer::Stream(events) => sse_events(events),
        // Never asked for here: HTTP answers go in a body or a stream.
        session::Answer::OnLine => {
            rpc_error(StatusCode::OK, None, code::INTERNAL_ERROR, "the request ended without an answer")
        }
    }
}

/// 2026-07-28: `Mcp-Method` and `Mcp-Name`, when sent, must agree with the body. The
/// policy always reads the body; a disagreement is refused outright.
fn check_mcp_headers(headers: &HeaderMap, env: &Envelope) -> Result<(), String> {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    if let Some(m) = get("mcp-method") {
        if Some(m.as_str()) != env.method() {
            return Err(format!("Mcp-Method header `{m}` does not match the body's method"));
        }
    }
    if let Some(n) = get("mcp-name") {
        let params = env.params().unwrap_or(Value::Null);
        let body_name = params.get("name").or_else(|| params.get("uri")).and_then(Value::as_str);
        if body_name != Some(n.as_str()) {
            return Err(format!("Mcp-Name header `{n}` does not match the name in the body"));
        }
    }
    Ok(())
}

/// The answer to one request: an SSE stream that ends after the answer, or the answer
/// alone as JSON.
/// How long an answer stream may take to finish before the response starts streaming.
const QUICK_ANSWER: std::time::Duration = std::time::Duration::from_millis(5);

async fn reply(answer: session::Answer, quick: bool, session_id: Option<&str>) -> Response {
    let mut resp = match answer {
        session::Answer::Stream(events) if quick => quick_or_streamed(events).await,
        session::Answer::Stream(events) => sse_events(events),
        session::Answer::Live(flow) => sse_response(flow),
        session::Answer::Json(mut rx) => match rx.recv().await {
            Some(body) => json_response(StatusCode::OK, body),
            None => rpc_error(StatusCode::OK, None, code::INTERNAL_ERROR, "the request ended without an answer"),
        },
        // Never asked for here: HTTP answers go in a body or a stream.
        session::Answer::OnLine => {
            rpc_error(StatusCode::OK, None, code::INTERNAL_ERROR, "the request ended without an answer")
        }
    };
    if let Some(v) = session_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        resp.headers_mut().insert("mcp-session-id", v);
    }
    resp
}

/// When a tool call's whole answer is there within [`QUICK_ANSWER`] and is a single message, it
/// goes back as one JSON body (which the transport allows even to a client that accepts
/// SSE): one write instead of a stream. Anything else (progress, requests to the client,
/// a slow upstream) streams, resumable, as usual.
async fn quick_or_streamed(mut events: Flow<session::StreamEvent>) -> Response {
    let mut early = Vec::new();
    let finished = tokio::time::timeout(QUICK_ANSWER, async {
        while let Some(event) = events.recv().await {
            early.push(event);
        }
    })
    .await
    .is_ok();
    let messages: Vec<&String> = early.iter().filter_map(|e| e.data.as_ref()).collect();
    if let (true, [only]) = (finished, messages.as_slice()) {
        return json_response(StatusCode::OK, (*only).clone());
    }
    // What came early, then the rest as the client reads it (nothing is moved into
    // another queue the client might not read).
    sse_frames(Source { early: early.into(), rest: events }, event_frame)
}

/// Items already taken off a flow, then the flow itself.
struct Source<T> {
    early: std::collections::VecDeque<T>,
    rest: Flow<T>,
}

impl<T: Weighed> Source<T> {
    async fn recv(&mut self) -> Option<T> {
        match self.early.pop_front() {
            Some(item) => Some(item),
            None => self.rest.recv().await,
        }
    }
}

/// A resumable stream: every event carries its id; the priming event (empty data) also
/// a retry hint. Framed here rather than with axum's `Sse`, which cannot write the empty
/// `data:` line a priming event needs.
fn sse_events(rx: Flow<session::StreamEvent>) -> Response {
    sse_frames(Source { early: Default::default(), rest: rx }, event_frame)
}

fn event_frame(event: session::StreamEvent) -> String {
    let mut frame = format!("id: {}\n", event.id);
    match event.data {
        Some(data) => push_data(&mut frame, &data),
        None => frame.push_str("retry: 1000\ndata:\n"),
    }
    frame
}

/// Messages without ids (the GET stream for server-initiated messages).
fn sse_response(rx: Flow<String>) -> Response {
    sse_frames(Source { early: Default::default(), rest: rx }, data_frame)
}

/// An event that is one message, with no id (nothing resumes it).
fn data_frame(text: String) -> String {
    let mut frame = String::new();
    push_data(&mut frame, &text);
    frame
}

/// `data:` lines for a message (one per line of it).
fn push_data(frame: &mut String, data: &str) {
    for line in data.split('\n') {
        frame.push_str("data: ");
        frame.push_str(line.trim_end_matches('\r'));
        frame.push('\n');
    }
}

/// An SSE body: each item framed by `frame` (plus the blank line that ends an event), and
/// a comment line after 15 quiet seconds to keep idle streams open.
fn sse_frames<T: Weighed + Send + 'static>(rx: Source<T>, frame: fn(T) -> String) -> Response {
    let stream = futures::stream::unfold(rx, move |mut rx| async move {
        let text = tokio::select! {
            item = rx.recv() => {
                let mut text = frame(item?);
                text.push('\n');
                text
            }
            () = tokio::time::sleep(std::time::Duration::from_secs(15)) => ":\n\n".to_string(),
        };
        Some((Ok::<_, Infallible>(bytes::Bytes::from(text)), rx))
    });
    sse_body(Body::from_stream(stream))
}

fn sse_body(body: Body) -> Response {
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// `POST /_countersign/hello` with `{"nonce": "..."}`: proves this is the gateway of the
/// data folder (see `gateway_link`). Needs no token and grants nothing; the nonce is
/// bounded and the answer is one HMAC.
async fn hello(State(face): State<Face>, req: Request<Body>) -> Response {
    if let Err(r) = pre_auth(&face, &req) {
        return r;
    }
    let deadline = std::time::Duration::from_secs(face.shared.config.limits.read_timeout_secs);
    let body = match tokio::time::timeout(deadline, axum::body::to_bytes(req.into_body(), 1024)).await {
        Ok(Ok(b)) => b,
        _ => return (StatusCode::BAD_REQUEST, "a hello is {\"nonce\": \"...\"} within 1 KiB\n").into_response(),
    };
    let nonce = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("nonce").and_then(Value::as_str).map(str::to_string))
        .filter(|n| (16..=128).contains(&n.len()));
    let Some(nonce) = nonce else {
        return (StatusCode::BAD_REQUEST, "a hello needs a nonce of 16 to 128 characters\n").into_response();
    };
    let proof = crate::gateway_link::prove(&face.shared.control_token, &nonce, face.listen);
    json_response(StatusCode::OK, json!({ "proof": proof }).to_string())
}

#[cfg(test)]
#[path = "http_face_tests.rs"]
mod tests;
