//! Which MCP servers may run at all (`[policy.servers]`): whether every server an AI
//! client uses must run through Countersign, and the list of servers allowed, written
//! like Claude Code's managed `allowedMcpServers` (`serverName`, `serverCommand`,
//! `serverUrl`), each a glob. Layers only tighten: routing is required if any layer
//! requires it, and a server must be on every layer's list that has one. Pure logic.

use crate::error::PolicyError;
use crate::input::ServerOrigin;
use crate::layer::Layer;
use crate::rule::RuleError;
use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

/// `[policy.servers]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerRules {
    /// MCP servers configured in an AI client around Countersign (shadow servers) raise
    /// an alert in the audit trail and a warning in the tray.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_routing: bool,
    /// When present, only servers that match an entry may run through Countersign or be
    /// routed to it; others are blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<ServerMatcher>>,
}

/// One allowed-server entry. Every field it sets must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerMatcher {
    /// A glob over the server's name (`github`, `corp-*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// A glob over the command line that starts a stdio server, its words joined by
    /// spaces (`npx -y @modelcontextprotocol/*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_command: Option<String>,
    /// A glob over a remote server's URL (`https://*.example.com/*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
}

struct Compiled {
    name: Option<GlobMatcher>,
    command: Option<GlobMatcher>,
    url: Option<GlobMatcher>,
}

/// One layer's allowed list, compiled.
pub struct AllowedServers {
    layer: Layer,
    entries: Vec<Compiled>,
}

impl std::fmt::Debug for AllowedServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AllowedServers({:?}, {} entries)", self.layer, self.entries.len())
    }
}

const LIST: &str = "servers.allowed";

fn glob(layer: Layer, index: usize, field: &str, pattern: &Option<String>) -> Result<Option<GlobMatcher>, PolicyError> {
    let Some(p) = pattern else { return Ok(None) };
    GlobBuilder::new(p).literal_separator(false).build().map(|g| Some(g.compile_matcher())).map_err(|e| PolicyError {
        layer,
        list: LIST,
        index,
        error: RuleError::BadGlob { rule: format!("{field} = {p}"), message: e.kind().to_string() },
    })
}

impl AllowedServers {
    pub fn compile(layer: Layer, list: &[ServerMatcher]) -> Result<Self, PolicyError> {
        let entries = list
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if m.server_name.is_none() && m.server_command.is_none() && m.server_url.is_none() {
                    return Err(PolicyError { layer, list: LIST, index: i, error: RuleError::EmptyMatcher });
                }
                Ok(Compiled {
                    name: glob(layer, i, "serverName", &m.server_name)?,
                    command: glob(layer, i, "serverCommand", &m.server_command)?,
                    url: glob(layer, i, "serverUrl", &m.server_url)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowedServers { layer, entries })
    }

    pub fn layer(&self) -> Layer {
        self.layer
    }

    /// Whether a server of this name, started or reached this way, is on the list.
    pub fn allows(&self, name: &str, origin: &ServerOrigin) -> bool {
        let (command, url) = match origin {
            ServerOrigin::Command { command, args } => (
                Some(
                    std::iter::once(command.as_str())
                        .chain(args.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                None,
            ),
            ServerOrigin::Url(u) => (None, Some(u.as_str())),
        };
        self.entries.iter().any(|e| {
            e.name.as_ref().is_none_or(|g| g.is_match(name))
                && e.command.as_ref().is_none_or(|g| command.as_deref().is_some_and(|c| g.is_match(c)))
                && e.url.as_ref().is_none_or(|g| url.is_some_and(|u| g.is_match(u)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(toml_text: &str) -> AllowedServers {
        let rules: ServerRules = toml::from_str(toml_text).unwrap();
        AllowedServers::compile(Layer::Managed, &rules.allowed.unwrap()).unwrap()
    }

    fn cmd(c: &str) -> ServerOrigin {
        let mut words = c.split(' ').map(str::to_string);
        ServerOrigin::Command { command: words.next().unwrap(), args: words.collect() }
    }

    #[test]
    fn each_matcher_kind_allows_what_it_names_and_nothing_else() {
        let allowed = list(
            r#"allowed = [
                { serverName = "github" },
                { serverCommand = "npx -y @modelcontextprotocol/*" },
                { serverUrl = "https://*.example.com/*" },
                { serverName = "corp-*", serverUrl = "https://corp.test/*" },
            ]"#,
        );
        assert!(allowed.allows("github", &cmd("anything")));
        assert!(allowed.allows("fs", &cmd("npx -y @modelcontextprotocol/server-filesystem /tmp")));
        assert!(!allowed.allows("fs", &cmd("npx -y evil-package")));
        assert!(allowed.allows("docs", &ServerOrigin::Url("https://mcp.example.com/mcp".into())));
        assert!(!allowed.allows("docs", &ServerOrigin::Url("https://example.com.evil.test/mcp".into())));
        assert!(allowed.allows("corp-a", &ServerOrigin::Url("https://corp.test/mcp".into())));
        assert!(!allowed.allows("other", &ServerOrigin::Url("https://corp.test/mcp".into())), "both fields must match");
        assert!(!allowed.allows("corp-a", &cmd("corp")), "a URL matcher never matches a command");
    }

    #[test]
    fn an_empty_entry_or_a_bad_glob_is_an_error_naming_it() {
        let empty = AllowedServers::compile(Layer::Managed, &[ServerMatcher::default()]).unwrap_err().to_string();
        assert!(empty.contains("servers.allowed[0]") && empty.contains("serverName"), "{empty}");
        let bad = ServerMatcher { server_url: Some("https://[".into()), ..Default::default() };
        let err = AllowedServers::compile(Layer::Managed, &[bad]).unwrap_err().to_string();
        assert!(err.contains("servers.allowed[0]") && err.contains("serverUrl = https://["), "{err}");
        assert!(toml::from_str::<ServerRules>("allowed = [{ serverNmae = \"x\" }]").is_err());
    }
}
