//! Entry edits in YAML files (Goose's `extensions` map, Continue's `mcpServers` list), by
//! lines: an entry is the block of lines from its key (or its `- ` item) to the next line
//! indented as far or less. Only block-style documents with the servers under a top-level
//! key are edited; a file indented with tabs is refused, and anything the line view gets
//! wrong (flow style, anchors shared with other entries) fails the caller's check that
//! the parsed result differs in this entry alone, so it is refused, never guessed at.

use super::{splice, EditError, EntryPath};
use crate::client::{Location, ServersAt};
use serde_json::Value;
use std::ops::Range;

struct Line<'a> {
    start: usize,
    end: usize,
    text: &'a str,
}

impl Line<'_> {
    fn indent(&self) -> usize {
        self.text.len() - self.text.trim_start_matches(' ').len()
    }

    /// Blank lines and comments say nothing about structure.
    fn is_filler(&self) -> bool {
        let t = self.text.trim();
        t.is_empty() || t.starts_with('#')
    }
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in text.split_inclusive('\n') {
        out.push(Line { start, end: start + piece.len(), text: piece.trim_end_matches(['\n', '\r']) });
        start += piece.len();
    }
    out
}

/// Where an entry is, and how it is laid out.
struct Found {
    range: Range<usize>,
    /// The entry's own indentation (its key, or its `- `).
    indent: usize,
    /// The key line as written, for a map entry (keeps its quoting).
    key: Option<String>,
    /// The step of indentation inside the entry.
    step: usize,
}

fn find(location: &Location, text: &str, entry: &EntryPath) -> Result<Found, EditError> {
    if text.contains('\t') {
        return Err(EditError::shape(location, entry, "the file is indented with tabs"));
    }
    let (top, list) = match location.servers_at {
        ServersAt::Map(k) => (k, false),
        ServersAt::NamedList(k) => (k, true),
        ServersAt::ClaudeCodeUser => return Err(EditError::missing(location, entry)),
    };
    let all = lines(text);
    let head = all
        .iter()
        .position(|l| l.indent() == 0 && l.text.split('#').next().unwrap_or("").trim_end() == format!("{top}:"))
        .ok_or_else(|| EditError::missing(location, entry))?;
    let block_end =
        all[head + 1..].iter().position(|l| !l.is_filler() && l.indent() == 0).map_or(all.len(), |i| head + 1 + i);
    let block = &all[head + 1..block_end];
    let child =
        block.iter().find(|l| !l.is_filler()).map(Line::indent).ok_or_else(|| EditError::missing(location, entry))?;
    // Starts of the block's entries, at the child indentation.
    let starts: Vec<usize> =
        block.iter().enumerate().filter(|(_, l)| !l.is_filler() && l.indent() == child).map(|(i, _)| i).collect();
    for (n, &first) in starts.iter().enumerate() {
        let mut last = starts.get(n + 1).map_or(block.len(), |&next| next) - 1;
        while last > first && block[last].is_filler() {
            last -= 1;
        }
        let range = block[first].start..block[last].end;
        let own = &text[range.clone()];
        let step = block[first + 1..=last]
            .iter()
            .find(|l| !l.is_filler())
            .map_or(2, |l| l.indent().saturating_sub(child))
            .max(1);
        let is_it = if list {
            list_item_name(own, child).as_deref() == Some(entry.name.as_str())
        } else {
            map_key(own, child).as_deref() == Some(entry.name.as_str())
        };
        if is_it {
            let key = (!list).then(|| block[first].text[child..].to_string());
            return Ok(Found { range, indent: child, key, step });
        }
    }
    Err(EditError::missing(location, entry))
}

fn dedent(block: &str, by: usize) -> String {
    block
        .split_inclusive('\n')
        .map(|l| l.get(by.min(l.len() - l.trim_start_matches(' ').len())..).unwrap_or(""))
        .collect()
}

/// The key of a map entry block (`github:` → `github`), read by the YAML parser itself.
fn map_key(block: &str, indent: usize) -> Option<String> {
    let parsed: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&dedent(block, indent)).ok()?;
    let (key, _) = parsed.into_iter().next()?;
    key.as_str().map(str::to_string)
}

/// The `name` of a list item block (`- name: SQLite` …).
fn list_item_name(block: &str, indent: usize) -> Option<String> {
    let parsed: Vec<serde_json::Value> = serde_yaml_ng::from_str(&dedent(block, indent)).ok()?;
    parsed.first()?.get("name")?.as_str().map(str::to_string)
}

pub fn original(location: &Location, text: &str, entry: &EntryPath) -> Result<String, EditError> {
    let found = find(location, text, entry)?;
    Ok(text[found.range].to_string())
}

pub fn replace(location: &Location, text: &str, entry: &EntryPath, value: &Value) -> Result<String, EditError> {
    let found = find(location, text, entry)?;
    let body = serde_yaml_ng::to_string(value).map_err(|e| EditError::shape(location, entry, e.to_string()))?;
    let pad = " ".repeat(found.indent);
    let rendered = match &found.key {
        Some(key_line) => {
            let inner = " ".repeat(found.indent + found.step);
            let lines: Vec<String> = body.lines().map(|l| format!("{inner}{l}")).collect();
            format!("{pad}{}\n{}", key_line.trim_end(), lines.join("\n"))
        }
        None => {
            let inner = " ".repeat(found.indent + 2);
            let lines: Vec<String> = body
                .lines()
                .enumerate()
                .map(|(i, l)| if i == 0 { format!("{pad}- {l}") } else { format!("{inner}{l}") })
                .collect();
            lines.join("\n")
        }
    };
    let was = &text[found.range.clone()];
    // Lines end as the entry's did (a file written on Windows keeps CRLF).
    let eol = if was.contains("\r\n") { "\r\n" } else { "\n" };
    let mut rendered = rendered.replace('\n', eol);
    if was.ends_with('\n') {
        rendered.push_str(eol);
    }
    Ok(splice(text, found.range, &rendered))
}

pub fn restore(location: &Location, text: &str, entry: &EntryPath, original: &str) -> Result<String, EditError> {
    let found = find(location, text, entry)?;
    let mut with = original.to_string();
    if text[found.range.clone()].ends_with('\n') && !with.ends_with('\n') {
        with.push('\n');
    }
    Ok(splice(text, found.range, &with))
}
