//! A whole client file routed through Countersign or put back: each chosen entry edited in
//! turn (see [`crate::edit`]), the originals returned so they can be put back later. Pure:
//! text in, text out; writing is [`crate::apply`]'s.

use crate::client::Location;
use crate::edit::{self, EditError, EntryPath};
use crate::read::{parse, servers_in, Server};
use crate::routing::{routed_entry, Delivery};

/// One entry routed: where it is and its text before.
#[derive(Debug, Clone)]
pub struct Routed {
    pub entry: EntryPath,
    pub original: String,
}

impl From<&Server> for EntryPath {
    fn from(s: &Server) -> Self {
        EntryPath::new(&s.name, s.project.as_deref())
    }
}

/// `text` with each entry in `plan` pointed at Countersign as its delivery says.
pub fn route(
    location: &Location,
    text: &str,
    plan: &[(EntryPath, Delivery)],
) -> Result<(String, Vec<Routed>), EditError> {
    let before = text;
    let mut text = text.to_string();
    let mut done: Vec<Routed> = Vec::new();
    for (entry, delivery) in plan {
        let doc = parse(&text, location.format, &location.path)?;
        let value = edit::entry_value(&doc, &location.servers_at, entry)
            .ok_or_else(|| EditError::Missing { path: location.path.clone(), name: entry.name.clone() })?;
        let routed = routed_entry(location.client, value, delivery);
        let original = edit::original(location, &text, entry)?;
        text = edit::replace(location, &text, entry, &routed)?;
        done.push(Routed { entry: entry.clone(), original });
    }
    // Routed only if it can be put back exactly: a file whose entries cannot be found
    // again by the same edits (a key repeated inside a multi-line string, say) is left as
    // it was rather than changed beyond undoing.
    if !done.is_empty() && restore(location, &text, &done).ok().as_deref() != Some(before) {
        let name = done[0].entry.name.clone();
        return Err(EditError::Unverified { path: location.path.clone(), name });
    }
    Ok((text, done))
}

/// `text` with each entry's original text put back, the last routed first.
pub fn restore(location: &Location, text: &str, entries: &[Routed]) -> Result<String, EditError> {
    let mut text = text.to_string();
    for r in entries.iter().rev() {
        text = edit::restore(location, &text, &r.entry, &r.original)?;
    }
    Ok(text)
}

/// The servers in `text`, as the inventory reads them.
pub fn servers(location: &Location, text: &str) -> Result<Vec<Server>, EditError> {
    let doc = parse(text, location.format, &location.path)?;
    Ok(servers_in(&doc, &location.servers_at))
}
