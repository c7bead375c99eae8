//! The AI clients Countersign knows, and where each keeps its MCP servers: user-level and
//! project-level files, their format, and the key that holds the servers.

use crate::env::{Env, Os};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    VsCode,
    Windsurf,
    Zed,
    Cline,
    Continue,
    GeminiCli,
    CodexCli,
    Goose,
    LmStudio,
}

impl ClientKind {
    pub const ALL: [ClientKind; 12] = [
        ClientKind::ClaudeDesktop,
        ClientKind::ClaudeCode,
        ClientKind::Cursor,
        ClientKind::VsCode,
        ClientKind::Windsurf,
        ClientKind::Zed,
        ClientKind::Cline,
        ClientKind::Continue,
        ClientKind::GeminiCli,
        ClientKind::CodexCli,
        ClientKind::Goose,
        ClientKind::LmStudio,
    ];

    /// The client's short name on the command line and in JSON (`claude-desktop`).
    pub fn slug(self) -> &'static str {
        match self {
            ClientKind::ClaudeDesktop => "claude-desktop",
            ClientKind::ClaudeCode => "claude-code",
            ClientKind::Cursor => "cursor",
            ClientKind::VsCode => "vs-code",
            ClientKind::Windsurf => "windsurf",
            ClientKind::Zed => "zed",
            ClientKind::Cline => "cline",
            ClientKind::Continue => "continue",
            ClientKind::GeminiCli => "gemini-cli",
            ClientKind::CodexCli => "codex-cli",
            ClientKind::Goose => "goose",
            ClientKind::LmStudio => "lm-studio",
        }
    }

    /// The client a short name stands for.
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.slug() == slug)
    }

    /// The client's name as people know it.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::ClaudeDesktop => "Claude Desktop",
            ClientKind::ClaudeCode => "Claude Code",
            ClientKind::Cursor => "Cursor",
            ClientKind::VsCode => "VS Code",
            ClientKind::Windsurf => "Windsurf",
            ClientKind::Zed => "Zed",
            ClientKind::Cline => "Cline",
            ClientKind::Continue => "Continue",
            ClientKind::GeminiCli => "Gemini CLI",
            ClientKind::CodexCli => "Codex CLI",
            ClientKind::Goose => "Goose",
            ClientKind::LmStudio => "LM Studio",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    /// JSON with comments and trailing commas (VS Code, Zed).
    Jsonc,
    Toml,
    Yaml,
}

/// Where in the document the servers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServersAt {
    /// A map of name → server under this top-level key.
    Map(&'static str),
    /// Claude Code's `~/.claude.json`: `mcpServers`, and `projects.<dir>.mcpServers`.
    ClaudeCodeUser,
    /// Continue: a list of servers (each with a `name`) under `mcpServers`.
    NamedList(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "scope", content = "project", rename_all = "lowercase")]
pub enum Scope {
    User,
    Project(PathBuf),
}

/// One configuration file a client reads.
#[derive(Debug, Clone)]
pub struct Location {
    pub client: ClientKind,
    pub path: PathBuf,
    pub format: Format,
    pub scope: Scope,
    pub servers_at: ServersAt,
}

fn app_folder(env: &Env, name: &str) -> PathBuf {
    env.app_data.join(name)
}

/// Every file the known clients read, for this user and these project folders.
pub fn locations(env: &Env, projects: &[PathBuf]) -> Vec<Location> {
    use ClientKind::*;
    let user =
        |client, path: PathBuf, format, at| Location { client, path, format, scope: Scope::User, servers_at: at };
    let vscode_user = match env.os {
        Os::Linux => env.config.join("Code").join("User"),
        _ => app_folder(env, "Code").join("User"),
    };
    let zed = match env.os {
        Os::Windows => app_folder(env, "Zed"),
        _ => env.config.join("zed"),
    };
    let goose = match env.os {
        Os::Windows => app_folder(env, "Block").join("goose").join("config"),
        _ => env.config.join("goose"),
    };
    let mut out = vec![
        user(
            ClaudeDesktop,
            app_folder(env, "Claude").join("claude_desktop_config.json"),
            Format::Json,
            ServersAt::Map("mcpServers"),
        ),
        user(ClaudeCode, env.home.join(".claude.json"), Format::Json, ServersAt::ClaudeCodeUser),
        user(Cursor, env.home.join(".cursor").join("mcp.json"), Format::Json, ServersAt::Map("mcpServers")),
        user(VsCode, vscode_user.join("mcp.json"), Format::Jsonc, ServersAt::Map("servers")),
        user(
            Windsurf,
            env.home.join(".codeium").join("windsurf").join("mcp_config.json"),
            Format::Json,
            ServersAt::Map("mcpServers"),
        ),
        user(Zed, zed.join("settings.json"), Format::Jsonc, ServersAt::Map("context_servers")),
        user(
            Cline,
            vscode_user
                .join("globalStorage")
                .join("saoudrizwan.claude-dev")
                .join("settings")
                .join("cline_mcp_settings.json"),
            Format::Json,
            ServersAt::Map("mcpServers"),
        ),
        user(
            Continue,
            env.home.join(".continue").join("config.yaml"),
            Format::Yaml,
            ServersAt::NamedList("mcpServers"),
        ),
        user(GeminiCli, env.home.join(".gemini").join("settings.json"), Format::Json, ServersAt::Map("mcpServers")),
        user(CodexCli, env.home.join(".codex").join("config.toml"), Format::Toml, ServersAt::Map("mcp_servers")),
        user(Goose, goose.join("config.yaml"), Format::Yaml, ServersAt::Map("extensions")),
        user(LmStudio, env.home.join(".lmstudio").join("mcp.json"), Format::Json, ServersAt::Map("mcpServers")),
    ];
    for project in projects {
        let at = |client, rel: &[&str], format, servers_at| Location {
            client,
            path: rel.iter().fold(project.to_path_buf(), |p, part| p.join(part)),
            format,
            scope: Scope::Project(project.clone()),
            servers_at,
        };
        out.push(at(ClaudeCode, &[".mcp.json"], Format::Json, ServersAt::Map("mcpServers")));
        out.push(at(Cursor, &[".cursor", "mcp.json"], Format::Json, ServersAt::Map("mcpServers")));
        out.push(at(VsCode, &[".vscode", "mcp.json"], Format::Jsonc, ServersAt::Map("servers")));
        out.push(at(GeminiCli, &[".gemini", "settings.json"], Format::Json, ServersAt::Map("mcpServers")));
        out.push(at(Zed, &[".zed", "settings.json"], Format::Jsonc, ServersAt::Map("context_servers")));
    }
    out
}

/// The path relative to `home`, for display (`~/.cursor/mcp.json`).
pub fn shown(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rel) => format!("~/{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}
