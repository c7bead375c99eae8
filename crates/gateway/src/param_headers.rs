//! `Mcp-Param-*` headers (MCP 2026-07-28, SEP-2243). A tool may mark arguments of its
//! input schema with `x-mcp-header: Name`; a stateless `tools/call` of it then carries each
//! marked argument's value in an `Mcp-Param-Name` header too, so that load balancers and
//! firewalls can route on it without reading the body. This module reads which arguments
//! a tool marks ([`ParamHeaders::of_schema`]), writes the headers a call carries (the
//! gateway as a client of a 2026-07-28 server: [`ParamHeaders::mirror`]) and checks a
//! client's headers against its body (the gateway as the server its clients reach:
//! [`ParamHeaders::check`]), with the revision's rules: a marked argument that is present
//! has its header, equal to it once decoded; an absent or `null` one has none; a header is
//! never sent twice.
//!
//! Must never: let a header stand for the body (the policy reads the body; a header is
//! only compared with it or written from it), or send a header that a schema breaking
//! the annotation rules names (such a tool mirrors and checks nothing, as the SDKs do,
//! and no CR, LF or other non-token character reaches a header name).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use serde_json::Value;

/// The prefix every mirrored argument's header name starts with.
pub const PREFIX: &str = "Mcp-Param-";

/// The arguments a tool marks for mirroring, each with its header's name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParamHeaders {
    marks: Vec<Mark>,
}

#[derive(Debug, Clone, PartialEq)]
struct Mark {
    /// The chain of `properties` keys from the schema's root to the marked argument.
    path: Vec<String>,
    /// The annotation's value: the header is `Mcp-Param-<token>`.
    token: String,
    integer: bool,
}

/// Schema keywords whose value is one subschema, a list of them, or a map of them. Only
/// `properties` keeps the chain an annotation must sit on; crossing any of these leaves
/// it. Instance data (`default`, `const`, `enum`, `examples`) and `$ref` are never
/// entered, so a walk ends on any finite schema.
const ONE: &[&str] = &[
    "items",
    "contains",
    "unevaluatedItems",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
];
const LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
const MAP: &[&str] = &["patternProperties", "dependentSchemas", "$defs", "definitions"];

impl ParamHeaders {
    /// The marked arguments of a tool's `inputSchema`: none when it marks none. `Err`
    /// names the first annotation that breaks the rules (not on a plain `properties`
    /// chain, not an RFC 9110 token, not on a string, integer or boolean property, or
    /// the same name twice ignoring case).
    pub fn of_schema(schema: &Value) -> Result<Self, String> {
        let mut marks: Vec<Mark> = Vec::new();
        let mut stack: Vec<(Option<Vec<String>>, &Value)> = vec![(Some(Vec::new()), schema)];
        while let Some((path, node)) = stack.pop() {
            let Some(object) = node.as_object() else { continue };
            if let Some(annotation) = object.get("x-mcp-header") {
                let path = match &path {
                    Some(p) if !p.is_empty() => p.clone(),
                    _ => return Err("x-mcp-header sits where no argument is (off a plain `properties` chain)".into()),
                };
                let at = path.join(".");
                let Some(token) = annotation.as_str() else {
                    return Err(format!("property `{at}`: x-mcp-header must be a string"));
                };
                if token.is_empty() || !token.bytes().all(is_tchar) {
                    return Err(format!("property `{at}`: x-mcp-header {token:?} is not an RFC 9110 token"));
                }
                let integer = match object.get("type").and_then(Value::as_str) {
                    Some("integer") => true,
                    Some("string" | "boolean") => false,
                    _ => {
                        return Err(format!(
                            "property `{at}`: x-mcp-header is allowed on string, integer and boolean properties only"
                        ))
                    }
                };
                if let Some(first) = marks.iter().find(|m| m.token.eq_ignore_ascii_case(token)) {
                    return Err(format!(
                        "property `{at}`: x-mcp-header {token:?} repeats that of `{}`",
                        first.path.join(".")
                    ));
                }
                marks.push(Mark { path, token: token.to_string(), integer });
            }
            for (keyword, value) in object {
                let keyword = keyword.as_str();
                if keyword == "properties" {
                    for (name, sub) in value.as_object().into_iter().flatten() {
                        let chain = path.as_ref().map(|p| p.iter().cloned().chain([name.clone()]).collect());
                        stack.push((chain, sub));
                    }
                } else if ONE.contains(&keyword) {
                    stack.push((None, value));
                } else if LIST.contains(&keyword) {
                    stack.extend(value.as_array().into_iter().flatten().map(|sub| (None, sub)));
                } else if MAP.contains(&keyword) {
                    stack.extend(value.as_object().into_iter().flatten().map(|(_, sub)| (None, sub)));
                }
            }
        }
        Ok(ParamHeaders { marks })
    }

    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// The headers a `tools/call` with these `arguments` carries: one per marked argument
    /// that is present, not `null` and a scalar.
    pub fn mirror(&self, arguments: &Value) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::new();
        for mark in &self.marks {
            let Some(text) = value_at(arguments, &mark.path).and_then(render) else { continue };
            let name = HeaderName::from_bytes(format!("{PREFIX}{}", mark.token).as_bytes());
            let value = HeaderValue::from_str(&encode_value(&text));
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.push((name, value));
            }
        }
        headers
    }

    /// Whether a request's headers agree with its `arguments`. `Err` says which header
    /// does not, and how.
    pub fn check(&self, arguments: &Value, headers: &HeaderMap) -> Result<(), String> {
        for mark in &self.marks {
            let name = format!("{PREFIX}{}", mark.token);
            let at = mark.path.join(".");
            let mut sent = headers.get_all(name.as_str()).iter();
            let (first, again) = (sent.next(), sent.next());
            if again.is_some() {
                return Err(format!("{name} header appears more than once"));
            }
            let value = value_at(arguments, &mark.path);
            let rendered = value.and_then(render);
            let Some(header) = first else {
                match rendered {
                    Some(_) => {
                        return Err(format!(
                            "{name} header is missing but the request body's `{at}` argument is present"
                        ))
                    }
                    None => continue,
                }
            };
            let Some(rendered) = rendered else {
                return Err(format!("{name} header is present but the request body's `{at}` argument is not"));
            };
            let decoded = header.to_str().ok().and_then(crate::modern::decode_header_value);
            let Some(decoded) = decoded else {
                return Err(format!("{name} header is not a readable value (or a malformed base64 sentinel)"));
            };
            let same = match (mark.integer, value) {
                (true, Some(Value::Number(n))) => same_integer(n, &decoded).unwrap_or(decoded == rendered),
                _ => decoded == rendered,
            };
            if !same {
                return Err(format!("{name} header does not match the request body's `{at}` argument"));
            }
        }
        Ok(())
    }
}

/// A value as an HTTP field carries it: printable ASCII with no edge whitespace as it is,
/// anything else (or text that looks like the sentinel) as `=?base64?…?=`.
pub fn encode_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    match plain {
        true => value.to_string(),
        false => format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(value)),
    }
}

/// RFC 9110's `tchar`: what a header field name may hold.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn value_at<'a>(arguments: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = arguments;
    for key in path {
        node = node.as_object()?.get(key)?;
    }
    Some(node).filter(|v| !v.is_null())
}

/// A scalar as a header carries it; `None` for what has no header form (objects, arrays).
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// For an integer argument: `42` in the body matches a header of `42` or `42.0` (the
/// revision's SHOULD compare numerically), exactly, for canonical decimals only. `None`
/// when either side is not such a number, and the texts are compared instead.
fn same_integer(body: &serde_json::Number, header: &str) -> Option<bool> {
    let body: i128 = match (body.as_i64(), body.as_u64(), body.as_f64()) {
        (Some(i), _, _) => i128::from(i),
        (_, Some(u), _) => i128::from(u),
        (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i128,
        _ => return None,
    };
    let digits = header.strip_prefix('-').unwrap_or(header);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let canonical = all_digits(whole) && (fraction.is_empty() && !digits.ends_with('.') || all_digits(fraction));
    if !canonical {
        return None;
    }
    if fraction.bytes().any(|b| b != b'0') {
        return Some(false);
    }
    let magnitude: i128 = whole.parse().ok()?;
    Some(if header.starts_with('-') { -magnitude } else { magnitude } == body)
}

#[cfg(test)]
#[path = "param_headers_tests.rs"]
mod tests;
