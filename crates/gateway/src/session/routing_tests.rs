//! Ids crossing a session: the client's ids are mapped to the gateway's own on the way up
//! and back on the way down, answers reach the request they belong to whatever order the
//! server answers in, an id already in flight is refused, and a cancellation reaches the
//! server under the id the server knows.

use crate::session::testkit::{gateway_with, Upstream};
use serde_json::{json, Value};

#[tokio::test]
async fn client_ids_are_mapped_up_and_restored_down() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp/up").await;
    for id in [json!("abc"), json!(41), json!(-3)] {
        let answer = gw.call("/mcp/up", &session, id.clone(), "echo", &id.to_string()).await;
        assert_eq!(answer["id"], id, "the client gets its own id back, same type: {answer}");
        let text = id.to_string();
        let seen =
            up.wait_for("tools/call", |m| m["params"]["arguments"]["text"].as_str() == Some(text.as_str())).await;
        assert!(seen["id"].is_u64(), "the server sees the gateway's own id: {seen}");
    }
    let ids: Vec<Value> = up.messages("tools/call").iter().map(|m| m["id"].clone()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "every forwarded call has an id of its own: {ids:?}");
}

#[tokio::test]
async fn answers_reach_their_own_request_when_the_server_answers_out_of_order() {
    let up = Upstream::start().await;
    let gw = std::sync::Arc::new(gateway_with(&up).await);
    let session = gw.open("/mcp/up").await;
    let (g, s) = (gw.clone(), session.clone());
    let slow = tokio::spawn(async move { g.call("/mcp/up", &s, json!(1), "slow", "first").await });
    up.wait_for("tools/call", |m| m["params"]["name"] == "slow").await;
    // Asked second, answered first.
    let fast = gw.call("/mcp/up", &session, json!(2), "echo", "second").await;
    assert_eq!(
        (fast["id"].clone(), fast["result"]["content"][0]["text"].clone()),
        (json!(2), json!("echo:second")),
        "{fast}"
    );
    up.release();
    let slow = slow.await.unwrap();
    assert_eq!((slow["id"].clone(), slow["result"]["content"][0]["text"].clone()), (json!(1), json!("slow:first")));
}

#[tokio::test]
async fn an_id_already_in_flight_is_refused_without_reaching_the_server() {
    let up = Upstream::start().await;
    let gw = std::sync::Arc::new(gateway_with(&up).await);
    let session = gw.open("/mcp/up").await;
    let (g, s) = (gw.clone(), session.clone());
    let first = tokio::spawn(async move { g.call("/mcp/up", &s, json!(5), "slow", "one").await });
    up.wait_for("tools/call", |m| m["params"]["name"] == "slow").await;
    let again = gw.call("/mcp/up", &session, json!(5), "echo", "two").await;
    assert_eq!(again["id"], 5);
    assert!(again["error"]["message"].as_str().unwrap_or_default().contains("already in flight"), "{again}");
    assert!(up.messages("tools/call").iter().all(|m| m["params"]["name"] != "echo"), "the duplicate never went up");
    up.release();
    assert_eq!(first.await.unwrap()["result"]["content"][0]["text"], "slow:one");
}

#[tokio::test]
async fn a_cancellation_reaches_the_server_under_its_own_id_and_frees_the_clients_id() {
    let up = Upstream::start().await;
    let gw = std::sync::Arc::new(gateway_with(&up).await);
    let session = gw.open("/mcp/up").await;
    let (g, s) = (gw.clone(), session.clone());
    let call = tokio::spawn(async move {
        let body = json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call",
                          "params": {"name": "slow", "arguments": {}}});
        g.post("/mcp/up", Some(&s), &body.to_string()).await
    });
    let forwarded = up.wait_for("tools/call", |m| m["params"]["name"] == "slow").await;
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": "c1", "reason": "user"}});
    let sent = gw.post("/mcp/up", Some(&session), &cancel.to_string()).await;
    assert_eq!(sent.status, 202);
    let seen = up.wait_for("notifications/cancelled", |_| true).await;
    assert_eq!(seen["params"]["requestId"], forwarded["id"], "mapped to the id the server knows: {seen}");
    // The client's id is free again at once: a new request may use it.
    let reuse = gw.call("/mcp/up", &session, json!("c1"), "echo", "reused").await;
    assert_eq!(reuse["result"]["content"][0]["text"], "echo:reused", "{reuse}");
    up.release();
    let _ = call.await;
}

#[tokio::test]
async fn a_cancellation_of_an_unknown_id_reaches_no_server() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp/up").await;
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "nobody"}});
    assert_eq!(gw.post("/mcp/up", Some(&session), &cancel.to_string()).await.status, 202);
    // A call after it is answered, and the server never saw a cancellation.
    let answer = gw.call("/mcp/up", &session, json!(1), "echo", "x").await;
    assert_eq!(answer["result"]["content"][0]["text"], "echo:x");
    assert!(up.messages("notifications/cancelled").is_empty());
}
