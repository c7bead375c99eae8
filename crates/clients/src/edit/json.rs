//! Entry edits in JSON and JSON-with-comments files, by byte range: the parser gives the
//! span of the entry's value and only those bytes are replaced. A generated entry follows
//! the original's layout: on one line when the original was, otherwise indented like its
//! surroundings.

use super::{line_indent, splice, EditError, EntryPath};
use crate::client::Location;
use jsonc_parser::ast::{Object, Value as Ast};
use jsonc_parser::common::Ranged;
use serde_json::Value;
use std::ops::Range;

fn value_range(location: &Location, text: &str, entry: &EntryPath) -> Result<Range<usize>, EditError> {
    let options = jsonc_parser::ParseOptions::default();
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &options).map_err(|e| {
        crate::read::ReadError::Parse { path: location.path.clone(), format: "JSON", message: e.to_string() }
    })?;
    let root = parsed.value.as_ref().and_then(Ast::as_object).ok_or_else(|| EditError::missing(location, entry))?;
    let keys = entry.keys(&location.servers_at);
    let mut object: &Object = root;
    for (i, key) in keys.iter().enumerate() {
        let prop = object.get(key).ok_or_else(|| EditError::missing(location, entry))?;
        if i + 1 == keys.len() {
            let range = prop.value.range();
            return Ok(range.start..range.end);
        }
        object = prop.value.as_object().ok_or_else(|| EditError::missing(location, entry))?;
    }
    Err(EditError::missing(location, entry))
}

pub fn original(location: &Location, text: &str, entry: &EntryPath) -> Result<String, EditError> {
    let range = value_range(location, text, entry)?;
    Ok(text[range].to_string())
}

pub fn replace(location: &Location, text: &str, entry: &EntryPath, value: &Value) -> Result<String, EditError> {
    let range = value_range(location, text, entry)?;
    let was = &text[range.clone()];
    let rendered = if was.contains('\n') {
        let indent = line_indent(text, range.start);
        let unit = indent_unit(text);
        // Lines end as the entry's did (a file written on Windows keeps CRLF).
        let eol = if was.contains("\r\n") { "\r\n" } else { "\n" };
        multi_line(value, indent, &unit).replace('\n', eol)
    } else {
        one_line(value)
    };
    Ok(splice(text, range, &rendered))
}

pub fn restore(location: &Location, text: &str, entry: &EntryPath, original: &str) -> Result<String, EditError> {
    let range = value_range(location, text, entry)?;
    Ok(splice(text, range, original))
}

/// The file's indentation step: the first indented line's leading whitespace.
fn indent_unit(text: &str) -> String {
    text.lines()
        .map(|l| &l[..l.len() - l.trim_start_matches([' ', '\t']).len()])
        .find(|i| !i.is_empty())
        .unwrap_or("  ")
        .to_string()
}

/// `{ "a": 1, "b": ["x", "y"] }`, as people write entries on one line.
fn one_line(value: &Value) -> String {
    match value {
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(m) => {
            let parts: Vec<String> =
                m.iter().map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), one_line(v))).collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(one_line).collect::<Vec<_>>().join(", ")),
        scalar => scalar.to_string(),
    }
}

/// An object over several lines, its first line in place and the rest indented from
/// `base` in steps of `unit`; short arrays of scalars stay on one line.
fn multi_line(value: &Value, base: &str, unit: &str) -> String {
    match value {
        Value::Object(m) if !m.is_empty() => {
            let inner = format!("{base}{unit}");
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{inner}{}: {}", Value::from(k.as_str()), multi_line(v, &inner, unit)))
                .collect();
            format!("{{\n{}\n{base}}}", parts.join(",\n"))
        }
        other => one_line(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layouts_follow_the_original() {
        let v = json!({ "command": "c", "args": ["connect", "x"], "env": {} });
        assert_eq!(one_line(&v), r#"{ "command": "c", "args": ["connect", "x"], "env": {} }"#);
        assert_eq!(
            multi_line(&v, "    ", "  "),
            "{\n      \"command\": \"c\",\n      \"args\": [\"connect\", \"x\"],\n      \"env\": {}\n    }"
        );
    }
}
