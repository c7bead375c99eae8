//! What the engine is told: who calls, which server, the tool's definition, the call's
//! arguments and the time. Built by the gateway (or the CLI); read-only here.

use crate::grant::GrantBook;
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
    /// The client session, for session-long grants.
    pub session: String,
}

/// What the server said about its tool (MCP `ToolAnnotations`). Hints only: they count
/// as grounds to loosen solely for servers the configuration trusts.
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

    pub fn is_empty(&self) -> bool {
        *self == ToolHints::default()
    }
}

/// One tool as a server listed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub hints: ToolHints,
}

impl ToolDef {
    /// Reads one entry of a `tools/list` result. `None` when it has no string `name`.
    pub fn from_json(tool: &Value) -> Option<Self> {
        Some(ToolDef {
            name: tool.get("name")?.as_str()?.to_string(),
            description: tool.get("description").and_then(Value::as_str).unwrap_or_default().to_string(),
            input_schema: tool.get("inputSchema").cloned().unwrap_or(Value::Null),
            hints: ToolHints::from_annotations(tool.get("annotations")),
        })
    }

    /// The names of the top-level properties of the input schema.
    pub fn argument_names(&self) -> impl Iterator<Item = &str> {
        self.input_schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|p| p.keys())
            .map(String::as_str)
    }
}

/// How a server is started or reached: what the catalog matches and what is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOrigin {
    Command { command: String, args: Vec<String> },
    Url(String),
}

/// One configured upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The name in Countersign's config (`[servers.NAME]`).
    pub name: String,
    pub origin: ServerOrigin,
    /// Whether the configuration trusts this server's annotations.
    pub trusted: bool,
    /// A catalog entry chosen in config (`catalog = "filesystem"`), overriding detection.
    pub catalog: Option<String>,
}

impl ServerInfo {
    /// A server known only by name (the CLI explaining a rule with no config at hand).
    pub fn named(name: &str) -> Self {
        ServerInfo {
            name: name.to_string(),
            origin: ServerOrigin::Command { command: String::new(), args: Vec::new() },
            trusted: false,
            catalog: None,
        }
    }
}

/// One `tools/call` as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct CallInput<'a> {
    pub identity: &'a Identity,
    pub server: &'a ServerInfo,
    pub tool: &'a str,
    /// The tool's definition; `None` when the server never listed it (unknown: at least
    /// `write`, never read-only).
    pub def: Option<&'a ToolDef>,
    pub arguments: &'a Value,
    pub grants: Option<&'a GrantBook>,
    /// Milliseconds since the Unix epoch, supplied by the caller.
    pub now_ms: u64,
}
