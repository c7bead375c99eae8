//! JSON-RPC messages as the relay sees them: the top-level members, each kept as the
//! exact raw JSON the peer sent, so fields the gateway does not interpret pass through
//! untouched in both directions. Only `id`, `method` and a few params are ever read.
//!
//! [`check`] is the gate for untrusted client input: duplicate keys at any depth, nesting
//! deeper than the limit, lone surrogates and numbers out of range are refused before
//! anything acts on the message. This module never panics on input.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// JSON-RPC error codes used by the gateway.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The upstream failed (exited, timed out, misbehaved).
    pub const UPSTREAM_ERROR: i64 = -32000;
    /// An `Mcp-Method` / `Mcp-Name` header disagrees with the body (2026-07-28).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP's "resource not found", with the URI as `data.uri`: invalid params since
    /// SEP-2164 (earlier revisions used −32002).
    pub const RESOURCE_NOT_FOUND: i64 = INVALID_PARAMS;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub code: i64,
    pub message: String,
}

impl ParseError {
    fn parse(message: impl Into<String>) -> Self {
        ParseError { code: code::PARSE_ERROR, message: message.into() }
    }
    fn invalid(message: impl Into<String>) -> Self {
        ParseError { code: code::INVALID_REQUEST, message: message.into() }
    }
}

/// What kind of JSON-RPC message an envelope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// One JSON-RPC message with its members in their original order and form.
#[derive(Debug, Clone)]
pub struct Envelope {
    members: Vec<(String, Box<RawValue>)>,
    method: Option<String>,
    kind: Kind,
}

impl Envelope {
    /// Parses one message. Refuses batches, duplicate top-level members and anything that
    /// is not a JSON-RPC 2.0 request, notification or response.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') {
            return Err(ParseError::invalid("JSON-RPC batches are not supported (removed in MCP 2025-06-18)"));
        }
        let TopLevel(members) =
            serde_json::from_str(text).map_err(|e| ParseError::parse(format!("invalid JSON: {e}")))?;
        let find = |k: &str| members.iter().find(|(key, _)| key == k).map(|(_, v)| v.get());
        if find("jsonrpc") != Some("\"2.0\"") {
            return Err(ParseError::invalid("`jsonrpc` must be \"2.0\""));
        }
        let method = match find("method") {
            Some(raw) => Some(
                serde_json::from_str::<String>(raw).map_err(|_| ParseError::invalid("`method` must be a string"))?,
            ),
            None => None,
        };
        let id = find("id");
        if let Some(id) = id {
            let ok = id.starts_with('"') || id.starts_with('-') || id.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(ParseError::invalid("`id` must be a string or a number"));
            }
        }
        let kind = match (&method, id) {
            (Some(_), Some(_)) => Kind::Request,
            (Some(_), None) => Kind::Notification,
            (None, Some(_)) if find("result").is_some() != find("error").is_some() => Kind::Response,
            (None, Some(_)) => return Err(ParseError::invalid("a response needs exactly one of `result` and `error`")),
            (None, None) => return Err(ParseError::invalid("a message needs `method` or `id`")),
        };
        Ok(Envelope { members, method, kind })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }

    pub fn id(&self) -> Option<&RawValue> {
        self.get("id")
    }

    /// The id as an unsigned integer, when it is one (the gateway's own upstream ids are).
    pub fn id_u64(&self) -> Option<u64> {
        self.id().and_then(|raw| raw.get().parse().ok())
    }

    /// `params` parsed, or `Null` when absent.
    pub fn params(&self) -> Result<serde_json::Value, ParseError> {
        match self.get("params") {
            None => Ok(serde_json::Value::Null),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|e| ParseError::invalid(format!("bad params: {e}"))),
        }
    }

    /// Replaces (or adds) a member, keeping its position.
    pub fn set(&mut self, key: &str, value: Box<RawValue>) {
        match self.members.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.members.push((key.to_string(), value)),
        }
    }

    pub fn set_id_u64(&mut self, id: u64) {
        self.set("id", raw(&id.to_string()));
    }

    pub fn set_params(&mut self, params: &serde_json::Value) {
        self.set("params", raw(&params.to_string()));
    }

    /// The message as JSON text: the members in order, values byte-for-byte as received.
    pub fn to_json(&self) -> String {
        let len = self.members.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + 2;
        let mut out = String::with_capacity(len);
        out.push('{');
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::String(k.clone()).to_string());
            out.push(':');
            out.push_str(v.get());
        }
        out.push('}');
        out
    }
}

/// Raw JSON from text the caller knows is valid.
pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null"))
}

/// A JSON-RPC error response. `id` is the requester's id as raw JSON, or `None` for null.
pub fn error_response(id: Option<&RawValue>, code: i64, message: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":{}}}}}"#,
        id.map_or("null", RawValue::get),
        serde_json::Value::String(message.to_string())
    )
}

/// A JSON-RPC error response with `data` (for example the `uri` of an unknown resource).
pub fn error_with_data(id: Option<&RawValue>, code: i64, message: &str, data: &serde_json::Value) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":{},"data":{data}}}}}"#,
        id.map_or("null", RawValue::get),
        serde_json::Value::String(message.to_string())
    )
}

/// A successful `tools/call` response that reports a refusal as a tool error, which MCP
/// clients show to the model and the user (rather than as a protocol failure).
pub fn tool_error_result(id: Option<&RawValue>, text: &str) -> String {
    let result = serde_json::json!({"content": [{"type": "text", "text": text}], "isError": true});
    format!(r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#, id.map_or("null", RawValue::get), result)
}

/// A success response whose result is `{ "KEY": <raw JSON> }`, with `raw` written as it
/// is (already serialised once, not again per answer).
pub fn result_with_raw_member(id: Option<&RawValue>, key: &str, raw: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{},"result":{{"{key}":{raw}}}}}"#, id.map_or("null", RawValue::get))
}

/// A success response with `result`.
pub fn result_response(id: Option<&RawValue>, result: &serde_json::Value) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#, id.map_or("null", RawValue::get), result)
}

// ---- the top-level reader: members in order, duplicates refused ----------------------

struct TopLevel(Vec<(String, Box<RawValue>)>);

impl<'de> de::Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC message object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
                let mut members: Vec<(String, Box<RawValue>)> = Vec::with_capacity(4);
                while let Some(key) = map.next_key::<String>()? {
                    if members.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate member `{key}`")));
                    }
                    let value: Box<RawValue> = map.next_value()?;
                    members.push((key, value));
                }
                Ok(TopLevel(members))
            }
        }
        d.deserialize_map(V)
    }
}

// ---- the deep check for untrusted input -----------------------------------------------

/// Checks a whole client message: well-formed JSON, no duplicate keys at any depth,
/// nesting at most `max_depth`, no lone surrogates, no numbers out of range.
pub fn check(text: &str, max_depth: usize) -> Result<(), ParseError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Check { depth: 0, max: max_depth }.deserialize(&mut de).and_then(|()| de.end());
    result.map_err(|e| {
        let msg = e.to_string();
        if msg.contains("nested deeper") || msg.contains("recursion limit") || msg.contains("duplicate key") {
            ParseError::invalid(msg)
        } else {
            ParseError::parse(format!("invalid JSON: {msg}"))
        }
    })
}

#[derive(Clone, Copy)]
struct Check {
    depth: usize,
    max: usize,
}

impl Check {
    fn deeper<E: de::Error>(self) -> Result<Check, E> {
        if self.depth + 1 > self.max {
            return Err(E::custom(format!("message nested deeper than {} levels", self.max)));
        }
        Ok(Check { depth: self.depth + 1, max: self.max })
    }
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Integers that fit 64 bits arrive as visit_i64/u64 and are exact. A whole number
        // beyond that (and beyond 2^53, where doubles skip integers) would be shown to a
        // person and judged by the policy rounded, while the server reads every digit.
        if !v.is_finite() {
            Err(E::custom("number out of range"))
        } else if v.fract() == 0.0 && v.abs() >= 9_007_199_254_740_992.0 {
            Err(E::custom("number too large to be shown and judged exactly (integers must fit 64 bits)"))
        } else {
            Ok(())
        }
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            seen.push(key);
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_members_and_values_survive_byte_for_byte() {
        let text = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","_meta":{"vendor/k":[1.50,{"z":1}]}},"x-extra":true}"#;
        let mut env = Envelope::parse(text).unwrap();
        assert_eq!(env.kind(), Kind::Request);
        assert_eq!(env.to_json(), text);
        env.set_id_u64(99);
        assert_eq!(env.to_json(), text.replace(r#""id":7"#, r#""id":99"#));
    }

    #[test]
    fn kinds_are_told_apart() {
        assert_eq!(Envelope::parse(r#"{"jsonrpc":"2.0","method":"n"}"#).unwrap().kind(), Kind::Notification);
        assert_eq!(Envelope::parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap().kind(), Kind::Response);
        assert!(Envelope::parse(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#).is_err());
        assert!(Envelope::parse(r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#).is_err());
        assert!(Envelope::parse(r#"{"jsonrpc":"2.0","id":{},"method":"m"}"#).is_err());
        assert!(Envelope::parse(r#"[{"jsonrpc":"2.0","method":"n"}]"#).is_err());
    }

    #[test]
    fn sec_07_duplicate_keys_are_refused_at_every_depth() {
        assert!(Envelope::parse(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}"#).is_err());
        let nested = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"w","arguments":{"path":"a","path":"b"}}}"#;
        let e = check(nested, 64).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        assert!(e.message.contains("duplicate key `path`"), "{e}");
    }

    #[test]
    fn sec_07_depth_surrogates_and_huge_numbers_are_refused() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(check(&deep, 64).unwrap_err().message.contains("nested deeper"));
        assert!(check(&format!("{}{}", "[".repeat(10), "]".repeat(10)), 64).is_ok());
        assert!(check(r#"{"a":"\ud800"}"#, 64).is_err(), "lone surrogate");
        assert!(check(r#"{"a":1e400}"#, 64).is_err(), "out-of-range number");
        assert!(check(r#"{"a":100000000000000000000000000001}"#, 64).is_err(), "shown rounded, read exactly");
        assert!(check(r#"{"c":1.5e300}"#, 64).is_err(), "a whole number beyond 2^53");
        assert!(check(r#"{"a":18446744073709551615,"b":-9223372036854775808,"c":0.1}"#, 64).is_ok());
        assert!(check(r#"{"a":1} trailing"#, 64).is_err());
        assert!(check(r#"{"a":"\ud83d\ude00","b":-1.5e10}"#, 64).is_ok());
    }

    #[test]
    fn error_bodies_are_valid_json_rpc() {
        let id = raw("\"abc\"");
        let e: serde_json::Value = serde_json::from_str(&error_response(Some(&id), -32600, "bad \"x\"")).unwrap();
        assert_eq!(e["id"], "abc");
        assert_eq!(e["error"]["message"], "bad \"x\"");
        let t: serde_json::Value = serde_json::from_str(&tool_error_result(None, "no")).unwrap();
        assert_eq!(t["result"]["isError"], true);
    }
}
