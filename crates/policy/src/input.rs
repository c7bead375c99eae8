//! What the engine is told: who calls, which server, the tool's definition, the call's
//! arguments and the time. Built by the gateway (or the CLI); read-only here.

use crate::grant::{GrantBook, GrantCall};
use serde_json::Value;

/// Who is calling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub os_user: String,
    pub device: String,
    /// The name of the loopback client token the request carried: who the client is.
    pub client_token: String,
    /// `clientInfo.name` from the client's `initialize`, if it sent one. A claim, kept for
    /// the record and shown as "says it is …"; no rule ever matches it.
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
    /// When the server belongs to one project's own client entries (`project = DIR` in
    /// config): the one client token that reaches it. `None`: every client's.
    pub scope: Option<ServerScope>,
}

/// A server added from a project's folder serves that project's entries only: other
/// clients neither see it on `/mcp` nor start it through `/mcp/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerScope {
    /// The project folder, as config names it (shown in refusals).
    pub project: String,
    /// The name of the client token that project's entries connect with.
    pub client_token: String,
}

impl ServerScope {
    /// Whether the client holding the token named `client_token` may reach the server.
    pub fn admits(&self, client_token: &str) -> bool {
        self.client_token == client_token
    }
}

impl ServerInfo {
    /// A server known only by name (the CLI explaining a rule with no config at hand).
    pub fn named(name: &str) -> Self {
        ServerInfo {
            name: name.to_string(),
            origin: ServerOrigin::Command { command: String::new(), args: Vec::new() },
            trusted: false,
            catalog: None,
            scope: None,
        }
    }

    /// Whether the client holding the token named `client_token` may reach this server at
    /// all (see [`ServerScope`]).
    pub fn serves(&self, client_token: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.admits(client_token))
    }
}

/// Where a tool stands with the gateway beyond its definition, as the gateway's pins
/// and the server's listings say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Standing<'a> {
    /// Listed by the server, and not blocked by its pin.
    #[default]
    Listed,
    /// The server never listed a tool of this name: nobody reviewed what it does.
    Unlisted,
    /// Blocked until someone accepts it: `rule` is `pin` (its definition or the server's
    /// command changed since approved) or `quarantine` (its text hides instructions).
    Blocked { rule: &'a str, why: &'a str },
}

/// What the gateway knows that no rule can override: the kill switch and the tool's
/// standing. The engine checks it before any rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gate<'a> {
    /// The person paused all AI tool access.
    pub paused: bool,
    pub standing: Standing<'a>,
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
    /// The arguments as the client sent them (what is hashed, shown and approved).
    pub arguments: &'a Value,
    /// The arguments as the server will read them (paths resolved against its roots,
    /// symlinks followed, Unicode normalised), for argument conditions; `None`: the same
    /// as `arguments`. A value the caller could not resolve is `null` there: restrictive
    /// conditions count it as a match, permissive ones as a miss.
    pub resolved: Option<&'a Value>,
    pub grants: Option<&'a GrantBook>,
    pub gate: Gate<'a>,
    /// Milliseconds since the Unix epoch, supplied by the caller.
    pub now_ms: u64,
}

impl CallInput<'_> {
    /// The arguments argument conditions are matched against.
    pub fn condition_arguments(&self) -> &Value {
        self.resolved.unwrap_or(self.arguments)
    }

    /// The call as a grant is matched against it.
    pub fn grant_call(&self) -> GrantCall<'_> {
        self.grant_call_as(None)
    }

    /// The call as a grant is matched against it, the tool's class known.
    pub fn grant_call_as(&self, class: Option<crate::class::ToolClass>) -> GrantCall<'_> {
        GrantCall {
            class,
            client_token: &self.identity.client_token,
            session: &self.identity.session,
            server: &self.server.name,
            tool: self.tool,
            arguments: self.arguments,
            condition_arguments: self.condition_arguments(),
            now_ms: self.now_ms,
        }
    }
}

/// Something other than a tool call that reaches a server: what the engine decides for
/// resources, prompts, completions, listings and the server's own requests to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// `resources/read` of a URI.
    ReadResource { uri: &'a str },
    /// `resources/subscribe` or `resources/unsubscribe` of a URI.
    Subscribe { uri: &'a str },
    /// `prompts/get` of a prompt.
    GetPrompt { name: &'a str },
    /// `completion/complete`.
    Complete,
    /// `tasks/get`, `tasks/result`, `tasks/list`, `tasks/cancel`: a task an earlier
    /// (decided) call started.
    Task { method: &'a str },
    /// A listing (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`).
    List { method: &'a str },
    /// A request the server sends to the client (`sampling/createMessage`,
    /// `elicitation/create`, `roots/list`).
    ServerRequest { method: &'a str },
}

impl Access<'_> {
    /// The MCP method it stands for, or the method's family.
    pub fn method(&self) -> &str {
        match self {
            Access::ReadResource { .. } => "resources/read",
            Access::Subscribe { .. } => "resources/subscribe",
            Access::GetPrompt { .. } => "prompts/get",
            Access::Complete => "completion/complete",
            Access::List { method } | Access::ServerRequest { method } | Access::Task { method } => method,
        }
    }
}

/// One non-tool operation as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct AccessInput<'a> {
    pub identity: &'a Identity,
    pub server: &'a ServerInfo,
    pub access: Access<'a>,
    pub paused: bool,
}
