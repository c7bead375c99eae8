use super::*;
use axum::http::HeaderValue;

fn env(method: &str, params: Value) -> Envelope {
    let text = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    Envelope::parse(&text).unwrap()
}

fn meta(version: &str) -> Value {
    json!({ META_VERSION: version, META_CAPABILITIES: {} })
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn good(method: &str) -> Vec<(&'static str, String)> {
    vec![("mcp-protocol-version", "2026-07-28".into()), ("mcp-method", method.to_string())]
}

fn with(base: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]) -> HeaderMap {
    let mut pairs: Vec<(&str, String)> = base;
    pairs.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers(&borrowed)
}

#[test]
fn stateless_is_what_names_a_revision_other_than_the_handshake_ones() {
    assert!(is_stateless(&headers(&[("mcp-protocol-version", "2026-07-28")])));
    assert!(is_stateless(&headers(&[("mcp-protocol-version", "v999.0.0")])), "told which versions are spoken");
    assert!(!is_stateless(&headers(&[("mcp-protocol-version", "2025-11-25")])));
    assert!(!is_stateless(&headers(&[])));
}

#[test]
fn a_well_formed_request_passes_with_what_it_said() {
    let mut params = json!({"name": "echo", "_meta": meta("2026-07-28")});
    params["_meta"]["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let req = check(&with(good("tools/call"), &[("mcp-name", "echo")]), &env("tools/call", params)).unwrap();
    assert_eq!(req.version, "2026-07-28");
    assert_eq!(req.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
}

#[test]
fn missing_meta_or_its_keys_is_invalid_params() {
    for params in [json!({}), json!({"_meta": {META_CAPABILITIES: {}}}), json!({"_meta": {META_VERSION: "2026-07-28"}})]
    {
        let refusal = check(&with(good("server/discover"), &[]), &env("server/discover", params)).unwrap_err();
        assert_eq!(refusal.code, code::INVALID_PARAMS);
        assert_eq!(status_of(refusal.code), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn headers_that_disagree_with_the_body_are_a_header_mismatch() {
    let params = json!({"name": "echo", "_meta": meta("2026-07-28")});
    let cases: Vec<HeaderMap> = vec![
        // No version header, or one that differs from _meta.
        headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]),
        with(vec![("mcp-protocol-version", "2026-07-29".into()), ("mcp-method", "tools/call".into())], &[]),
        // Method header missing or different.
        headers(&[("mcp-protocol-version", "2026-07-28"), ("mcp-name", "echo")]),
        with(good("tools/list"), &[("mcp-name", "echo")]),
        // Name header missing, different, or a broken base64 wrapping.
        with(good("tools/call"), &[]),
        with(good("tools/call"), &[("mcp-name", "other")]),
        with(good("tools/call"), &[("mcp-name", "=?base64?ZWNobw?=")]),
        // A routing header twice.
        with(good("tools/call"), &[("mcp-name", "echo"), ("mcp-name", "echo")]),
        with(good("tools/call"), &[("mcp-name", "echo"), ("mcp-method", "tools/call")]),
    ];
    for h in cases {
        let refusal = check(&h, &env("tools/call", params.clone())).unwrap_err();
        assert_eq!(refusal.code, code::HEADER_MISMATCH, "{h:?}");
    }
    // The name wrapped in base64 is the name.
    let wrapped = with(good("tools/call"), &[("mcp-name", "=?base64?ZWNobw==?=")]);
    assert!(check(&wrapped, &env("tools/call", params)).is_ok());
    // A resource's name is its URI.
    let read = json!({"uri": "file:///a", "_meta": meta("2026-07-28")});
    assert!(check(&with(good("resources/read"), &[("mcp-name", "file:///a")]), &env("resources/read", read.clone()))
        .is_ok());
    assert!(check(&with(good("resources/read"), &[("mcp-name", "file:///b")]), &env("resources/read", read)).is_err());
}

#[test]
fn a_mismatch_is_reported_before_an_unsupported_version() {
    // Header says one version, body another unknown one: the client disagrees with itself.
    let params = json!({"_meta": meta("v999.0.0")});
    let refusal = check(&with(good("server/discover"), &[]), &env("server/discover", params.clone())).unwrap_err();
    assert_eq!(refusal.code, code::HEADER_MISMATCH);
    // Both say the unknown version: it is told which versions are spoken, and echoed.
    let h = headers(&[("mcp-protocol-version", "v999.0.0"), ("mcp-method", "server/discover")]);
    let refusal = check(&h, &env("server/discover", params)).unwrap_err();
    assert_eq!(refusal.code, UNSUPPORTED_VERSION);
    assert_eq!(refusal.data, Some(json!({"supported": ["2026-07-28"], "requested": "v999.0.0"})));
    assert_eq!(status_of(refusal.code), StatusCode::BAD_REQUEST);
    let text = refusal.response(Some(&message::raw("5")));
    assert!(text.contains(r#""id":5"#) && text.contains("-32022"), "{text}");
}

#[test]
fn error_codes_pick_the_http_status() {
    assert_eq!(status_of(code::METHOD_NOT_FOUND), StatusCode::NOT_FOUND);
    assert_eq!(status_of(MISSING_CAPABILITY), StatusCode::BAD_REQUEST);
    assert_eq!(status_of(code::UPSTREAM_ERROR), StatusCode::OK);
    assert_eq!(
        status_of_answer(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#),
        StatusCode::NOT_FOUND
    );
    assert_eq!(status_of_answer(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#), StatusCode::OK);
}
