//! The curated catalog (`crates/policy/catalog/*.toml`, compiled in): what popular
//! servers' tools really do, where their own annotations are too coarse. A server is
//! recognised by its package or binary name in the command line, or by its URL, unless
//! the config names a catalog entry outright. The catalog never loosens what managed or
//! user policy set; it only replaces annotations and heuristics.

use crate::class::{ClassSource, Classification, ToolClass};
use crate::input::{ServerInfo, ServerOrigin};
use crate::similar::SimilarRule;
use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const SOURCES: &[(&str, &str)] = &[
    ("browser.toml", include_str!("../catalog/browser.toml")),
    ("everything.toml", include_str!("../catalog/everything.toml")),
    ("fetch.toml", include_str!("../catalog/fetch.toml")),
    ("filesystem.toml", include_str!("../catalog/filesystem.toml")),
    ("git.toml", include_str!("../catalog/git.toml")),
    ("github.toml", include_str!("../catalog/github.toml")),
    ("memory.toml", include_str!("../catalog/memory.toml")),
    ("postgres.toml", include_str!("../catalog/postgres.toml")),
    ("slack.toml", include_str!("../catalog/slack.toml")),
    ("time.toml", include_str!("../catalog/time.toml")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    title: String,
    #[serde(default, rename = "match")]
    matches: Vec<String>,
    #[serde(default)]
    urls: Vec<String>,
    label: Option<String>,
    tools: BTreeMap<String, RawTool>,
    /// What "Allow similar" covers for this server.
    similar: Option<SimilarRule>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTool {
    Class(ToolClass),
    Full {
        class: ToolClass,
        label: Option<String>,
        reason: Option<String>,
        #[serde(default)]
        redact: Vec<String>,
    },
}

/// One server family in the catalog.
#[derive(Debug)]
pub struct CatalogEntry {
    pub id: String,
    pub title: String,
    matches: Vec<String>,
    urls: Vec<GlobMatcher>,
    tools: BTreeMap<String, Classification>,
    similar: Option<SimilarRule>,
}

impl CatalogEntry {
    /// What the catalog says of `tool`, if it knows it.
    pub fn tool(&self, tool: &str) -> Option<&Classification> {
        self.tools.get(tool)
    }

    /// What "Allow similar" covers for this server, if the entry says.
    pub fn similar(&self) -> Option<&SimilarRule> {
        self.similar.as_ref()
    }

    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    fn matches(&self, origin: &ServerOrigin) -> bool {
        match origin {
            ServerOrigin::Url(url) => self.urls.iter().any(|g| g.is_match(url)),
            ServerOrigin::Command { command, args } => std::iter::once(command)
                .chain(args)
                .any(|token| self.matches.iter().any(|name| token_names_package(token, name))),
        }
    }
}

/// Whether a command-line token is the package or binary `name`: the name itself, a
/// versioned spec (`name@1.2.3`), or a path through it (`.../name`, `.../name/dist/x.js`).
fn token_names_package(token: &str, name: &str) -> bool {
    if token == name {
        return true;
    }
    if token.strip_prefix(name).is_some_and(|rest| rest.starts_with('@') || rest.starts_with(':')) {
        return true;
    }
    // `name` as a whole path segment: preceded by a separator, followed by the end, a
    // separator or a version.
    let bytes = token.as_bytes();
    token.match_indices(name).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + name.len()).copied();
        matches!(before, Some(b'/' | b'\\')) && matches!(after, None | Some(b'/' | b'\\' | b'@'))
    })
}

/// The whole catalog.
#[derive(Debug)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
}

/// A catalog file that does not parse (a build of Countersign with a broken catalog
/// fails its tests; at run time the entry is skipped and the rest still work).
#[derive(Debug, thiserror::Error)]
#[error("catalog/{file}: {message}")]
pub struct CatalogError {
    pub file: String,
    pub message: String,
}

impl Catalog {
    /// The catalog compiled into this build.
    pub fn builtin() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| Catalog::parse_all(SOURCES).0)
    }

    /// Parses catalog files; entries that do not parse are left out and reported.
    pub fn parse_all(sources: &[(&str, &str)]) -> (Catalog, Vec<CatalogError>) {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (file, text) in sources {
            match parse_entry(text) {
                Ok(entry) => entries.push(entry),
                Err(message) => errors.push(CatalogError { file: file.to_string(), message }),
            }
        }
        (Catalog { entries }, errors)
    }

    /// The errors in the compiled-in catalog (none, in a tested build).
    pub fn builtin_errors() -> Vec<CatalogError> {
        Catalog::parse_all(SOURCES).1
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The entry for a configured server: the one its config names, else the first whose
    /// package, binary or URL it runs.
    pub fn entry_for(&self, server: &ServerInfo) -> Option<&CatalogEntry> {
        match &server.catalog {
            Some(id) => self.get(id),
            None => self.entries.iter().find(|e| e.matches(&server.origin)),
        }
    }
}

fn parse_entry(text: &str) -> Result<CatalogEntry, String> {
    let raw: RawEntry = toml::from_str(text).map_err(|e| e.to_string())?;
    let urls = raw
        .urls
        .iter()
        .map(|u| Glob::new(u).map(|g| g.compile_matcher()).map_err(|e| format!("urls: {e}")))
        .collect::<Result<_, _>>()?;
    let tools = raw
        .tools
        .into_iter()
        .map(|(name, tool)| {
            let (class, label, reason, redact) = match tool {
                RawTool::Class(class) => (class, None, None, Vec::new()),
                RawTool::Full { class, label, reason, redact } => (class, label, reason, redact),
            };
            let reason = reason.unwrap_or_else(|| format!("the {} catalog lists it as {class}", raw.title));
            let mut c = Classification::new(class, ClassSource::Catalog, reason);
            c.label = label.or_else(|| raw.label.clone());
            c.redact = redact;
            (name, c)
        })
        .collect();
    Ok(CatalogEntry { id: raw.id, title: raw.title, matches: raw.matches, urls, tools, similar: raw.similar })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(command: &str, args: &[&str]) -> ServerInfo {
        ServerInfo {
            name: "x".into(),
            origin: ServerOrigin::Command {
                command: command.into(),
                args: args.iter().map(|s| s.to_string()).collect(),
            },
            trusted: false,
            catalog: None,
            scope: None,
        }
    }

    #[test]
    fn every_catalog_file_parses() {
        assert!(Catalog::builtin_errors().is_empty(), "{:?}", Catalog::builtin_errors());
        assert_eq!(Catalog::builtin().entries().len(), SOURCES.len());
    }

    #[test]
    fn servers_are_recognised_by_package_binary_or_url() {
        let c = Catalog::builtin();
        let id = |s: &ServerInfo| c.entry_for(s).map(|e| e.id.as_str());
        assert_eq!(
            id(&stdio("npx", &["-y", "@modelcontextprotocol/server-filesystem@2026.8.31", "/tmp"])),
            Some("filesystem")
        );
        assert_eq!(id(&stdio("/x/node_modules/.bin/mcp-server-filesystem", &["/tmp"])), Some("filesystem"));
        assert_eq!(id(&stdio("uvx", &["mcp-server-git", "--repository", "."])), Some("git"));
        assert_eq!(id(&stdio("docker", &["run", "-i", "ghcr.io/github/github-mcp-server"])), Some("github"));
        assert_eq!(id(&stdio("python", &["my-mcp-server-gitlab"])), None);
        let remote =
            ServerInfo { origin: ServerOrigin::Url("https://api.githubcopilot.com/mcp/".into()), ..stdio("", &[]) };
        assert_eq!(id(&remote), Some("github"));
        let named = ServerInfo { catalog: Some("time".into()), ..stdio("my-clock", &[]) };
        assert_eq!(id(&named), Some("time"));
    }

    #[test]
    fn the_catalog_corrects_coarse_annotations() {
        let fs = Catalog::builtin().get("filesystem").unwrap();
        assert_eq!(fs.tool("write_file").unwrap().class, ToolClass::Write);
        assert_eq!(fs.tool("move_file").unwrap().class, ToolClass::Destructive);
        assert_eq!(fs.tool("read_text_file").unwrap().label.as_deref(), Some("files"));
    }
}
