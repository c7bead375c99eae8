//! Stateless (2026-07-28) requests against a running in-process gateway: decided,
//! recorded and refused exactly as a session's are; translated onto a session of the
//! gateway's for a server of an older revision, relayed as they are to one that speaks
//! 2026-07-28; never reachable by a session id, never on another token's link.

use super::super::testkit::{gateway, gateway_with, wait_until, TestGateway, Upstream};
use super::*;
use crate::message::Envelope;

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn request(method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        modern::META_VERSION: "2026-07-28",
        modern::META_CAPABILITIES: {},
        modern::META_CLIENT_INFO: {"name": "t", "version": "1"},
        "traceparent": TRACE,
    });
    json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).to_string()
}

async fn post(gw: &TestGateway, token: &str, method: &str, name: Option<&str>, body: &str) -> (u16, Value) {
    post_to(gw, "/mcp/up", token, method, name, body).await
}

async fn post_to(
    gw: &TestGateway,
    path: &str,
    token: &str,
    method: &str,
    name: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = gw
        .client()
        .post(format!("{}{path}", gw.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .body(body.to_string());
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("one JSON answer: {text}")))
}

async fn call(gw: &TestGateway, tool: &str) -> (u16, Value) {
    let body = request("tools/call", json!({"name": tool, "arguments": {"text": "hi"}}));
    post(gw, &gw.token, "tools/call", Some(tool), &body).await
}

async fn record_of(gw: &TestGateway, tool: &str) -> Value {
    gw.wait_records(&format!("a record of `{tool}`"), |records| records.into_iter().find(|r| r["tool"] == tool)).await
}

#[test]
fn a_request_for_a_session_loses_its_envelope_and_an_answer_says_it_is_complete() {
    let mut env = Envelope::parse(&request("tools/call", json!({"name": "x"}))).unwrap();
    to_handshake(&mut env);
    let params = env.params().unwrap();
    assert_eq!(params["_meta"], json!({"traceparent": TRACE}), "only the envelope's keys are taken out");
    let done = complete(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#.to_string());
    assert!(done.contains(r#""resultType":"complete""#), "{done}");
    let asked = r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}}"#;
    assert_eq!(complete(asked.to_string()), asked, "a result that says what it is keeps it");
    let mut own = json!({"cursor": "c"});
    add_own_meta(&mut own);
    assert_eq!(own["_meta"][modern::META_VERSION], "2026-07-28");
    assert_eq!(own["cursor"], "c");
}

#[tokio::test]
async fn a_stateless_call_to_an_older_server_is_translated_decided_and_recorded() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let (status, answer) = call(&gw, "echo").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], 9);
    assert_eq!(answer["result"]["content"][0]["text"], "echo:hi", "{answer}");
    assert_eq!(answer["result"]["resultType"], "complete");
    let init = up.wait_for("initialize", |_| true).await;
    assert_eq!(init["params"]["clientInfo"]["name"], "countersign-stateless", "the gateway's own session");
    assert_eq!(init["params"]["capabilities"], json!({}), "a stateless client answers no server request");
    let sent = up.wait_for("tools/call", |_| true).await;
    assert_eq!(sent["params"]["_meta"], json!({"traceparent": TRACE}), "{sent}");
    let record = record_of(&gw, "echo").await;
    assert_eq!(record["decision"], "allow");
    assert_eq!(record["client"], "test");
    assert_eq!(record["session"], "stateless", "{record}");
    assert_eq!(record["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{record}");
    // A second call reuses the token's link: one initialize in all.
    let (_, again) = call(&gw, "echo").await;
    assert_eq!(again["result"]["content"][0]["text"], "echo:hi");
    assert_eq!(up.messages("initialize").len(), 1);
}

#[tokio::test]
async fn a_stateless_call_the_policy_denies_never_reaches_the_server_and_is_recorded() {
    let up = Upstream::start().await;
    let gw = gateway(&format!(
        "[servers.up]\nurl = \"{}\"\nheaders = {{ Authorization = \"Bearer t\" }}\n[policy]\nallow = [\"mcp__up__*\"]\n\
         deny = [\"mcp__up__echo\"]\n",
        up.url
    ))
    .await;
    let (status, answer) = call(&gw, "echo").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
    let record = record_of(&gw, "echo").await;
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(record["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "a refused call keeps its trace too");
    assert!(up.messages("tools/call").is_empty(), "the server never saw the call");
}

#[tokio::test]
async fn headers_that_disagree_and_removed_or_unknown_methods_reach_nothing() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let body = request("tools/call", json!({"name": "echo", "arguments": {}}));
    let (status, answer) = post(&gw, &gw.token, "tools/call", Some("fail500"), &body).await;
    assert_eq!((status, answer["error"]["code"].clone()), (400, json!(-32020)), "{answer}");
    assert_eq!(answer["id"], 9, "the error carries the request's id");
    let (status, answer) = post(&gw, &gw.token, "tools/list", None, &body).await;
    assert_eq!((status, answer["error"]["code"].clone()), (400, json!(-32020)), "{answer}");
    for method in ["initialize", "ping", "logging/setLevel", "resources/subscribe", "sampling/createMessage"] {
        let (status, answer) = post(&gw, &gw.token, method, None, &request(method, json!({}))).await;
        assert_eq!((status, answer["error"]["code"].clone()), (404, json!(-32601)), "{method}: {answer}");
    }
    let bare = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}).to_string();
    let (status, answer) = post(&gw, &gw.token, "tools/list", None, &bare).await;
    assert_eq!((status, answer["error"]["code"].clone()), (400, json!(-32602)), "{answer}");
    assert!(up.seen.lock().unwrap().messages.is_empty(), "nothing reached the server");
    // The removed and unknown methods were recorded as refused.
    wait_until("the refusals to be recorded", || {
        let records = futures::executor::block_on(gw.records());
        (records.iter().filter(|r| r["rule"] == "method").count() >= 5).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stateless_session_is_no_session_id_and_no_token_shares_another_tokens_link() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    call(&gw, "echo").await;
    let other = crate::tokens::TokenStore::create(&gw.home, "other").unwrap();
    let body = request("tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
    let (status, _) = post(&gw, &other, "tools/call", Some("echo"), &body).await;
    assert_eq!(status, 200);
    let sessions: Vec<_> = gw.running.sessions.all().into_iter().filter(|s| s.stateless).collect();
    assert_eq!(sessions.len(), 2, "one stateless session per token");
    let tokens: std::collections::HashSet<_> = sessions.iter().map(|s| s.token_name.clone()).collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(up.messages("initialize").len(), 2, "one upstream link per token");
    // Its id opens nothing, for its own token either.
    let own = sessions.iter().find(|s| s.token_name == "test").unwrap();
    let reply = gw.post("/mcp/up", Some(&own.id), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
}

#[tokio::test]
async fn a_server_that_speaks_2026_gets_each_request_as_it_came_and_its_answers_pass_through() {
    let up = Upstream::start_stateless().await;
    let gw = gateway_with(&up).await;
    let (status, listed) = post(&gw, &gw.token, "tools/list", None, &request("tools/list", json!({}))).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["result"]["ttlMs"], 60000, "{listed}");
    assert_eq!(listed["result"]["cacheScope"], "public");
    let (_, asked) = call(&gw, "ask").await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    assert_eq!(asked["result"]["requestState"], "s1");
    let (status, missing) = post(&gw, &gw.token, "prompts/list", None, &request("prompts/list", json!({}))).await;
    assert_eq!((status, missing["error"]["code"].clone()), (404, json!(-32601)), "the server's own 404: {missing}");
    assert!(up.messages("initialize").is_empty(), "no session with a 2026-07-28 server");
    let seen = up.seen.lock().unwrap().requests.clone();
    let call_headers =
        &seen.iter().rev().find(|(_, h)| h.iter().any(|(k, v)| k == "mcp-name" && v == "ask")).unwrap().1;
    let header = |name: &str| call_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(header("mcp-method").as_deref(), Some("tools/call"));
    assert_eq!(header("mcp-protocol-version").as_deref(), Some("2026-07-28"));
    assert_eq!(header("mcp-session-id"), None);
    assert_eq!(
        header("authorization").as_deref(),
        Some("Bearer upstream-test"),
        "the config's header, not the client's token"
    );
    let record = record_of(&gw, "ask").await;
    assert_eq!(record["decision"], "allow");
}

#[tokio::test]
async fn a_servers_input_requests_are_decided_recorded_and_labelled_as_its_requests_are() {
    let up = Upstream::start_stateless().await;
    let gw = gateway_with(&up).await;
    let (_, asked) = call(&gw, "ask").await;
    let question = &asked["result"]["inputRequests"]["q"];
    assert_eq!(question["method"], "elicitation/create", "{asked}");
    let message = question["params"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("[MCP server “up” asks, not Countersign]"), "who asks is said: {message}");
    assert_eq!(question["params"]["_meta"][crate::govern::server_requests::META_SERVER], "up");
    let records = gw.records().await;
    assert!(records.iter().any(|r| r["method"] == "elicitation/create" && r["decision"] == "allow"), "{records:?}");

    // A server the policy may not ask the client anything: the answer is refused.
    let up = Upstream::start_stateless().await;
    let gw = gateway(&format!(
        "[servers.up]\nurl = \"{}\"\nheaders = {{ Authorization = \"Bearer t\" }}\n[policy]\nallow = [\"mcp__up__*\"]\n\
         deny = [\"mcp__up request:elicitation/*\"]\n",
        up.url
    ))
    .await;
    let (_, refused) = call(&gw, "ask").await;
    assert_eq!(refused["id"], 9, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("refused"), "{refused}");
    assert!(refused.get("result").is_none(), "nothing the server asked reaches the client: {refused}");
}

#[tokio::test]
async fn the_aggregate_endpoint_serves_stateless_requests_decided_and_recorded_as_a_servers_own_does() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let ask = |method: &'static str, params: Value| request(method, params);
    let (status, found) =
        post_to(&gw, "/mcp", &gw.token, "server/discover", None, &ask("server/discover", json!({}))).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["result"]["supportedVersions"], json!(["2026-07-28"]), "{found}");
    assert_eq!(found["result"]["_meta"][modern::META_SERVER_INFO]["name"], "countersign", "{found}");
    assert!(up.messages("initialize").is_empty(), "discover on /mcp starts no server");

    let (status, listed) = post_to(&gw, "/mcp", &gw.token, "tools/list", None, &ask("tools/list", json!({}))).await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"up__echo"), "namespaced as in a session: {names:?}");
    let result = &listed["result"];
    assert_eq!(
        (&result["resultType"], &result["cacheScope"], &result["ttlMs"]),
        (&json!("complete"), &json!("private"), &json!(0))
    );

    let body = ask("tools/call", json!({"name": "up__echo", "arguments": {"text": "hi"}}));
    let (status, answer) = post_to(&gw, "/mcp", &gw.token, "tools/call", Some("up__echo"), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "echo:hi", "{answer}");
    let sent = up.wait_for("tools/call", |_| true).await;
    assert_eq!(sent["params"]["name"], "echo", "the server gets its own name for the tool");
    let record = record_of(&gw, "echo").await;
    assert_eq!((&record["decision"], &record["session"]), (&json!("allow"), &json!("stateless")), "{record}");

    let (status, refused) =
        post_to(&gw, "/mcp", &gw.token, "subscriptions/listen", None, &ask("subscriptions/listen", json!({}))).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("/mcp/<server>"), "{refused}");
}
