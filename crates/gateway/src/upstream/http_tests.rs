//! The streamable HTTP transport against an in-process server: the server's session id
//! and the negotiated protocol version go on every later request, an SSE answer is
//! delivered message by message, a request the server fails (an HTTP error, or a
//! connection dropped mid-call) becomes a JSON-RPC error for that request's id, and
//! dropping the link ends the server's session with a DELETE.

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
    let link = super::open("up", &up.url, &auth(), &Limits::default(), events).unwrap();
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
    let link = super::open("up", &up.url, &auth(), &Limits::default(), events).unwrap();
    // The test server answers a call of `change` on an SSE stream: a notice, then the answer.
    link.send(tool_call(7, "change").await).await.unwrap();
    assert_eq!(next_message(&mut rx).await["method"], "notifications/tools/list_changed");
    assert_eq!(next_message(&mut rx).await["id"], 7);
}

#[tokio::test]
async fn a_failed_request_becomes_a_json_rpc_error_for_its_own_id() {
    let up = Upstream::start().await;
    let (events, mut rx) = sink();
    let link = super::open("up", &up.url, &auth(), &Limits::default(), events).unwrap();
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
    let link = super::open("gone", &url, &auth(), &Limits::default(), events).unwrap();
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
    let link = super::open("up", &up.url, &auth(), &Limits::default(), events).unwrap();
    link.send(Outbound::own_request(OwnRequest::Initialize, 1, &json!({}))).await.unwrap();
    next_message(&mut rx).await;
    drop(link);
    match tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await {
        Ok(Some(UpstreamEvent::Closed(why))) => assert!(why.contains("gateway closed"), "{why}"),
        other => panic!("expected the end, got {other:?}"),
    }
    wait_until("a DELETE", || up.seen.lock().unwrap().requests.iter().any(|(m, _)| m == "DELETE").then_some(())).await;
}
