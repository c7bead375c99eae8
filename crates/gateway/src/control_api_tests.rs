//! The control routes through a running gateway: the control token is checked in front of
//! every route (a client token is not enough), a pin acceptance whose body is not a list
//! of tool names accepts nothing, and each change of the kill switch is recorded.

use crate::session::testkit::{gateway_with, Upstream};
use serde_json::{json, Value};

async fn control(
    gw: &crate::session::testkit::TestGateway,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let client = gw.client();
    let url = format!("{}{path}", gw.base);
    let req = if method == "GET" { client.get(url) } else { client.post(url).body(body.to_string()) };
    let resp = req.bearer_auth(token).send().await.expect("the gateway answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn every_control_route_needs_the_control_token() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let control_token = gw.home.control_token().unwrap();
    for (method, path) in [
        ("GET", "/_countersign/status"),
        ("GET", "/_countersign/grants"),
        ("POST", "/_countersign/pause"),
        ("POST", "/_countersign/resume"),
        ("POST", "/_countersign/policy/reload"),
        ("POST", "/_countersign/grants/g-1/revoke"),
        ("POST", "/_countersign/pins/up/accept"),
        ("POST", "/_countersign/approvals/p-1/approve"),
        ("POST", "/_countersign/shutdown"),
    ] {
        let (status, _) = control(&gw, method, path, &gw.token, "").await;
        assert_eq!(status, 401, "{method} {path} with a client token");
        let (status, _) = control(&gw, method, path, "csc_guess", "").await;
        assert_eq!(status, 401, "{method} {path} with a guessed token");
    }
    assert!(!gw.running.gateway().paused(), "a refused pause changed nothing");
    let (status, body) = control(&gw, "GET", "/_countersign/status", &control_token, "").await;
    assert_eq!(status, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["servers"][0]["name"], "up");
    assert_eq!(status["hub"]["state"], "not-enrolled");
}

#[tokio::test]
async fn a_pin_acceptance_that_is_not_a_list_of_names_accepts_nothing() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let control_token = gw.home.control_token().unwrap();
    for body in ["not json", r#"{"tools": "echo"}"#, r#"{"tools": [1, 2]}"#] {
        let (status, text) = control(&gw, "POST", "/_countersign/pins/up/accept", &control_token, body).await;
        assert_eq!(status, 400, "{body}: {text}");
    }
    let records = gw.records().await;
    assert!(!records.iter().any(|r| r["rule"] == "pins-accepted"), "nothing was accepted: {records:?}");
}

#[tokio::test]
async fn the_kill_switch_is_recorded_and_an_unknown_grant_is_not_revoked() {
    let up = Upstream::start().await;
    let gw = gateway_with(&up).await;
    let control_token = gw.home.control_token().unwrap();
    let (status, body) = control(&gw, "POST", "/_countersign/pause", &control_token, "").await;
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()["changed"].clone()), (200, json!(true)));
    assert!(gw.running.gateway().paused());
    let (_, body) = control(&gw, "POST", "/_countersign/pause", &control_token, "").await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["changed"], json!(false), "already paused");
    control(&gw, "POST", "/_countersign/resume", &control_token, "").await;
    let (status, _) = control(&gw, "POST", "/_countersign/grants/g-none/revoke", &control_token, "").await;
    assert_eq!(status, 404, "no such grant");
    // The records are committed off the request's path: wait for both.
    let records = gw
        .wait_records("the kill switch's two records", |records| {
            (records.iter().filter(|r| r["rule"] == "paused").count() == 2).then_some(records)
        })
        .await;
    let paused: Vec<&Value> = records.iter().filter(|r| r["rule"] == "paused").collect();
    assert_eq!((paused[0]["decision"].as_str(), paused[1]["decision"].as_str()), (Some("deny"), Some("allow")));
}
