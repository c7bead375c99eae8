//! What the upstream link accepts. A client's governed request (a tool call, a read, a
//! listing...) goes upstream only as [`Outbound::request`], which takes a [`Permit`];
//! a permit is made only from the audit journal's [`Committed`] proof, which only a
//! committed record produces. So "no record, no forwarding" is checked by the compiler.
//! Everything else that may go upstream is named here too: the client's notifications
//! from the allow-list and its answers to the server's requests (checked against the
//! method table), and the gateway's own small set of requests.
//!
//! Must never: build an [`Outbound`] for a governed request without a permit.

use super::methods::{self, Listing, Operation};
use crate::message::{Envelope, Kind};
use countersign_audit::Committed;
use serde_json::Value;

/// Leave to forward one governed request: the proof that its decision record is in the
/// journal. Not `Clone`: one record releases one request.
#[derive(Debug)]
pub struct Permit {
    record_id: uuid::Uuid,
}

impl From<Committed> for Permit {
    fn from(committed: Committed) -> Self {
        Permit { record_id: committed.record_id() }
    }
}

impl Permit {
    /// The record the request's outcome belongs to.
    pub fn record_id(&self) -> uuid::Uuid {
        self.record_id
    }
}

/// A request the gateway makes of its own: the handshake it runs for a client and the
/// listings it reads to know the tools. Nothing that acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnRequest {
    Initialize,
    List(Listing),
    SetLogLevel,
}

impl OwnRequest {
    pub fn method(self) -> &'static str {
        match self {
            OwnRequest::Initialize => "initialize",
            OwnRequest::List(l) => l.method(),
            OwnRequest::SetLogLevel => "logging/setLevel",
        }
    }
}

/// One message on its way to an upstream server.
#[derive(Debug)]
pub struct Outbound {
    text: String,
}

impl Outbound {
    /// A client's governed request, released by its committed record.
    pub fn request(permit: Permit, env: &Envelope) -> Outbound {
        let _spent = permit;
        Outbound { text: env.to_json() }
    }

    /// A client message that needs no decision: an answer to the server's own request, a
    /// notification from the allow-list, or a lifecycle request (`initialize`,
    /// `logging/setLevel`, and a stateless client's `server/discover` to a server that
    /// speaks 2026-07-28). A governed request or anything the table does not name is
    /// refused here as a last line, even if a caller got it this far.
    pub fn plain(env: &Envelope) -> Result<Outbound, String> {
        let kind = env.kind();
        if kind != Kind::Response {
            let method = env.method().unwrap_or_default();
            match methods::lookup(method, kind) {
                Ok(op) if op.is_governed() => return Err(format!("`{method}` needs a decision record first")),
                Ok(Operation::Initialize | Operation::SetLogLevel | Operation::Discover) if kind == Kind::Request => {}
                Ok(_) if kind == Kind::Notification => {}
                Ok(_) => return Err(format!("`{method}` is answered by the gateway, not forwarded")),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(Outbound { text: env.to_json() })
    }

    /// A request the gateway makes itself, with its own id.
    pub fn own_request(kind: OwnRequest, id: u64, params: &Value) -> Outbound {
        let text = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": kind.method(), "params": params});
        Outbound { text: text.to_string() }
    }

    /// `notifications/initialized` after the gateway's own handshake.
    pub fn initialized() -> Outbound {
        Outbound { text: r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string() }
    }

    /// Tells the server to stop working on one of the gateway's upstream ids.
    pub fn cancel(upstream_id: u64, reason: &str) -> Outbound {
        let text = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": upstream_id, "reason": reason}});
        Outbound { text: text.to_string() }
    }

    /// An error answer to a request the server sent (one policy refused to relay).
    pub fn refusal(upstream_id: &serde_json::value::RawValue, code: i64, message: &str) -> Outbound {
        Outbound { text: crate::message::error_response(Some(upstream_id), code, message) }
    }

    /// The text to write (for the upstream connection only).
    pub(crate) fn into_text(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> Envelope {
        Envelope::parse(text).unwrap()
    }

    #[test]
    fn governed_requests_cannot_go_plain() {
        for (method, _, op) in methods::all() {
            let text = if op.is_governed() {
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{}}}}"#)
            } else {
                continue;
            };
            assert!(Outbound::plain(&env(&text)).is_err(), "{method}");
        }
        for text in [
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"TOOLS/CALL","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
        ] {
            assert!(Outbound::plain(&env(text)).is_err(), "{text}");
        }
        for text in [
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"roots":[]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
        ] {
            assert_eq!(Outbound::plain(&env(text)).unwrap().into_text(), env(text).to_json());
        }
    }
}
