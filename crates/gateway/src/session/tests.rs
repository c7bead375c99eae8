//! A session's life against an in-process upstream: it is opened by `initialize`, its
//! upstream starts on first use with the client's `initialize` replayed, and closing it
//! (DELETE) ends the upstream's session too; an upstream gone mid-call fails that call.
//! A request's W3C trace context (`_meta.traceparent`) reaches the server unchanged and
//! its trace id is on the request's record.

use super::testkit::{gateway_with, wait_until, Upstream};
use serde_json::json;

#[tokio::test]
async fn a_session_replays_the_clients_initialize_and_closing_it_ends_the_upstreams() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp/up").await;
    let init = up.wait_for("initialize", |_| true).await;
    assert_eq!(init["params"]["clientInfo"]["name"], "t", "the client's own initialize reaches the server");

    let answer = gw.call("/mcp/up", &session, json!(1), "echo", "hello").await;
    assert_eq!(answer["result"]["content"][0]["text"], "echo:hello");

    let closed = gw
        .client()
        .delete(format!("{}/mcp/up", gw.base))
        .bearer_auth(&gw.token)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "DELETE: {}", closed.status());
    wait_until("the upstream's session to be closed", || {
        up.seen.lock().unwrap().requests.iter().any(|(m, _)| m == "DELETE").then_some(())
    })
    .await;
    let after = gw.post("/mcp/up", Some(&session), r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).await;
    assert_eq!(after.status, 404, "a closed session is gone: {}", after.body);
}

#[tokio::test]
async fn an_upstream_that_dies_mid_call_gives_the_client_a_json_rpc_error_with_its_id() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp/up").await;
    let answer = gw.call("/mcp/up", &session, json!("call-7"), "die", "").await;
    assert_eq!(answer["id"], "call-7", "{answer}");
    assert!(answer["error"]["message"].is_string(), "an error, not a result: {answer}");
    assert!(answer.get("result").is_none());
    // The session survives: the next call is answered.
    let next = gw.call("/mcp/up", &session, json!(8), "echo", "again").await;
    assert_eq!(next["result"]["content"][0]["text"], "echo:again", "{next}");
}

#[tokio::test]
async fn a_server_error_is_the_callers_error_and_is_recorded_as_such() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp/up").await;
    let answer = gw.call("/mcp/up", &session, json!(3), "fail500", "").await;
    assert_eq!(answer["id"], 3);
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("500"), "{answer}");
    // One decision record for the call, and its outcome is not `ok`.
    gw.running.shared.journal.flush_outcomes();
    let records =
        wait_until_records(&gw, |r| r.iter().any(|x| x["tool"] == "fail500" && !x["outcome"].is_null())).await;
    let call: Vec<_> = records.iter().filter(|r| r["tool"] == "fail500").collect();
    assert_eq!(call.len(), 1, "one record per call: {records:?}");
    assert_ne!(call[0]["outcome"], "ok", "{:?}", call[0]);
}

/// Issue 17: inside a session (any revision may carry trace context in `_meta`), a tool
/// call, a listing and a refused method each get the request's trace id on their record,
/// and the server receives the `_meta` unchanged. An invalid `traceparent` (upper case)
/// is relayed all the same and stores nothing.
#[tokio::test]
async fn a_request_in_a_session_records_its_trace_id_and_relays_its_meta_unchanged() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp/up").await;
    let meta = json!({
        "traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01"),
        "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "com.example/tenant": {"id": 7},
    });
    let call = |id: i64, text: &str, meta: &serde_json::Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"text": text}, "_meta": meta}})
        .to_string()
    };
    let answer = gw.post("/mcp/up", Some(&session), &call(1, "traced", &meta)).await.json();
    assert_eq!(answer["result"]["content"][0]["text"], "echo:traced", "{answer}");
    let sent = up.wait_for("tools/call", |m| m["params"]["arguments"]["text"] == "traced").await;
    assert_eq!(sent["params"]["_meta"], meta, "the server gets the trace context as the client sent it");

    let invalid = json!({"traceparent": format!("00-{}-00f067aa0ba902b7-01", TRACE.to_uppercase())});
    let answer = gw.post("/mcp/up", Some(&session), &call(2, "untraced", &invalid)).await.json();
    assert_eq!(answer["result"]["content"][0]["text"], "echo:untraced", "{answer}");
    let sent = up.wait_for("tools/call", |m| m["params"]["arguments"]["text"] == "untraced").await;
    assert_eq!(sent["params"]["_meta"], invalid, "an invalid traceparent is relayed unchanged");

    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}});
    assert_eq!(gw.post("/mcp/up", Some(&session), &list.to_string()).await.status, 200);
    let unknown = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/smash", "params": {"_meta": meta}});
    let refused = gw.post("/mcp/up", Some(&session), &unknown.to_string()).await.json();
    assert_eq!(refused["error"]["code"], -32601, "{refused}");

    let records = gw
        .wait_records("the call, listing and refusal records", |records| {
            let of = |pick: &dyn Fn(&serde_json::Value) -> bool| records.iter().find(|r| pick(r)).cloned();
            Some([
                of(&|r| r["arguments"]["text"] == "traced")?,
                of(&|r| r["arguments"]["text"] == "untraced")?,
                of(&|r| r["method"] == "tools/list")?,
                of(&|r| r["method"] == "tools/smash")?,
            ])
        })
        .await;
    let [traced, untraced, listed, smashed] = records;
    assert_eq!(traced["trace_id"], TRACE, "{traced}");
    assert_eq!(traced["session"], session, "the session is the session, nothing more");
    assert_eq!(untraced["trace_id"], serde_json::Value::Null, "{untraced}");
    assert_eq!(listed["trace_id"], TRACE, "{listed}");
    assert_eq!((smashed["trace_id"].as_str(), smashed["decision"].as_str()), (Some(TRACE), Some("deny")));
}

async fn wait_until_records(
    gw: &super::testkit::TestGateway,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let records = gw.records().await;
        if done(&records) {
            return records;
        }
        assert!(std::time::Instant::now() < deadline, "records never arrived: {records:?}");
        gw.running.shared.journal.flush_outcomes();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
