//! The streamable HTTP transport against an in-process server: the server's session id
//! and the negotiated protocol version go on every later request, an SSE answer is
//! delivered message by message, a request the server fails (an HTTP error, or a
//! connection dropped mid-call) becomes a JSON-RPC error for that request's id, and
//! dropping the link ends the server's session with a DELETE. Against a real axum
//! server that closes its streams early: a stream cut short is resumed with
//! `Last-Event-ID` (the last id it gave) and its answer replayed, and when it cannot be
//! resumed the caller hears why at once, not at the request timeout. Against one that
//! answers a request's POST with anything but its answer (an empty body, HTML, JSON-RPC
//! for another id or no id, a notification, 202, a batch without it, an event stream
//! that ends without it): the caller hears at once, for its own id, what came instead,
//! and nothing of the body; a plain answer passes unchanged, and notifications and
//! answers sent upstream stay silent whatever comes back.

use super::super::{EventSink, UpstreamEvent};
use crate::config::Limits;
use crate::govern::methods::Listing;
use crate::govern::{Outbound, OwnRequest};
use crate::session::testkit::{wait_until, Upstream};
use countersign_vault::Secret;
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn sink() -> (EventSink, mpsc::UnboundedReceiver<UpstreamEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (std::sync::Arc::new(move |e| tx.send(e).is_ok()), rx)
}

async fn next_message(rx: &mut mpsc::UnboundedReceiver<UpstreamEvent>) -> Value {
    match tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await {
        Ok(Some(UpstreamEvent::Message(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// A permit from a real committed record, as the one place that decides makes it.
async fn permit() -> crate::govern::Permit {
    let dir = tempfile::tempdir().unwrap();
    let journal = countersign_audit::Journal::open(&dir.path().join("j.db"), Default::default()).await.unwrap();
    let record = countersign_audit::Record::new(
        countersign_audit::RecordKind::Call,
        "u",
        "d",
        countersign_audit::Decision::Allow,
    );
    journal.commit(record).await.unwrap().into()
}

/// A permitted `tools/call` of `tool`.
async fn tool_call(id: u64, tool: &str) -> Outbound {
    let text = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
    let env = crate::message::Envelope::parse(&text.to_string()).unwrap();
    Outbound::request(permit().await, &env)
}

fn auth() -> Vec<(String, Secret)> {
    vec![("Authorization".into(), Secret::new("Bearer upstream-test".into()))]
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn the_servers_session_and_protocol_version_go_on_every_later_request() {
    let up = Upstream::start().await;
    let (events, mut rx) = sink();
    let link = super::open("up", &up.url, &auth(), None, &Limits::default(), events).unwrap();
    link.send(Outbound::own_request(OwnRequest::Initialize, 1, &json!({"protocolVersion": "2025-06-18"})))
        .await
        .unwrap();
    assert_eq!(next_message(&mut rx).await["id"], 1);
    link.send(Outbound::own_request(OwnRequest::List(Listing::Tools), 2, &json!({}))).await.unwrap();
    assert_eq!(next_message(&mut rx).await["id"], 2);
    let seen = up.seen.lock().unwrap();
    let posts: Vec<_> = seen.requests.iter().filter(|(m, _)| m == "POST").collect();
    assert_eq!(header(&posts[0].1, "mcp-session-id"), None, "the first request has no session yet");
    assert_eq!(header(&posts[1].1, "mcp-session-id"), Some("up-session"));
    assert_eq!(header(&posts[1].1, "mcp-protocol-version"), Some("2025-06-18"));
    assert_eq!(header(&posts[1].1, "authorization"), Some("Bearer upstream-test"), "configured headers are sent");
}

#[tokio::test]
async fn an_sse_answer_is_delivered_message_by_message() {
    let up = Upstream::start().await;
    let (events, mut rx) = sink();
    let link = super::open("up", &up.url, &auth(), None, &Limits::default(), events).unwrap();
    // The test server answers a call of `change` on an SSE stream: a notice, then the answer.
    link.send(tool_call(7, "change").await).await.unwrap();
    assert_eq!(next_message(&mut rx).await["method"], "notifications/tools/list_changed");
    assert_eq!(next_message(&mut rx).await["id"], 7);
}

#[tokio::test]
async fn a_failed_request_becomes_a_json_rpc_error_for_its_own_id() {
    let up = Upstream::start().await;
    let (events, mut rx) = sink();
    let link = super::open("up", &up.url, &auth(), None, &Limits::default(), events).unwrap();
    for (id, tool) in [(11, "fail500"), (12, "die")] {
        link.send(tool_call(id, tool).await).await.unwrap();
        let answer = next_message(&mut rx).await;
        assert_eq!(answer["id"], id, "{answer}");
        assert!(answer["error"]["message"].is_string(), "{tool}: {answer}");
    }
}

#[tokio::test]
async fn an_unreachable_server_fails_the_request_not_the_caller() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (events, mut rx) = sink();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let link = super::open("gone", &url, &auth(), None, &Limits::default(), events).unwrap();
    link.send(Outbound::own_request(OwnRequest::Initialize, 1, &json!({}))).await.unwrap();
    let answer = next_message(&mut rx).await;
    assert_eq!(answer["id"], 1);
    let text = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("cannot reach"), "{answer}");
    assert!(!text.contains(&port.to_string()), "no URL in the error: {text}");
}

#[tokio::test]
async fn dropping_the_link_ends_the_servers_session() {
    let up = Upstream::start().await;
    let (events, mut rx) = sink();
    let link = super::open("up", &up.url, &auth(), None, &Limits::default(), events).unwrap();
    link.send(Outbound::own_request(OwnRequest::Initialize, 1, &json!({}))).await.unwrap();
    next_message(&mut rx).await;
    drop(link);
    match tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await {
        Ok(Some(UpstreamEvent::Closed(why))) => assert!(why.contains("gateway closed"), "{why}"),
        other => panic!("expected the end, got {other:?}"),
    }
    wait_until("a DELETE", || up.seen.lock().unwrap().requests.iter().any(|(m, _)| m == "DELETE").then_some(())).await;
}

// ---- streams cut short: resumption with Last-Event-ID --------------------------------

/// One request the replaying server received, and the headers resumption depends on.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    last_event_id: Option<String>,
    session: Option<String>,
    protocol: Option<String>,
    authorization: Option<String>,
}

/// An MCP server over axum that closes its SSE streams before it is done, as SEP-1699
/// allows, and replays on a GET with `Last-Event-ID`. Event ids are `tool/request/n`.
/// POSTed `tools/call`s of:
/// - `poll`: a priming event (`poll/R/1`, `retry: 50`), closed; resumed from `poll/R/1`
///   it sends a progress notification as `poll/R/2` and closes again; resumed from
///   `poll/R/2` it sends the answer as `poll/R/3`.
/// - `vanish`: a progress notification with no event id, closed.
/// - `refused`: a priming event, closed; a resumption is answered 405.
/// - `stuck`: a priming event (`retry: 10`), closed; every resumption is an empty stream.
/// - `busy`: a priming event (`retry: 10`), closed; every resumption brings a new priming
///   event and closes, and the answer never comes.
///
/// The GET stream (no `Last-Event-ID`) sends a notification as `listen/0/1` and breaks
/// when the test says so ([`Replaying::cut`]); resumed from `listen/0/1` it sends a
/// second one and stays open.
struct Replaying {
    url: String,
    state: std::sync::Arc<Replay>,
}

#[derive(Default)]
struct Replay {
    received: std::sync::Mutex<Vec<Received>>,
    /// Breaks the GET stream.
    cut: tokio::sync::Notify,
}

impl Replaying {
    async fn start() -> Replaying {
        use axum::routing::any;
        let state: std::sync::Arc<Replay> = Default::default();
        let app = axum::Router::new().route("/mcp", any(replaying)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Replaying { url, state }
    }

    /// Breaks the GET stream (now, or once it is open).
    fn cut(&self) {
        self.state.cut.notify_one();
    }

    /// The `Last-Event-ID`s of the resumptions of `tool`'s streams, in order.
    fn resumptions(&self, tool: &str) -> Vec<Received> {
        let received = self.state.received.lock().unwrap();
        received
            .iter()
            .filter(|r| r.last_event_id.as_deref().is_some_and(|id| id.starts_with(&format!("{tool}/"))))
            .cloned()
            .collect()
    }
}

async fn replaying(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<Replay>>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let last_event_id = get("last-event-id");
    state.received.lock().unwrap().push(Received {
        method: method.to_string(),
        last_event_id: last_event_id.clone(),
        session: get("mcp-session-id"),
        protocol: get("mcp-protocol-version"),
        authorization: get("authorization"),
    });
    if method == axum::http::Method::GET {
        let Some(last) = last_event_id else {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"n": 1}});
            let state = state.clone();
            let cut = async move { state.cut.notified().await };
            return sse_then(vec![format!("id: listen/0/1\ndata: {note}\n\n")], Then::Break(Box::pin(cut)));
        };
        let mut parts = last.split('/');
        let (tool, request, n) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next());
        let n: u32 = n.and_then(|n| n.parse().ok()).unwrap_or_default();
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                              "params": {"progressToken": 1, "progress": n}});
        return match (tool, n) {
            ("listen", 1) => {
                let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"n": 2}});
                sse_then(vec![format!("id: listen/0/2\ndata: {note}\n\n")], Then::Hold)
            }
            ("poll", 1) => sse_then(vec![format!("id: poll/{request}/2\ndata: {progress}\n\n")], Then::Close),
            ("poll", 2) => {
                let answer = json!({"jsonrpc": "2.0", "id": request.parse::<u64>().unwrap(),
                                    "result": {"content": [{"type": "text", "text": "replayed"}]}});
                sse_then(vec![format!("id: poll/{request}/3\ndata: {answer}\n\n")], Then::Close)
            }
            ("refused", _) => StatusCode::METHOD_NOT_ALLOWED.into_response(),
            ("stuck", _) => sse_then(vec![], Then::Close),
            ("busy", n) => sse_then(vec![format!("id: busy/{request}/{}\ndata: \n\n", n + 1)], Then::Close),
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let message: Value = serde_json::from_slice(&body).unwrap();
    let id = message["id"].clone();
    match message["method"].as_str().unwrap_or_default() {
        "initialize" => {
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-11-25",
                                "capabilities": {}, "serverInfo": {"name": "replaying", "version": "1"}}});
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .header("mcp-session-id", "replay-session")
                .body(axum::body::Body::from(answer.to_string()))
                .unwrap()
        }
        "tools/call" => {
            let priming = |tool: &str, retry: u32| format!("id: {tool}/{id}/1\nretry: {retry}\ndata: \n\n");
            match message["params"]["name"].as_str().unwrap_or_default() {
                tool @ ("poll" | "refused") => sse_then(vec![priming(tool, 50)], Then::Close),
                tool @ ("stuck" | "busy") => sse_then(vec![priming(tool, 10)], Then::Close),
                "vanish" => {
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                          "params": {"progressToken": 1, "progress": 1}});
                    sse_then(vec![format!("data: {progress}\n\n")], Then::Close)
                }
                _ => StatusCode::BAD_REQUEST.into_response(),
            }
        }
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

use axum::response::IntoResponse;

/// What an SSE response does after its events.
enum Then {
    /// Ends the stream cleanly.
    Close,
    /// Breaks the connection mid-stream once this is done.
    Break(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
    /// Stays open.
    Hold,
}

fn sse_then(events: Vec<String>, then: Then) -> axum::response::Response {
    use futures::StreamExt;
    let events = futures::stream::iter(events.into_iter().map(|e| Ok::<_, std::io::Error>(bytes::Bytes::from(e))));
    let body = match then {
        Then::Close => axum::body::Body::from_stream(events),
        Then::Break(when) => axum::body::Body::from_stream(events.chain(futures::stream::once(async move {
            when.await;
            Err(std::io::Error::other("cut"))
        }))),
        Then::Hold => axum::body::Body::from_stream(events.chain(futures::stream::pending())),
    };
    axum::response::Response::builder().header("content-type", "text/event-stream").body(body).unwrap()
}

/// The next message within `within`, which the test states is well under the request
/// timeout.
async fn message_within(rx: &mut mpsc::UnboundedReceiver<UpstreamEvent>, within: std::time::Duration) -> Value {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(UpstreamEvent::Message(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a message within {within:?}, got {other:?}"),
    }
}

/// A link to `server` with its session set up (initialize, initialized).
async fn initialized(
    server: &Replaying,
    limits: &Limits,
) -> (super::UpstreamLink, mpsc::UnboundedReceiver<UpstreamEvent>) {
    let (events, mut rx) = sink();
    let link = super::open("replaying", &server.url, &auth(), None, limits, events).unwrap();
    link.send(Outbound::own_request(OwnRequest::Initialize, 1, &json!({"protocolVersion": "2025-11-25"})))
        .await
        .unwrap();
    assert_eq!(next_message(&mut rx).await["id"], 1);
    (link, rx)
}

const QUICKLY: std::time::Duration = std::time::Duration::from_secs(5);

#[tokio::test]
async fn a_stream_closed_before_the_answer_is_resumed_from_its_last_event_id_and_the_answer_arrives() {
    let server = Replaying::start().await;
    let (link, mut rx) = initialized(&server, &Limits::default()).await;
    link.send(tool_call(7, "poll").await).await.unwrap();
    let progress = message_within(&mut rx, QUICKLY).await;
    assert_eq!(progress["method"], "notifications/progress", "{progress}");
    let answer = message_within(&mut rx, QUICKLY).await;
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "replayed", "the real result, not an error: {answer}");

    let resumptions = server.resumptions("poll");
    let ids: Vec<_> = resumptions.iter().map(|r| r.last_event_id.as_deref().unwrap()).collect();
    assert_eq!(ids, ["poll/7/1", "poll/7/2"], "each resumption names the last id the stream gave");
    for r in &resumptions {
        assert_eq!(r.method, "GET");
        assert_eq!(r.session.as_deref(), Some("replay-session"), "{r:?}");
        assert_eq!(r.protocol.as_deref(), Some("2025-11-25"), "{r:?}");
        assert_eq!(r.authorization.as_deref(), Some("Bearer upstream-test"), "{r:?}");
    }
    // Nothing else comes for call 7: the next message is the next call's.
    link.send(tool_call(8, "vanish").await).await.unwrap();
    assert_eq!(message_within(&mut rx, QUICKLY).await["method"], "notifications/progress");
    assert_eq!(message_within(&mut rx, QUICKLY).await["id"], 8);
}

#[tokio::test]
async fn a_stream_closed_with_no_event_id_fails_the_call_at_once() {
    let server = Replaying::start().await;
    let (events, mut rx) = sink();
    let link = super::open("replaying", &server.url, &auth(), None, &Limits::default(), events).unwrap();
    link.send(tool_call(9, "vanish").await).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(message_within(&mut rx, QUICKLY).await["method"], "notifications/progress");
    let answer = message_within(&mut rx, QUICKLY).await;
    assert!(started.elapsed() < QUICKLY, "well under the 300 s request timeout");
    assert_eq!(answer["id"], 9, "{answer}");
    let text = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("closed the stream before answering"), "{text}");
    assert!(text.contains("no event id"), "{text}");
    assert!(server.resumptions("vanish").is_empty(), "nothing to resume from");
}

#[tokio::test]
async fn a_refused_resumption_fails_the_call_at_once() {
    let server = Replaying::start().await;
    let (events, mut rx) = sink();
    let link = super::open("replaying", &server.url, &auth(), None, &Limits::default(), events).unwrap();
    link.send(tool_call(10, "refused").await).await.unwrap();
    let answer = message_within(&mut rx, QUICKLY).await;
    assert_eq!(answer["id"], 10, "{answer}");
    let text = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("closed the stream before answering"), "{text}");
    assert!(text.contains("405"), "{text}");
    let ids: Vec<_> = server.resumptions("refused").into_iter().filter_map(|r| r.last_event_id).collect();
    assert_eq!(ids, ["refused/10/1"], "one resumption, from the priming event's id; a refusal is final");
}

#[tokio::test]
async fn a_server_that_keeps_closing_with_nothing_new_is_given_up_after_bounded_resumptions() {
    let server = Replaying::start().await;
    let (events, mut rx) = sink();
    let link = super::open("replaying", &server.url, &auth(), None, &Limits::default(), events).unwrap();
    link.send(tool_call(11, "stuck").await).await.unwrap();
    let answer = message_within(&mut rx, QUICKLY).await;
    assert_eq!(answer["id"], 11, "{answer}");
    let text = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("{} resumptions in a row brought nothing new", super::MAX_RESUMES)), "{text}");
    let ids: Vec<_> = server.resumptions("stuck").into_iter().filter_map(|r| r.last_event_id).collect();
    assert_eq!(ids, vec!["stuck/11/1"; super::MAX_RESUMES as usize]);
}

#[tokio::test]
async fn a_server_that_keeps_closing_with_news_but_no_answer_is_given_up_at_the_request_timeout() {
    let server = Replaying::start().await;
    let (events, mut rx) = sink();
    let limits = Limits { request_timeout_secs: 1, ..Limits::default() };
    let link = super::open("replaying", &server.url, &auth(), None, &limits, events).unwrap();
    link.send(tool_call(12, "busy").await).await.unwrap();
    let answer = message_within(&mut rx, QUICKLY).await;
    assert_eq!(answer["id"], 12, "{answer}");
    let text = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("request timeout (1 s)"), "{text}");
    let ids: Vec<_> = server.resumptions("busy").into_iter().filter_map(|r| r.last_event_id).collect();
    assert!(ids.len() > super::MAX_RESUMES as usize, "new events count as news: {}", ids.len());
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "each from the newest id: {ids:?}");
}

#[tokio::test]
async fn the_get_stream_is_resumed_after_a_break_from_its_last_event_id() {
    let server = Replaying::start().await;
    let (link, mut rx) = initialized(&server, &Limits::default()).await;
    link.send(Outbound::initialized()).await.unwrap();
    assert_eq!(message_within(&mut rx, QUICKLY).await["params"]["n"], 1);
    server.cut();
    assert_eq!(message_within(&mut rx, QUICKLY).await["params"]["n"], 2);
    let ids: Vec<_> = server.resumptions("listen").into_iter().filter_map(|r| r.last_event_id).collect();
    assert_eq!(ids, ["listen/0/1"]);
}

// ---- a request's POST answered with something else: an error at once ----------------

/// An MCP server over axum that answers requests' POSTs with anything but their answer,
/// by the name of the tool called (the body's text holds a marker, `upstream-secret`,
/// that no error may repeat):
/// - `plain`: the answer, as JSON (the control);
/// - `huge`: the answer, as JSON over 4 KiB (the tests set a size limit of 1 KiB);
/// - `empty`: 200, `application/json`, no body;
/// - `html`: 200, an HTML page;
/// - `other-id`: 200, an answer to another id;
/// - `no-id`: 200, a "response" with a result and no id;
/// - `note-only`: 200, a notification only;
/// - `accepted`: 202, no body;
/// - `batch`: 200, a batch of a notification and the answer;
/// - `batch-without`: 200, a batch of a notification only;
/// - `hollow`: 200, an SSE stream of a notification with no event id, ended cleanly.
///
/// A `notifications/cancelled` whose reason is `empty` or `html` is answered like those
/// tools; every other notification and every answer gets 202.
struct Misanswering {
    url: String,
}

const HTML: &str = "<html><body>upstream-secret: do not repeat me</body></html>";

impl Misanswering {
    async fn start() -> Misanswering {
        let app = axum::Router::new().route("/mcp", axum::routing::post(misanswering));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Misanswering { url }
    }
}

async fn misanswering(body: bytes::Bytes) -> axum::response::Response {
    use axum::http::StatusCode;
    let reply = |status: StatusCode, content_type: &str, body: String| {
        axum::response::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let json = |body: Value| reply(StatusCode::OK, "application/json", body.to_string());
    let message: Value = serde_json::from_slice(&body).unwrap();
    let id = message["id"].clone();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "data": "upstream-secret"}});
    let answer =
        |id: Value| json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "plain"}]}});
    let what = match (message["method"].as_str(), &id) {
        (Some("tools/call"), Value::Number(_)) => message["params"]["name"].as_str().unwrap_or_default(),
        (Some("notifications/cancelled"), Value::Null) => message["params"]["reason"].as_str().unwrap_or_default(),
        _ => "",
    };
    match what {
        "plain" => json(answer(id)),
        "huge" => json(json!({"jsonrpc": "2.0", "id": id, "result": {"upstream-secret": "x".repeat(4096)}})),
        "empty" => reply(StatusCode::OK, "application/json", String::new()),
        "html" => reply(StatusCode::OK, "text/html; charset=utf-8", HTML.into()),
        "other-id" => json(answer(json!(id.as_u64().unwrap() + 1000))),
        "no-id" => json(json!({"jsonrpc": "2.0", "result": {"upstream-secret": true}})),
        "note-only" => json(note),
        "accepted" => StatusCode::ACCEPTED.into_response(),
        "batch" => json(json!([note, answer(id)])),
        "batch-without" => json(json!([note])),
        "hollow" => sse_then(vec![format!("data: {note}\n\n")], Then::Close),
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

/// Generous, as configured in production: every answer below must come long before it.
const LONG_TIMEOUT: u64 = 300;

/// A link to `server` with the long request timeout (no session: the server keeps none).
fn misanswered_link(server: &Misanswering) -> (super::UpstreamLink, mpsc::UnboundedReceiver<UpstreamEvent>) {
    let (events, rx) = sink();
    let limits = Limits { request_timeout_secs: LONG_TIMEOUT, ..Limits::default() };
    (super::open("misanswering", &server.url, &auth(), None, &limits, events).unwrap(), rx)
}

/// Calls `tool` as request `id`: the messages handed on before the last, and the last,
/// which must arrive well within the request timeout.
async fn call_misanswered(tool: &str, id: u64, messages: usize) -> (Vec<Value>, Value) {
    let server = Misanswering::start().await;
    let (link, mut rx) = misanswered_link(&server);
    let started = std::time::Instant::now();
    link.send(tool_call(id, tool).await).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..messages {
        got.push(message_within(&mut rx, QUICKLY).await);
    }
    assert!(started.elapsed() < QUICKLY, "well under the {LONG_TIMEOUT} s request timeout");
    let last = got.pop().unwrap();
    (got, last)
}

/// The error answer `answer` must be: for request `id`, the upstream error code, a
/// message naming the server and containing `says`, and nothing of the body.
fn assert_refusal(answer: &Value, id: u64, says: &str) {
    assert_eq!(answer["id"], id, "the request's own id: {answer}");
    assert_eq!(answer["error"]["code"], crate::message::code::UPSTREAM_ERROR, "{answer}");
    let text = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("upstream server `misanswering`"), "names the server: {text}");
    assert!(text.contains(says), "says what came ({says}): {text}");
    assert!(!text.contains("upstream-secret") && !text.contains("<html"), "nothing of the body: {text}");
    assert!(answer.get("result").is_none(), "{answer}");
}

#[tokio::test]
async fn a_plain_json_answer_still_passes_through_unchanged() {
    let server = Misanswering::start().await;
    let (link, mut rx) = misanswered_link(&server);
    link.send(tool_call(20, "plain").await).await.unwrap();
    let text = match tokio::time::timeout(QUICKLY, rx.recv()).await {
        Ok(Some(UpstreamEvent::Message(text))) => text,
        other => panic!("expected the answer, got {other:?}"),
    };
    let sent = json!({"jsonrpc": "2.0", "id": 20, "result": {"content": [{"type": "text", "text": "plain"}]}});
    assert_eq!(text, sent.to_string(), "byte for byte as the server sent it");
    // And nothing follows it: the next message is the next call's.
    link.send(tool_call(21, "plain").await).await.unwrap();
    assert_eq!(message_within(&mut rx, QUICKLY).await["id"], 21);
}

#[tokio::test]
async fn an_empty_200_body_fails_the_request_at_once() {
    let (_, answer) = call_misanswered("empty", 22, 1).await;
    assert_refusal(&answer, 22, "answered HTTP 200 OK with an empty body");
}

#[tokio::test]
async fn a_200_body_that_is_not_json_fails_the_request_at_once_naming_its_type_and_size() {
    let (_, answer) = call_misanswered("html", 23, 1).await;
    let says = format!("answered HTTP 200 OK with a body that is not JSON-RPC (text/html, {} bytes)", HTML.len());
    assert_refusal(&answer, 23, &says);
}

#[tokio::test]
async fn a_200_json_body_that_is_not_the_requests_answer_fails_it_at_once() {
    // An answer to another id is handed on as it is (the session drops what it never
    // asked), then the request's error.
    let (before, answer) = call_misanswered("other-id", 24, 2).await;
    assert_eq!(before[0]["id"], 1024, "{before:?}");
    assert_refusal(&answer, 24, "answered HTTP 200 OK with JSON-RPC that holds no answer to the request");
    // A "response" with no id is no JSON-RPC message at all.
    let (_, answer) = call_misanswered("no-id", 25, 1).await;
    assert_refusal(&answer, 25, "with a body that is not JSON-RPC (application/json, ");
    // A notification alone is handed on, then the error.
    let (before, answer) = call_misanswered("note-only", 26, 2).await;
    assert_eq!(before[0]["method"], "notifications/message", "{before:?}");
    assert_refusal(&answer, 26, "answered HTTP 200 OK with JSON-RPC that holds no answer to the request");
}

#[tokio::test]
async fn a_202_to_a_request_fails_it_at_once() {
    let (_, answer) = call_misanswered("accepted", 27, 1).await;
    assert_refusal(&answer, 27, "answered 202 Accepted to a request, which must be answered");
}

#[tokio::test]
async fn an_answer_over_the_size_limit_fails_the_request_at_once_naming_the_limit() {
    let server = Misanswering::start().await;
    let (events, mut rx) = sink();
    let limits = Limits { request_timeout_secs: LONG_TIMEOUT, max_line_bytes: 1024, ..Limits::default() };
    let link = super::open("misanswering", &server.url, &auth(), None, &limits, events).unwrap();
    link.send(tool_call(36, "huge").await).await.unwrap();
    let answer = message_within(&mut rx, QUICKLY).await;
    assert_refusal(&answer, 36, "answered HTTP 200 OK with a body over the 1,024-byte limit (application/json)");
}

#[tokio::test]
async fn a_batch_is_handed_on_message_by_message_and_fails_the_request_only_without_its_answer() {
    let (before, answer) = call_misanswered("batch", 28, 2).await;
    assert_eq!(before[0]["method"], "notifications/message", "{before:?}");
    assert_eq!(answer["id"], 28, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "plain", "the answer itself, no error: {answer}");

    let (before, answer) = call_misanswered("batch-without", 29, 2).await;
    assert_eq!(before[0]["method"], "notifications/message", "{before:?}");
    assert_refusal(&answer, 29, "answered HTTP 200 OK with JSON-RPC that holds no answer to the request");
}

#[tokio::test]
async fn an_event_stream_that_ends_without_the_answer_or_an_event_id_fails_the_request_at_once() {
    let (before, answer) = call_misanswered("hollow", 30, 2).await;
    assert_eq!(before[0]["method"], "notifications/message", "{before:?}");
    assert_refusal(&answer, 30, "closed the stream before answering");
    assert_refusal(&answer, 30, "the stream gave no event id to resume from");
}

#[tokio::test]
async fn notifications_and_answers_sent_upstream_stay_silent_whatever_comes_back() {
    let server = Misanswering::start().await;
    let (events, mut rx) = sink();
    let limits = Limits { request_timeout_secs: LONG_TIMEOUT, ..Limits::default() };
    let remote = super::remote("misanswering", &server.url, &auth(), None, &limits, events, false).unwrap();
    // A notification answered 200 with an empty body, with HTML, or 202; an answer to a
    // server's request (202). `post` returns once what came back is handled.
    let cancel = |reason: &str| Outbound::cancel(5, reason).into_text();
    let answer = Outbound::refusal(&crate::message::raw("7"), -32600, "no").into_text();
    for text in [cancel("empty"), cancel("html"), cancel("accepted"), answer] {
        remote.post(&text).await.unwrap();
        assert!(rx.try_recv().is_err(), "nothing for {text}");
    }
}

#[tokio::test]
async fn a_stateless_request_answered_with_a_success_that_is_not_its_answer_says_what_came() {
    let server = Misanswering::start().await;
    let (events, mut rx) = sink();
    let limits = Limits { request_timeout_secs: LONG_TIMEOUT, max_line_bytes: 1024, ..Limits::default() };
    let remote = super::remote("misanswering", &server.url, &auth(), None, &limits, events, true).unwrap();
    let cases = [
        (31, "empty", "answered HTTP 200 OK with an empty body".to_string()),
        (32, "html", format!("with a body that is not JSON-RPC (text/html, {} bytes)", HTML.len())),
        (33, "other-id", "with JSON-RPC that holds no answer to the request (application/json, ".into()),
        (34, "accepted", "answered 202 Accepted to a request, which must be answered".into()),
        (35, "huge", "answered HTTP 200 OK with a body over the 1,024-byte limit (application/json)".into()),
    ];
    for (id, tool, says) in cases {
        let text = tool_call(id, tool).await.into_text();
        assert!(remote.post(&text).await.is_err(), "{tool}");
        assert_refusal(&message_within(&mut rx, QUICKLY).await, id, &says);
    }
}
