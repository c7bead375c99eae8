use super::*;
use serde_json::json;

fn marks(schema: Value) -> ParamHeaders {
    ParamHeaders::of_schema(&schema).expect("a valid schema")
}

fn deploy() -> ParamHeaders {
    marks(json!({
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "priority": {"type": "integer", "x-mcp-header": "Priority"},
            "dry": {"type": "boolean", "x-mcp-header": "Dry"},
            "target": {"type": "object", "properties": {"zone": {"type": "string", "x-mcp-header": "Zone"}}},
            "note": {"type": "string"}
        }
    }))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    map
}

fn mirrored(p: &ParamHeaders, args: Value) -> Vec<(String, String)> {
    let mut out: Vec<_> =
        p.mirror(&args).into_iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string())).collect();
    out.sort();
    out
}

#[test]
fn marked_arguments_are_mirrored_nested_ones_too_and_absent_or_null_ones_are_not() {
    let got = mirrored(&deploy(), json!({"region": "eu-west1", "priority": 7, "dry": false, "target": {"zone": "b"}}));
    let want = [
        ("mcp-param-dry", "false"),
        ("mcp-param-priority", "7"),
        ("mcp-param-region", "eu-west1"),
        ("mcp-param-zone", "b"),
    ];
    assert_eq!(got, want.map(|(n, v)| (n.to_string(), v.to_string())));
    assert_eq!(mirrored(&deploy(), json!({"region": null, "note": "x"})), vec![]);
}

#[test]
fn a_value_that_is_not_plain_ascii_goes_as_base64_and_reads_back() {
    let args = json!({"region": "Zürich\r\nX-Evil: 1"});
    let got = mirrored(&deploy(), args.clone());
    assert_eq!(got.len(), 1);
    assert!(got[0].1.starts_with("=?base64?") && !got[0].1.contains('\n'), "{got:?}");
    let sent = headers(&[("Mcp-Param-Region", &got[0].1)]);
    assert_eq!(deploy().check(&args, &sent), Ok(()));
    assert_eq!(encode_value(" edge"), "=?base64?IGVkZ2U=?=");
    assert_eq!(encode_value("=?base64?AA==?="), "=?base64?PT9iYXNlNjQ/QUE9PT89?=");
}

#[test]
fn headers_that_agree_with_the_body_pass() {
    let args = json!({"region": "us", "priority": 42, "target": {"zone": "a"}});
    let sent = headers(&[("Mcp-Param-Region", "us"), ("mcp-param-priority", "42.0"), ("Mcp-Param-Zone", "a")]);
    assert_eq!(deploy().check(&args, &sent), Ok(()));
    assert_eq!(deploy().check(&json!({}), &HeaderMap::new()), Ok(()));
}

#[test]
fn every_disagreement_is_refused_and_named() {
    let args = json!({"region": "us", "priority": 42});
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("Mcp-Param-Priority", "42")], "Mcp-Param-Region header is missing"),
        (&[("Mcp-Param-Region", "eu"), ("Mcp-Param-Priority", "42")], "Mcp-Param-Region header does not match"),
        (&[("Mcp-Param-Region", "us"), ("Mcp-Param-Priority", "42.5")], "Mcp-Param-Priority header does not match"),
        (&[("Mcp-Param-Region", "us"), ("Mcp-Param-Priority", "4.2e1")], "Mcp-Param-Priority header does not match"),
        (
            &[("Mcp-Param-Region", "us"), ("Mcp-Param-Region", "us"), ("Mcp-Param-Priority", "42")],
            "appears more than once",
        ),
        (
            &[("Mcp-Param-Region", "us"), ("Mcp-Param-Priority", "42"), ("Mcp-Param-Dry", "true")],
            "Mcp-Param-Dry header is present",
        ),
        (&[("Mcp-Param-Region", "=?base64?!!?="), ("Mcp-Param-Priority", "42")], "malformed base64"),
    ];
    for (sent, why) in cases {
        let refused = deploy().check(&args, &headers(sent)).expect_err(why);
        assert!(refused.contains(why), "{sent:?}: {refused}");
    }
    let object = json!({"target": {"zone": {"not": "a scalar"}}});
    assert!(deploy().check(&object, &headers(&[("Mcp-Param-Zone", "x")])).is_err());
}

#[test]
fn annotations_that_break_the_rules_are_named() {
    let bad = [
        (json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}), "string, integer and boolean"),
        (json!({"properties": {"a": {"type": "object", "x-mcp-header": "A"}}}), "string, integer and boolean"),
        (json!({"properties": {"a": {"type": "string", "x-mcp-header": "A\r\nB"}}}), "RFC 9110 token"),
        (json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}), "RFC 9110 token"),
        (json!({"properties": {"a": {"type": "string", "x-mcp-header": 7}}}), "must be a string"),
        (
            json!({"properties": {
                "a": {"type": "string", "x-mcp-header": "Id"},
                "b": {"type": "string", "x-mcp-header": "ID"}
            }}),
            "repeats",
        ),
        (json!({"items": {"type": "string", "x-mcp-header": "A"}}), "off a plain `properties` chain"),
        (json!({"type": "string", "x-mcp-header": "A"}), "off a plain `properties` chain"),
    ];
    for (schema, why) in bad {
        let refused = ParamHeaders::of_schema(&schema).expect_err(why);
        assert!(refused.contains(why), "{schema}: {refused}");
    }
    assert!(marks(json!({"properties": {"a": {"type": "string"}}, "default": {"x-mcp-header": "data, not schema"}}))
        .is_empty());
    assert!(marks(Value::Null).is_empty());
}
