//! What a client's entry looks like once it runs through Countersign, in that client's own
//! syntax: the stdio shim (`/abs/path/countersign connect NAME --home DIR`) for clients
//! that only start processes, or the loopback URL with the client's token header for
//! clients that reach remote servers with headers. Keys that are not about how to reach
//! the server (`disabled`, `autoApprove`, Goose's `name` and `timeout`…) are kept in place.
//!
//! A project's own file (`.mcp.json`, `.cursor/mcp.json`… in a repository's working tree)
//! always gets the shim, whatever the client: a URL entry would carry the client's bearer
//! token, and a file in a working tree is one `git commit -a` from being published.
//!
//! The shim entry names Countersign's data folder in its arguments rather than in an
//! environment entry: arguments reach the program verbatim in every client, whereas each
//! client spells its environment differently (`env`, Goose's `envs`, Zed's older nested
//! form) and merges or trims it its own way; and a data folder inherited from elsewhere
//! cannot override it.

use crate::client::{ClientKind, Location, Scope};
use serde_json::{json, Map, Value};

/// How a client reaches Countersign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Starts `countersign connect NAME` as a stdio server.
    Shim,
    /// Posts to `http://127.0.0.1:PORT/mcp/NAME` with its own token.
    Http,
}

/// The way each client is routed: HTTP where the client sends headers to remote servers,
/// the shim elsewhere.
pub fn via(kind: ClientKind) -> Via {
    use ClientKind::*;
    match kind {
        ClaudeCode | Cursor | VsCode | Windsurf | Cline | GeminiCli | LmStudio => Via::Http,
        ClaudeDesktop | Zed | Continue | CodexCli | Goose => Via::Shim,
    }
}

/// The way one file's entries are routed: a project's own file gets the shim (its entries
/// hold no credential), a user's file the client's way ([`via`]).
pub fn via_at(location: &Location) -> Via {
    match location.scope {
        Scope::Project(_) => Via::Shim,
        Scope::User => via(location.client),
    }
}

/// Whether the client must be restarted to see a changed file (the others watch it).
pub fn restart_needed(kind: ClientKind) -> Option<&'static str> {
    use ClientKind::*;
    match kind {
        ClaudeDesktop => Some("quit Claude Desktop and open it again"),
        ClaudeCode => Some("start a new Claude Code session"),
        Windsurf => Some("press Refresh in Windsurf's MCP panel, or restart it"),
        GeminiCli => Some("restart Gemini CLI"),
        CodexCli => Some("restart Codex CLI"),
        Goose => Some("restart Goose"),
        LmStudio => Some("restart LM Studio"),
        Cursor | VsCode | Zed | Cline | Continue => None,
    }
}

/// Where the routed entry points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// `program connect server --home home`: the program's absolute path, and
    /// Countersign's data folder, where the shim finds the running gateway.
    Shim { program: String, server: String, home: String },
    /// The server's loopback URL, and the client's token for the `Authorization` header.
    Http { url: String, token: String },
}

/// Keys that say how to reach or start a server; everything else in an entry is kept.
const TRANSPORT_KEYS: &[&str] = &[
    "type",
    "transport",
    "command",
    "cmd",
    "args",
    "env",
    "envs",
    "env_keys",
    "envFile",
    "cwd",
    "url",
    "serverUrl",
    "httpUrl",
    "uri",
    "headers",
    "http_headers",
    "env_http_headers",
    "bearer_token_env_var",
    "requestOptions",
];

/// The transport part of a routed entry, in the client's syntax.
fn transport(kind: ClientKind, delivery: &Delivery) -> Map<String, Value> {
    use ClientKind::*;
    let value = match delivery {
        Delivery::Shim { program, server, home } => {
            let args = json!(["connect", server, "--home", home]);
            match kind {
                Goose => json!({ "type": "stdio", "cmd": program, "args": args }),
                VsCode => json!({ "type": "stdio", "command": program, "args": args }),
                _ => json!({ "command": program, "args": args }),
            }
        }
        Delivery::Http { url, token } => {
            let headers = json!({ "Authorization": format!("Bearer {token}") });
            match kind {
                ClaudeCode | VsCode => json!({ "type": "http", "url": url, "headers": headers }),
                Windsurf => json!({ "serverUrl": url, "headers": headers }),
                GeminiCli => json!({ "httpUrl": url, "headers": headers }),
                Cline => json!({ "type": "streamableHttp", "url": url, "headers": headers }),
                Continue => json!({ "type": "streamable-http", "url": url, "requestOptions": { "headers": headers } }),
                Goose => json!({ "type": "streamable_http", "uri": url, "headers": headers }),
                _ => json!({ "url": url, "headers": headers }),
            }
        }
    };
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `original` with its transport replaced by `delivery`'s, the new keys where the first
/// transport key was and every other key where it was.
pub fn routed_entry(kind: ClientKind, original: &Value, delivery: &Delivery) -> Value {
    let mut new = transport(kind, delivery);
    let mut out = Map::new();
    for (k, v) in original.as_object().into_iter().flatten() {
        if TRANSPORT_KEYS.contains(&k.as_str()) {
            out.append(&mut new);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out.append(&mut new);
    Value::Object(out)
}

/// A server name Countersign accepts, made from a client's: letters, digits, `-` and `_`
/// (never `__`), starting with a letter or digit.
pub fn countersign_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' };
        let doubled = matches!((out.chars().last(), c), (Some('-'), '-') | (Some('_'), '_'));
        if !doubled {
            out.push(c);
        }
    }
    let trimmed = out.trim_matches(['-', '_']);
    if trimmed.is_empty() {
        "server".into()
    } else {
        trimmed.chars().take(64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_server_names() {
        assert_eq!(countersign_name("Remote docs"), "Remote-docs");
        assert_eq!(countersign_name("a__b"), "a_b");
        assert_eq!(countersign_name("@scope/pkg"), "scope-pkg");
        assert_eq!(countersign_name("---"), "server");
    }

    #[test]
    fn other_keys_stay_in_place() {
        let original = json!({ "cmd": "npx", "args": ["x"], "enabled": true, "name": "github", "type": "stdio" });
        let d = Delivery::Shim { program: "/bin/countersign".into(), server: "github".into(), home: "/data".into() };
        let routed = routed_entry(ClientKind::Goose, &original, &d);
        let keys: Vec<&str> = routed.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["type", "cmd", "args", "enabled", "name"]);
        assert_eq!(routed["args"], json!(["connect", "github", "--home", "/data"]));
    }
}
