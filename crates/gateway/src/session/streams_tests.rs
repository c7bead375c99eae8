//! A request answered on an SSE stream, end to end: the answer is an event with an id, and
//! a message the server sends before its answer (a change notice) reaches the client on
//! the same stream, before the answer.

use crate::session::testkit::{gateway_with, Upstream};
use serde_json::json;

#[tokio::test]
async fn a_streamed_answer_carries_what_the_server_said_before_it_in_order() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp/up").await;
    let body =
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "change", "arguments": {}}});
    let reply =
        gw.post_with("/mcp/up", Some(&session), &body.to_string(), "text/event-stream, application/json", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    if reply.content_type.starts_with("text/event-stream") {
        assert!(reply.body.lines().any(|l| l.starts_with("id: ")), "events carry ids: {}", reply.body);
        let events = reply.events();
        let answer = events.iter().position(|e| e["id"] == 9).expect("the answer is on the stream");
        let notice = events.iter().position(|e| e["method"] == "notifications/tools/list_changed");
        assert!(notice.is_some_and(|n| n < answer), "the notice comes before the answer: {events:?}");
    } else {
        // A tool call's complete answer may come as one JSON body; the notice then goes
        // out on the session's GET stream, and the answer must still be the right one.
        assert_eq!(reply.json()["id"], 9, "{}", reply.body);
    }
}
