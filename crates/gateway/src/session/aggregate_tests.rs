//! The aggregate endpoint against an in-process upstream: names are namespaced and a call
//! is routed by its prefix with the original name restored; a listing is kept for the
//! session until the server announces a change, and then asked afresh.

use crate::session::testkit::{gateway_with, Upstream};
use serde_json::{json, Value};

fn names(reply: &Value) -> Vec<String> {
    reply["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn tools_are_namespaced_and_a_call_reaches_its_server_by_the_original_name() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp").await;
    let list = gw.post("/mcp", Some(&session), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await.json();
    assert!(names(&list).contains(&"up__echo".to_string()), "{list}");
    assert!(names(&list).iter().all(|n| n.starts_with("up__")), "{list}");
    let answer = gw.call("/mcp", &session, json!(2), "up__echo", "agg").await;
    assert_eq!(answer["result"]["content"][0]["text"], "echo:agg", "{answer}");
    let seen = up.wait_for("tools/call", |m| m["params"]["arguments"]["text"] == "agg").await;
    assert_eq!(seen["params"]["name"], "echo", "the server gets its own name");
    let unknown = gw.call("/mcp", &session, json!(3), "nope__echo", "x").await;
    assert!(unknown.get("error").is_some(), "a prefix naming no server is an error: {unknown}");
}

#[tokio::test]
async fn a_kept_listing_is_asked_afresh_after_the_server_announces_a_change() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let session = gw.open("/mcp").await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    // The first listing starts the upstream, and a start makes kept listings stale (the
    // server may list what an earlier listing could not): the second is the first kept.
    gw.post("/mcp", Some(&session), list).await.json();
    let first = names(&gw.post("/mcp", Some(&session), list).await.json());
    let asked = up.messages("tools/list").len();
    let again = names(&gw.post("/mcp", Some(&session), list).await.json());
    assert_eq!(first, again);
    assert_eq!(up.messages("tools/list").len(), asked, "the second listing came from the kept one");

    // `change` adds a tool and announces it before its answer.
    let answer = gw.call("/mcp", &session, json!(2), "up__change", "").await;
    assert!(answer.get("result").is_some(), "{answer}");
    let after = names(&gw.post("/mcp", Some(&session), list).await.json());
    assert_eq!(after.len(), first.len() + 1, "the new tool is listed: {after:?}");
    assert!(after.contains(&"up__added_0".to_string()));
    assert!(up.messages("tools/list").len() > asked, "the server was asked again");
}
