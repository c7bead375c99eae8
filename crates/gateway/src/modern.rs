//! MCP 2026-07-28 requests on the HTTP face: which requests are stateless, and the checks
//! a stateless request passes before anything else looks at it (the spec's order, as the
//! reference SDKs apply it): `params._meta` carries the protocol version and the client's
//! capabilities (else −32602); `MCP-Protocol-Version` equals `_meta`'s version, `Mcp-Method`
//! equals the method and `Mcp-Name` the tool, prompt or resource named in the body, none
//! of them sent twice (else −32020); the version is one this gateway speaks (else −32022
//! with the versions it does). Methods the revision removed are −32601. On this wire a
//! JSON-RPC error's code also picks the HTTP status ([`status_of`]).
//!
//! The W3C trace id a request carries in `_meta.traceparent` is read by
//! [`crate::trace_context`], for stateless and session requests alike.
//!
//! Must never: let a header stand for the body (the policy reads the body; a header is
//! only compared with it), or accept a request whose headers and body disagree.

use crate::message::{self, code, Envelope};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde_json::{json, Value};

/// The stateless revisions this gateway speaks.
pub const VERSIONS: &[&str] = &["2026-07-28"];
/// The revisions that open a session with `initialize`.
pub const HANDSHAKE_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// `_meta` keys of the per-request envelope.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

/// The capability a request needs and the client did not declare (2026-07-28).
pub const MISSING_CAPABILITY: i64 = -32021;
/// The requested revision is not one this gateway speaks (2026-07-28).
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// Methods 2026-07-28 removed: a stateless request for one is −32601 (404).
pub const REMOVED: &[&str] =
    &["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];

/// Whether a request is a stateless one: its `MCP-Protocol-Version` names a revision other
/// than the handshake ones (an unknown one too: it is told which versions are spoken).
pub fn is_stateless(headers: &HeaderMap) -> bool {
    match headers.get("mcp-protocol-version").map(|v| v.to_str().unwrap_or("\u{fffd}")) {
        Some(v) => !HANDSHAKE_VERSIONS.contains(&v),
        None => false,
    }
}

/// A stateless request refused before it reached anything: the JSON-RPC error to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl Refusal {
    fn new(code: i64, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into(), data: None }
    }

    /// The error response, with the request's id.
    pub fn response(&self, id: Option<&serde_json::value::RawValue>) -> String {
        match &self.data {
            Some(data) => message::error_with_data(id, self.code, &self.message, data),
            None => message::error_response(id, self.code, &self.message),
        }
    }
}

/// What a stateless request said about itself, once its envelope passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub version: String,
    pub capabilities: Value,
    pub client_info: Option<Value>,
    /// The W3C trace id of the request's `_meta.traceparent`, when valid.
    pub trace_id: Option<String>,
}

/// The body member `Mcp-Name` mirrors, for the methods that carry one.
fn named_member(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Runs the stateless request checks, in the spec's order.
pub fn check(headers: &HeaderMap, env: &Envelope) -> Result<Request, Refusal> {
    let params = env.params().unwrap_or(Value::Null);
    let meta = params.get("_meta").and_then(Value::as_object).ok_or_else(|| {
        Refusal::new(
            code::INVALID_PARAMS,
            format!("params._meta must be an object carrying `{META_VERSION}` and `{META_CAPABILITIES}`"),
        )
    })?;
    let missing: Vec<&str> = [META_VERSION, META_CAPABILITIES].into_iter().filter(|k| !meta.contains_key(*k)).collect();
    if !missing.is_empty() {
        let msg = format!("params._meta is missing the required key(s): {}", missing.join(", "));
        return Err(Refusal::new(code::INVALID_PARAMS, msg));
    }
    for name in ["mcp-protocol-version", "mcp-method", "mcp-name"] {
        if headers.get_all(name).iter().count() > 1 {
            return Err(Refusal::new(code::HEADER_MISMATCH, format!("{name} header appears more than once")));
        }
    }
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let version = &meta[META_VERSION];
    if header("mcp-protocol-version").as_deref() != version.as_str() || version.is_null() {
        return Err(Refusal::new(
            code::HEADER_MISMATCH,
            "MCP-Protocol-Version header does not match the request's _meta protocol version",
        ));
    }
    let method = env.method().unwrap_or_default();
    if header("mcp-method").as_deref() != Some(method) {
        return Err(Refusal::new(code::HEADER_MISMATCH, "Mcp-Method header does not match the request body's method"));
    }
    if let Some(member) = named_member(method) {
        if let Some(body) = params.get(member).filter(|v| !v.is_null()) {
            let sent = header("mcp-name").and_then(|h| decode_header_value(&h));
            if sent.as_deref() != body.as_str() {
                return Err(Refusal::new(
                    code::HEADER_MISMATCH,
                    format!("Mcp-Name header does not match the request body's `{member}`"),
                ));
            }
        }
    }
    let Some(version) = version.as_str() else {
        return Err(Refusal::new(code::INVALID_PARAMS, "the protocol version in _meta must be a string"));
    };
    if !VERSIONS.contains(&version) {
        return Err(Refusal {
            code: UNSUPPORTED_VERSION,
            message: "Unsupported protocol version".into(),
            data: Some(json!({ "supported": VERSIONS, "requested": version })),
        });
    }
    Ok(Request {
        version: version.to_string(),
        capabilities: meta[META_CAPABILITIES].clone(),
        client_info: meta.get(META_CLIENT_INFO).cloned(),
        trace_id: crate::trace_context::trace_id(&params),
    })
}

/// A header value as sent, or the text inside its `=?base64?...?=` wrapping (canonical
/// base64 of UTF-8 only; anything else is `None`, which matches no body value).
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?=")) else {
        return Some(value.to_string());
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(inner).ok()?;
    if engine.encode(&bytes) != inner {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// The HTTP status of a stateless answer that is a JSON-RPC error with `code`.
pub fn status_of(code: i64) -> StatusCode {
    match code {
        code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        code::PARSE_ERROR
        | code::INVALID_REQUEST
        | code::INVALID_PARAMS
        | code::HEADER_MISMATCH
        | MISSING_CAPABILITY
        | UNSUPPORTED_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// The status for one answer's text: its error code's, else 200.
pub fn status_of_answer(text: &str) -> StatusCode {
    let code = Envelope::parse(text).ok().and_then(|env| {
        let error = env.get("error")?;
        serde_json::from_str::<Value>(error.get()).ok()?.get("code")?.as_i64()
    });
    code.map_or(StatusCode::OK, status_of)
}

/// The `_meta` envelope of a request the gateway makes of a stateless upstream itself:
/// this revision, no client capabilities, the gateway as the client.
pub fn own_meta() -> Value {
    json!({
        META_VERSION: VERSIONS[0],
        META_CAPABILITIES: {},
        META_CLIENT_INFO: { "name": "countersign", "version": env!("CARGO_PKG_VERSION") },
    })
}

#[cfg(test)]
#[path = "modern_tests.rs"]
mod tests;
