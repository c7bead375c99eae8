//! Entry edits in TOML files (Codex CLI's `[mcp_servers.NAME]`), by byte range: `toml_edit`
//! parses the file and gives the spans of the entry's header, keys and sub-tables; only
//! the bytes from the header to the end of the entry's last line change. The rest of the
//! file (its line endings, a byte-order mark, comments between entries) is never
//! re-emitted, so it stays byte for byte; the original entry is kept as its own text.

use super::{line_indent, splice, EditError, EntryPath};
use crate::client::{Location, ServersAt};
use serde_json::Value;
use std::ops::Range;
use toml_edit::{Document, Item, Table};

/// Where an entry's text is.
enum Place {
    /// `name = { … }` under `[mcp_servers]`: the inline table's span.
    Inline(Range<usize>),
    /// `[mcp_servers.name]` and its keys (and sub-tables) down to the end of its last line.
    Standard { header: Range<usize>, all: Range<usize> },
}

fn parse_error(location: &Location, e: toml_edit::TomlError) -> EditError {
    crate::read::ReadError::Parse { path: location.path.clone(), format: "TOML", message: e.message().to_string() }
        .into()
}

/// The largest end offset of anything inside `table`, its sub-tables included.
fn last_end(table: &Table) -> Option<usize> {
    table
        .iter()
        .filter_map(|(_, item)| match item {
            Item::Value(v) => v.span().map(|s| s.end),
            Item::Table(t) => [t.span().map(|s| s.end), last_end(t)].into_iter().flatten().max(),
            Item::ArrayOfTables(a) => a.iter().flat_map(|t| [t.span().map(|s| s.end), last_end(t)]).flatten().max(),
            Item::None => None,
        })
        .max()
}

/// The offset just past the end of the line holding `at` (its newline included).
fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

fn place(location: &Location, text: &str, entry: &EntryPath) -> Result<Place, EditError> {
    let key = match location.servers_at {
        ServersAt::Map(k) => k,
        _ => return Err(EditError::missing(location, entry)),
    };
    let doc = Document::parse(text.to_string()).map_err(|e| parse_error(location, e))?;
    let item =
        doc.as_table().get(key).and_then(|s| s.get(&entry.name)).ok_or_else(|| EditError::missing(location, entry))?;
    let shape = |why: &str| EditError::shape(location, entry, why.to_string());
    match item {
        Item::Value(v) if v.is_inline_table() => Ok(Place::Inline(v.span().ok_or_else(|| shape("no span"))?)),
        Item::Table(t) if !t.is_implicit() && !t.is_dotted() => {
            let header = t.span().ok_or_else(|| shape("no span"))?;
            let last = last_end(t).unwrap_or(header.end).max(header.end);
            Ok(Place::Standard { all: header.start..line_end(text, last), header })
        }
        _ => Err(shape("it is not written as a table of its own")),
    }
}

fn range(p: &Place) -> Range<usize> {
    match p {
        Place::Inline(r) => r.clone(),
        Place::Standard { all, .. } => all.clone(),
    }
}

pub fn original(location: &Location, text: &str, entry: &EntryPath) -> Result<String, EditError> {
    Ok(text[range(&place(location, text, entry)?)].to_string())
}

/// `value` as TOML.
fn to_value(value: &Value) -> Option<toml_edit::Value> {
    Some(match value {
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::Array(a) => a.iter().map(to_value).collect::<Option<toml_edit::Array>>()?.into(),
        Value::Object(m) => {
            let mut inline = toml_edit::InlineTable::new();
            for (k, v) in m {
                inline.insert(k, to_value(v)?);
            }
            inline.into()
        }
        Value::Null => return None,
    })
}

/// `key = value` for each key of `value`, one per line, ending in `eol`.
fn lines(location: &Location, entry: &EntryPath, value: &Value, indent: &str, eol: &str) -> Result<String, EditError> {
    let wanted = value.as_object().ok_or_else(|| EditError::shape(location, entry, "not a table"))?;
    let mut out = String::new();
    for (k, v) in wanted {
        let v = to_value(v).ok_or_else(|| EditError::shape(location, entry, format!("`{k}` has no TOML form")))?;
        out.push_str(&format!("{indent}{} = {}{eol}", toml_edit::Key::new(k.as_str()), v.to_string().trim()));
    }
    Ok(out)
}

pub fn replace(location: &Location, text: &str, entry: &EntryPath, value: &Value) -> Result<String, EditError> {
    let rendered = match place(location, text, entry)? {
        Place::Inline(r) => {
            let v = to_value(value).ok_or_else(|| EditError::shape(location, entry, "no TOML form"))?;
            (r, v.to_string().trim().to_string())
        }
        Place::Standard { header, all } => {
            let after = &text[header.end..all.end];
            let eol = if after.contains("\r\n") { "\r\n" } else { "\n" };
            // The header line as written (a comment after it included), then the keys.
            let head_line = &text[header.start..line_end(text, header.end)];
            let head = head_line.trim_end_matches(['\r', '\n']);
            let indent = line_indent(text, header.start);
            let mut body = format!("{head}{eol}{}", lines(location, entry, value, indent, eol)?);
            // The last entry of a file without a final newline stays without one.
            if !text[..all.end].ends_with('\n') {
                body.truncate(body.len() - eol.len());
            }
            (all, body)
        }
    };
    Ok(splice(text, rendered.0, &rendered.1))
}

pub fn restore(location: &Location, text: &str, entry: &EntryPath, original: &str) -> Result<String, EditError> {
    let r = range(&place(location, text, entry)?);
    Ok(splice(text, r, original))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{locations, ClientKind};
    use crate::env::{Env, Os};
    use serde_json::json;

    fn codex() -> Location {
        let env = Env::for_home(Os::Linux, "/home/x".into(), None, None);
        locations(&env, &[]).into_iter().find(|l| l.client == ClientKind::CodexCli).unwrap()
    }

    fn round_trip(text: &str, name: &str) -> String {
        let entry = EntryPath::new(name, None);
        let original = original(&codex(), text, &entry).unwrap();
        let routed = replace(&codex(), text, &entry, &json!({"command": "c", "args": ["connect", name]})).unwrap();
        assert_eq!(restore(&codex(), &routed, &entry, &original).unwrap(), text);
        routed
    }

    #[test]
    fn only_the_entry_changes_and_comes_back_exactly() {
        let text = "\u{feff}model = \"x\"\r\n# MCP servers\r\n[mcp_servers.fs] # files\r\ncommand = \"npx\" # c\r\n\
                    args = [\"-y\",\r\n \"z\"]\r\n\r\n[mcp_servers.fs.env]\r\nA = \"1\"\r\n\r\n# figma\r\n[mcp_servers.figma]\r\nurl = \"u\"";
        let routed = round_trip(text, "fs");
        assert_eq!(
            routed,
            "\u{feff}model = \"x\"\r\n# MCP servers\r\n[mcp_servers.fs] # files\r\ncommand = \"c\"\r\nargs = [\"connect\", \"fs\"]\r\n\
             \r\n# figma\r\n[mcp_servers.figma]\r\nurl = \"u\""
        );
        let routed = round_trip(text, "figma");
        assert!(
            routed.ends_with("[mcp_servers.figma]\r\ncommand = \"c\"\r\nargs = [\"connect\", \"figma\"]"),
            "{routed:?}"
        );
    }

    #[test]
    fn an_inline_entry_is_replaced_in_place() {
        let text = "[mcp_servers]\nfs = { command = \"npx\", args = [\"x\"] } # kept\n";
        let routed = round_trip(text, "fs");
        assert_eq!(routed, "[mcp_servers]\nfs = { command = \"c\", args = [\"connect\", \"fs\"] } # kept\n");
    }
}
