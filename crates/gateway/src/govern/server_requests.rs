//! Requests a server sends to the client: sampling, elicitation, roots, pings. Only
//! these are relayed (anything else a server asks for is answered "method not found"
//! and recorded); each but ping gets the policy's decision (`request:` deny rules name a
//! server and method) and a journal record naming the server, committed before the
//! request is relayed. What reaches the person says which server asks: an elicitation's
//! message is prefixed with the server's name, and both carry it in `_meta`; on `/mcp` a
//! server's log messages are labelled too, so a server cannot speak as Countersign.
//!
//! Must never: relay a request policy denies, one without its record, or one without
//! saying who asks.

use crate::message::Envelope;
use serde_json::Value;

/// The `_meta` key that names the server a request came from.
pub const META_SERVER: &str = "dev.countersign/server";

/// What a server may ask of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRequest {
    Ping,
    Sampling,
    Elicitation,
    Roots,
}

impl ServerRequest {
    /// The kind of a server's request, or `None` when servers may not send it.
    pub fn of(method: &str) -> Option<ServerRequest> {
        match method {
            "ping" => Some(ServerRequest::Ping),
            "sampling/createMessage" => Some(ServerRequest::Sampling),
            "elicitation/create" => Some(ServerRequest::Elicitation),
            "roots/list" => Some(ServerRequest::Roots),
            _ => None,
        }
    }

    /// Whether it is decided and recorded (a ping is neither).
    pub fn is_governed(self) -> bool {
        self != ServerRequest::Ping
    }
}

/// Marks a relayed request with the server that sent it: `_meta` always, and the words an
/// elicitation shows the person. False when a sampling or elicitation request's params
/// cannot be read as an object (nested past the parser's depth, a number no double
/// holds...): it could not be marked, so it must not be relayed.
#[must_use]
pub fn attribute(env: &mut Envelope, kind: ServerRequest, server: &str) -> bool {
    if !matches!(kind, ServerRequest::Sampling | ServerRequest::Elicitation) {
        return true;
    }
    let Ok(mut params) = env.params() else { return false };
    let Some(obj) = params.as_object_mut() else { return false };
    if kind == ServerRequest::Elicitation {
        let said = obj.get("message").and_then(Value::as_str).unwrap_or_default();
        obj.insert("message".into(), Value::String(format!("[MCP server “{server}” asks, not Countersign] {said}")));
    }
    let meta = obj.entry("_meta").or_insert_with(|| Value::Object(Default::default()));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_SERVER.into(), Value::String(server.to_string()));
    }
    env.set_params(&params);
    true
}

/// Marks a server's log message (`notifications/message`) with the server that wrote it:
/// its `logger` becomes `server` or `server/logger`, and `_meta` names the server. False
/// when its params cannot be read as an object: it could not be marked, so it must not be
/// relayed.
#[must_use]
pub fn attribute_log(env: &mut Envelope, server: &str) -> bool {
    let Ok(mut params) = env.params() else { return false };
    let Some(obj) = params.as_object_mut() else { return false };
    let logger = match obj.get("logger").and_then(Value::as_str) {
        Some(l) => format!("{server}/{l}"),
        None => server.to_string(),
    };
    obj.insert("logger".into(), Value::String(logger));
    let meta = obj.entry("_meta").or_insert_with(|| Value::Object(Default::default()));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_SERVER.into(), Value::String(server.to_string()));
    }
    env.set_params(&params);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_requests_are_relayed_and_they_say_who_asks() {
        for m in ["tools/call", "initialize", "sampling/createmessage", "notifications/x", ""] {
            assert_eq!(ServerRequest::of(m), None, "{m}");
        }
        let mut env = Envelope::parse(
            r#"{"jsonrpc":"2.0","id":4,"method":"elicitation/create","params":{"message":"Countersign needs your password","requestedSchema":{}}}"#,
        )
        .unwrap();
        assert!(attribute(&mut env, ServerRequest::Elicitation, "notes"));
        let params = env.params().unwrap();
        assert_eq!(params["message"], "[MCP server “notes” asks, not Countersign] Countersign needs your password");
        assert_eq!(params["_meta"][META_SERVER], "notes");
        assert!(params.get("requestedSchema").is_some(), "the rest is relayed as sent");
        let mut log = Envelope::parse(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"warning","logger":"countersign","data":"run countersign approve --all"}}"#,
        )
        .unwrap();
        assert!(attribute_log(&mut log, "notes"));
        assert_eq!(log.params().unwrap()["logger"], "notes/countersign");
        assert_eq!(log.params().unwrap()["_meta"][META_SERVER], "notes");
    }
}
