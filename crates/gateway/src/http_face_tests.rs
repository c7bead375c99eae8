//! The HTTP face in front of a running in-process gateway: a request without a valid
//! client token or from a foreign Origin is refused (and the refusal recorded) before any
//! MCP processing; a body that is not a JSON-RPC message, too large, or without a session
//! gets a JSON-RPC error and reaches no server; a notification is accepted with 202.

use crate::session::testkit::{gateway_with, TestGateway, Upstream};
use serde_json::Value;

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

async fn post_raw(gw: &TestGateway, token: Option<&str>, headers: &[(&str, &str)], body: String) -> (u16, String) {
    let mut req = gw
        .client()
        .post(format!("{}/mcp/up", gw.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn no_token_or_a_wrong_one_is_refused_and_recorded() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    assert_eq!(post_raw(&gw, None, &[], PING.into()).await.0, 401);
    assert_eq!(post_raw(&gw, Some("cs_wrong"), &[], PING.into()).await.0, 401);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rejected = loop {
        let records = gw.records().await;
        let rejected: Vec<Value> = records.into_iter().filter(|r| r["kind"] == "rejected").collect();
        if rejected.len() == 2 {
            break rejected;
        }
        assert!(std::time::Instant::now() < deadline, "two rejected records, got {rejected:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        rejected.iter().all(|r| !r.to_string().contains("cs_wrong")),
        "the token offered is never recorded: {rejected:?}"
    );
    assert!(up.seen.lock().unwrap().messages.is_empty(), "nothing reached the server");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_with_a_good_token() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let (status, _) = post_raw(&gw, Some(&gw.token), &[("origin", "https://evil.example")], PING.into()).await;
    assert_eq!(status, 403);
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (status, body) = post_raw(&gw, Some(&gw.token), &[], init.into()).await;
    assert_eq!(status, 200, "the same request without the Origin passes: {body}");
}

#[tokio::test]
async fn bodies_that_are_not_one_json_rpc_message_get_a_json_rpc_error() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp/up").await;
    let s = session.as_str();
    let cases: Vec<(String, u16, i64)> = vec![
        ("{not json".into(), 400, -32700),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.into(), 400, -32600),
        (
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}}"#,
                "[".repeat(100) + &"]".repeat(100)
            ),
            400,
            -32600,
        ),
    ];
    for (body, status, code) in cases {
        let (got, text) = post_raw(&gw, Some(&gw.token), &[("mcp-session-id", s)], body.clone()).await;
        assert_eq!(got, status, "{body}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON-RPC error body: {text}"));
        assert_eq!(v["error"]["code"], code, "{body}: {text}");
    }
    assert!(up.messages("tools/call").is_empty(), "nothing malformed reached the server");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let up = Upstream::start().await;
    let gw = crate::session::testkit::gateway(&format!(
        "[limits]\nmax_body_bytes = 2048\n[servers.up]\nurl = \"{}\"\nheaders = {{ Authorization = \"Bearer t\" }}\n",
        up.url
    ))
    .await;
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(4096));
    let (status, text) = post_raw(&gw, Some(&gw.token), &[], body).await;
    assert_eq!(status, 413, "{text}");
}

#[tokio::test]
async fn a_request_without_a_session_or_with_an_unknown_one_is_refused() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let (status, text) = post_raw(&gw, Some(&gw.token), &[], PING.into()).await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = post_raw(&gw, Some(&gw.token), &[("mcp-session-id", "no-such-session")], PING.into()).await;
    assert_eq!(status, 404, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["error"]["message"].as_str().unwrap_or_default().contains("session"), "{text}");
}

#[tokio::test]
async fn an_unknown_server_path_is_not_found() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let reply = gw.post("/mcp/nosuch", None, PING).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
}
