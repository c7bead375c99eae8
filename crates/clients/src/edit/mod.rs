//! Format-preserving edits of one server entry in a client's file: read the entry's
//! original text, replace the entry with a generated one, or put original text back. Only
//! the entry's own bytes change; comments, key order, indentation and unknown keys
//! elsewhere stay exactly as written. Every edit is checked by parsing the result: if
//! anything but that entry would differ, the edit is refused and the text is returned
//! unchanged by the caller (fail closed).

mod json;
mod toml;
mod yaml;

use crate::client::{Format, Location, ServersAt};
use crate::read::parse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

/// Which server in a file: its name, and for Claude Code's `~/.claude.json`, the project
/// whose `mcpServers` hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPath {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl EntryPath {
    pub fn new(name: &str, project: Option<&str>) -> Self {
        EntryPath { name: name.to_string(), project: project.map(str::to_string) }
    }

    /// The keys from the document's root to the entry, for maps of servers.
    fn keys(&self, at: &ServersAt) -> Vec<String> {
        match (at, &self.project) {
            (ServersAt::ClaudeCodeUser, Some(p)) => {
                vec!["projects".into(), p.clone(), "mcpServers".into(), self.name.clone()]
            }
            (ServersAt::ClaudeCodeUser, None) => vec!["mcpServers".into(), self.name.clone()],
            (ServersAt::Map(k) | ServersAt::NamedList(k), _) => vec![k.to_string(), self.name.clone()],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Read(#[from] crate::read::ReadError),
    #[error("{path}: there is no server `{name}` in it")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: the server `{name}` is written in a shape Countersign cannot edit safely: {why}")]
    Shape { path: PathBuf, name: String, why: String },
    #[error("{path}: changing the server `{name}` would have changed more of the file, so it was left as it was")]
    Unverified { path: PathBuf, name: String },
}

impl EditError {
    fn shape(location: &Location, entry: &EntryPath, why: impl Into<String>) -> Self {
        EditError::Shape { path: location.path.clone(), name: entry.name.clone(), why: why.into() }
    }

    fn missing(location: &Location, entry: &EntryPath) -> Self {
        EditError::Missing { path: location.path.clone(), name: entry.name.clone() }
    }
}

/// The entry's text as written in the file.
pub fn original(location: &Location, text: &str, entry: &EntryPath) -> Result<String, EditError> {
    match location.format {
        Format::Json | Format::Jsonc => json::original(location, text, entry),
        Format::Toml => toml::original(location, text, entry),
        Format::Yaml => yaml::original(location, text, entry),
    }
}

/// `text` with the entry replaced by `value`, written in the file's own style.
pub fn replace(location: &Location, text: &str, entry: &EntryPath, value: &Value) -> Result<String, EditError> {
    let edited = match location.format {
        Format::Json | Format::Jsonc => json::replace(location, text, entry, value)?,
        Format::Toml => toml::replace(location, text, entry, value)?,
        Format::Yaml => yaml::replace(location, text, entry, value)?,
    };
    verify(location, text, &edited, entry, Some(value))?;
    Ok(edited)
}

/// `text` with the entry's original text (from [`original`]) put back in its place.
pub fn restore(location: &Location, text: &str, entry: &EntryPath, original: &str) -> Result<String, EditError> {
    let edited = match location.format {
        Format::Json | Format::Jsonc => json::restore(location, text, entry, original)?,
        Format::Toml => toml::restore(location, text, entry, original)?,
        Format::Yaml => yaml::restore(location, text, entry, original)?,
    };
    verify(location, text, &edited, entry, None)?;
    Ok(edited)
}

/// The entry's value in a parsed document.
pub fn entry_value<'a>(doc: &'a Value, at: &ServersAt, entry: &EntryPath) -> Option<&'a Value> {
    let keys = entry.keys(at);
    match at {
        ServersAt::NamedList(k) => doc
            .get(*k)?
            .as_array()?
            .iter()
            .find(|item| item.get("name").and_then(Value::as_str) == Some(entry.name.as_str())),
        _ => keys.iter().try_fold(doc, |v, k| v.get(k)),
    }
}

fn entry_value_mut<'a>(doc: &'a mut Value, at: &ServersAt, entry: &EntryPath) -> Option<&'a mut Value> {
    match at {
        ServersAt::NamedList(k) => doc
            .get_mut(*k)?
            .as_array_mut()?
            .iter_mut()
            .find(|item| item.get("name").and_then(Value::as_str) == Some(entry.name.as_str())),
        _ => entry.keys(at).iter().try_fold(doc, |v, k| v.get_mut(k)),
    }
}

/// Checks that `edited` differs from `before` in the entry alone, and, when given, that
/// the entry now reads as `value`.
fn verify(
    location: &Location,
    before: &str,
    edited: &str,
    entry: &EntryPath,
    value: Option<&Value>,
) -> Result<(), EditError> {
    let unverified = || EditError::Unverified { path: location.path.clone(), name: entry.name.clone() };
    let mut old = parse(before, location.format, &location.path)?;
    let mut new = parse(edited, location.format, &location.path).map_err(|_| unverified())?;
    let now = entry_value(&new, &location.servers_at, entry).cloned().ok_or_else(unverified)?;
    if value.is_some_and(|v| *v != now) {
        return Err(unverified());
    }
    let blank = |doc: &mut Value| {
        if let Some(slot) = entry_value_mut(doc, &location.servers_at, entry) {
            *slot = Value::Null;
        }
    };
    blank(&mut old);
    blank(&mut new);
    if old != new {
        return Err(unverified());
    }
    Ok(())
}

/// The indentation (spaces or tabs) at the start of the line holding byte `at`.
fn line_indent(text: &str, at: usize) -> &str {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[start..];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

/// Replaces `range` of `text` with `with`.
fn splice(text: &str, range: std::ops::Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}
