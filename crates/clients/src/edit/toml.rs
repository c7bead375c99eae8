//! Entry edits in TOML files (Codex CLI's `[mcp_servers.NAME]`), through `toml_edit`:
//! the entry's table keeps its header, its comments and its place; only its keys change.
//! The original is kept as the table's own TOML text and its keys are put back from it.

use super::{EditError, EntryPath};
use crate::client::{Location, ServersAt};
use serde_json::Value;
use toml_edit::{DocumentMut, Item, Table};

fn parse(location: &Location, text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>().map_err(|e| {
        crate::read::ReadError::Parse { path: location.path.clone(), format: "TOML", message: e.message().to_string() }
            .into()
    })
}

/// The document as text, starting and ending the way `like` does: toml_edit drops a
/// byte-order mark (Windows editors write one) and ends every rewritten line with a
/// newline, even the last line of a file that had none.
fn written(doc: &DocumentMut, like: &str) -> String {
    const BOM: char = '\u{feff}';
    let mut out = doc.to_string();
    if like.starts_with(BOM) && !out.starts_with(BOM) {
        out.insert(0, BOM);
    }
    if !like.ends_with('\n') && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn servers_key(location: &Location, entry: &EntryPath) -> Result<&'static str, EditError> {
    match location.servers_at {
        ServersAt::Map(k) => Ok(k),
        _ => Err(EditError::missing(location, entry)),
    }
}

fn table<'a>(location: &Location, doc: &'a mut DocumentMut, entry: &EntryPath) -> Result<&'a mut Table, EditError> {
    let key = servers_key(location, entry)?;
    let item =
        doc.get_mut(key).and_then(|s| s.get_mut(&entry.name)).ok_or_else(|| EditError::missing(location, entry))?;
    if let Some(inline) = item.as_inline_table().cloned() {
        *item = Item::Table(inline.into_table());
    }
    item.as_table_mut().ok_or_else(|| EditError::shape(location, entry, "it is not a table"))
}

pub fn original(location: &Location, text: &str, entry: &EntryPath) -> Result<String, EditError> {
    let mut doc = parse(location, text)?;
    let key = servers_key(location, entry)?;
    let own = table(location, &mut doc, entry)?.clone();
    let mut alone = DocumentMut::new();
    let mut servers = Table::new();
    servers.set_implicit(true);
    servers.insert(&entry.name, Item::Table(own));
    alone.insert(key, Item::Table(servers));
    Ok(alone.to_string())
}

/// `value` as TOML.
fn to_item(value: &Value) -> Option<toml_edit::Value> {
    Some(match value {
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::Array(a) => {
            let mut array = toml_edit::Array::new();
            for v in a {
                array.push(to_item(v)?);
            }
            array.into()
        }
        Value::Object(m) => {
            let mut inline = toml_edit::InlineTable::new();
            for (k, v) in m {
                inline.insert(k, to_item(v)?);
            }
            inline.into()
        }
        Value::Null => return None,
    })
}

pub fn replace(location: &Location, text: &str, entry: &EntryPath, value: &Value) -> Result<String, EditError> {
    let mut doc = parse(location, text)?;
    let own = table(location, &mut doc, entry)?;
    let wanted = value.as_object().ok_or_else(|| EditError::shape(location, entry, "not a table"))?;
    let keys: Vec<String> = own.iter().map(|(k, _)| k.to_string()).collect();
    let mut kept = Vec::new();
    for k in keys {
        if let Some((key, item)) = own.remove_entry(&k) {
            kept.push((key, item));
        }
    }
    for (k, v) in wanted {
        match kept.iter().position(|(key, _)| key.get() == k) {
            // A key the entry keeps (`enabled`, timeouts) keeps its formatting.
            Some(i) if item_equals(&kept[i].1, v) => {
                let (key, item) = kept.remove(i);
                own.insert_formatted(&key, item);
            }
            _ => {
                let item =
                    to_item(v).ok_or_else(|| EditError::shape(location, entry, format!("`{k}` has no TOML form")))?;
                own.insert(k, toml_edit::value(item));
            }
        }
    }
    Ok(written(&doc, text))
}

fn item_equals(item: &Item, value: &Value) -> bool {
    let text = match item {
        Item::Value(v) => v.to_string(),
        _ => return false,
    };
    toml::from_str::<toml::Table>(&format!("x = {text}"))
        .ok()
        .and_then(|t| serde_json::to_value(t.get("x")).ok())
        .is_some_and(|v| v == *value)
}

pub fn restore(location: &Location, text: &str, entry: &EntryPath, original: &str) -> Result<String, EditError> {
    let mut saved = parse(location, original)?;
    let saved = table(location, &mut saved, entry)?.clone();
    let mut doc = parse(location, text)?;
    let own = table(location, &mut doc, entry)?;
    let position = own.position();
    own.clear();
    for (key, item) in saved.iter() {
        let mut item = item.clone();
        if let Item::Table(t) = &mut item {
            // Sub-tables (`[mcp_servers.NAME.env]`) follow their parent again.
            t.set_position(position);
        }
        let key = saved.key(key).cloned().unwrap_or_else(|| toml_edit::Key::new(key));
        own.insert_formatted(&key, item);
    }
    Ok(written(&doc, text))
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

    #[test]
    fn a_byte_order_mark_is_kept() {
        let text = "\u{feff}[mcp_servers.figma]\nurl = \"https://mcp.figma.com/mcp\"\n";
        let entry = EntryPath::new("figma", None);
        let original = original(&codex(), text, &entry).unwrap();
        let routed = replace(&codex(), text, &entry, &json!({"command": "c", "args": ["connect", "figma"]})).unwrap();
        assert!(routed.starts_with('\u{feff}'));
        assert_eq!(restore(&codex(), &routed, &entry, &original).unwrap(), text);
    }

    #[test]
    fn the_last_entry_of_a_file_without_a_final_newline_comes_back_exactly() {
        let text = "[mcp_servers.figma]\nurl = \"https://mcp.figma.com/mcp\"# note";
        let entry = EntryPath::new("figma", None);
        let original = original(&codex(), text, &entry).unwrap();
        let routed = replace(&codex(), text, &entry, &json!({"command": "c", "args": ["connect", "figma"]})).unwrap();
        let back = restore(&codex(), &routed, &entry, &original).unwrap();
        assert_eq!(back, text, "routed: {routed:?}");
    }
}
