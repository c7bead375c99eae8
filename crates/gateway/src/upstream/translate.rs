//! A session client (2025-11-25 and earlier) reaching a server that speaks only MCP
//! 2026-07-28, which refuses `initialize`: the gateway answers the handshake from the
//! server's `server/discover` and sends each of the session's requests statelessly, with
//! the per-request `_meta` envelope the revision asks for. This module holds the
//! translation itself, as pure functions over messages; `http.rs` decides when a link
//! translates and carries the messages.
//!
//! What the older revision has and 2026-07-28 removed is answered here: `ping` (answered
//! by the gateway), `logging/setLevel` (the level rides in every later request's
//! `_meta`), resource subscriptions (refused, saying why). An answer the older client
//! could not act on, `input_required` (the server asking the client for input in the
//! middle of a call), becomes an error that says so; it is never handed on as a result.
//! List-changed notifications need a listen stream this translation does not open, so
//! the capabilities the client is told of do not claim them.
//!
//! Must never: claim a capability it does not carry, or hand an older client a result it
//! would mistake for the call's answer.

use crate::message::{self, code, Envelope};
use crate::modern;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// What a translating link does with one message from the session.
#[derive(Debug, PartialEq)]
pub enum Outgoing {
    /// Sent to the server statelessly: the message, rewritten.
    Send(String),
    /// Not sent: this is its answer, from the gateway.
    Answer(String),
    /// Not sent, and nothing answers it (a notification with no counterpart).
    Drop,
}

/// The answer to the session's `initialize` (`request`), from the server's
/// `server/discover` result (`discovered`): the client's own revision when it is one the
/// gateway speaks in sessions, the server's capabilities less what is not carried.
pub fn initialize_answer(request: &Envelope, discovered: &Value) -> String {
    let asked =
        request.params().ok().and_then(|p| p.get("protocolVersion").and_then(Value::as_str).map(str::to_string));
    let version = asked
        .filter(|v| modern::HANDSHAKE_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| modern::HANDSHAKE_VERSIONS[modern::HANDSHAKE_VERSIONS.len() - 1].to_string());
    let mut capabilities = discovered.get("capabilities").cloned().unwrap_or_else(|| json!({}));
    if let Some(all) = capabilities.as_object_mut() {
        for (_, capability) in all.iter_mut() {
            if let Some(one) = capability.as_object_mut() {
                one.remove("listChanged");
                one.remove("subscribe");
            }
        }
    }
    let server_info = discovered
        .pointer(&format!("/_meta/{}", modern::META_SERVER_INFO.replace('/', "~1")))
        .cloned()
        .unwrap_or_else(|| json!({"name": "unknown", "version": "unknown"}));
    let mut result = json!({"protocolVersion": version, "capabilities": capabilities, "serverInfo": server_info});
    if let Some(text) = discovered.get("instructions") {
        result["instructions"] = text.clone();
    }
    let id = request.id().map(RawValue::get).unwrap_or("null");
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

/// What becomes of one message from the session (`text`, parsed as `env`). `level` is
/// the log level the client last set, kept by the caller and updated here.
pub fn outgoing(server: &str, env: &Envelope, text: &str, level: &mut Option<Value>) -> Outgoing {
    let id = env.id();
    match env.method() {
        Some("ping") if id.is_some() => return Outgoing::Answer(message::result_response(id, &json!({}))),
        Some("logging/setLevel") if id.is_some() => {
            *level = env.params().ok().and_then(|p| p.get("level").cloned());
            return Outgoing::Answer(message::result_response(id, &json!({})));
        }
        Some(method @ ("resources/subscribe" | "resources/unsubscribe")) if id.is_some() => {
            let text = format!(
                "`{method}`: {server} speaks only MCP 2026-07-28, which has no resource subscriptions; read the \
                 resource again instead"
            );
            return Outgoing::Answer(message::error_response(id, code::METHOD_NOT_FOUND, &text));
        }
        // The handshake's end has no counterpart on this revision.
        Some("notifications/initialized") => return Outgoing::Drop,
        _ => {}
    }
    if id.is_none() || env.method().is_none() {
        // Notifications (a cancellation among them) and answers go on as they are: the
        // link acts on a cancellation and drops the rest.
        return Outgoing::Send(text.to_string());
    }
    let Ok(mut message) = serde_json::from_str::<Value>(text) else { return Outgoing::Send(text.to_string()) };
    let params = message.as_object_mut().map(|m| m.entry("params").or_insert_with(|| json!({})));
    let Some(params) = params.and_then(Value::as_object_mut) else { return Outgoing::Send(text.to_string()) };
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let meta: &mut Map<String, Value> = meta.as_object_mut().expect("made an object above");
    if let Value::Object(own) = modern::own_meta() {
        meta.extend(own);
    }
    if let Some(level) = level {
        meta.insert(modern::META_LOG_LEVEL.to_string(), level.clone());
    }
    Outgoing::Send(message.to_string())
}

/// An answer from the server as the session client gets it: as it came when its result is
/// complete (`resultType` absent or `"complete"`). One that asks for input
/// (`resultType: "input_required"`), which an older client cannot give through a session
/// here, becomes an error for the same id that says so; so does any other `resultType`
/// (an extension's, or a spelling the older client would take for the call's answer) and
/// a result the gateway cannot read (nested past its parser's depth, a number no double
/// holds), which could hide either.
pub fn incoming(server: &str, text: String) -> String {
    let Ok(env) = Envelope::parse(&text) else { return text };
    let Some(raw) = env.get("result") else { return text };
    let why = match serde_json::from_str::<Value>(raw.get()) {
        Ok(result) => match result.get("resultType") {
            None => return text,
            Some(kind) if kind == "complete" => return text,
            Some(kind) if kind == "input_required" => format!(
                "{server} asked for input in the middle of this request (MCP 2026-07-28 `input_required`); a client \
                 on an older revision cannot be asked through the gateway: connect with a 2026-07-28 client to use it"
            ),
            Some(kind) => format!(
                "{server} answered with a result of type {} (MCP 2026-07-28), which a client on an older revision \
                 cannot read: connect with a 2026-07-28 client to use it",
                crate::govern::methods::shorten(&kind.to_string())
            ),
        },
        Err(_) => format!("{server} sent an answer Countersign cannot read; it was not relayed"),
    };
    message::error_response(env.id(), code::UPSTREAM_ERROR, &why)
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
