//! What the engine is told about one call. Built by the gateway; read-only here.

use crate::grant::Grant;
use serde_json::Value;

/// Who is calling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub os_user: String,
    pub device: String,
    /// The name of the loopback client token the request carried.
    pub client_token: String,
    /// `clientInfo.name` from the client's `initialize`, if it sent one.
    pub client_name: Option<String>,
}

/// What the server said about its tool (MCP `ToolAnnotations`). Hints only: they count
/// as grounds to allow solely for servers the configuration trusts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolHints {
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

impl ToolHints {
    /// Reads the `annotations` object of an MCP `Tool` definition. Unknown keys are ignored;
    /// a value of the wrong type counts as absent.
    pub fn from_annotations(annotations: Option<&Value>) -> Self {
        let get = |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_bool);
        ToolHints {
            read_only: get("readOnlyHint"),
            destructive: get("destructiveHint"),
            idempotent: get("idempotentHint"),
            open_world: get("openWorldHint"),
        }
    }
}

/// One `tools/call` as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct CallInput<'a> {
    pub identity: &'a Identity,
    pub server: &'a str,
    pub tool: &'a str,
    /// `None` when the server never listed the tool: treated as unknown, never as read-only.
    pub hints: Option<&'a ToolHints>,
    /// Whether the configuration trusts this server's annotations.
    pub server_trusted: bool,
    pub arguments: &'a Value,
    pub grants: &'a [Grant],
    /// Milliseconds since the Unix epoch, supplied by the caller.
    pub now_ms: u64,
}
