//! The gateway's pin store: tool and server pins kept in `pins.json` (0600) in the data
//! directory, and where each server's tools stand after every listing seen. The first
//! listing of a server pins it; later listings are reviewed against the pins, and tools
//! whose definition changed, or whose text looks like it hides instructions, are blocked
//! (and quarantined ones hidden) until accepted with `countersign pins accept`.
//!
//! Reviews are per server across pages and listings, never per listing: a page reviews
//! only the tools on it, and a tool's blocked state is sticky. A server cannot wash a
//! changed or quarantined tool clean by putting it on another page, leaving it out of
//! the next listing, or showing its old definition again; only acceptance unblocks it.
//! A pin file that cannot be read stops the gateway: starting over would silently trust
//! whatever the servers say next.

use crate::home::{write_private, Home, HomeError};
use countersign_policy::{PinSet, Review, ServerOrigin, ToolState};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{path}: not a pin file ({message}); move it aside to start over, knowing every tool will be pinned again as first seen")]
    Corrupt { path: PathBuf, message: String },
    #[error(transparent)]
    Home(#[from] HomeError),
}

/// A tool (or, with no tool, a whole server) that a listing just blocked.
pub struct NewlyBlocked {
    pub tool: Option<String>,
    /// `pin` (changed since approved) or `quarantine` (suspicious text).
    pub rule: &'static str,
    pub why: String,
}

pub struct PinStore {
    path: PathBuf,
    set: PinSet,
    /// Where each server's tools stand: every page and listing merged, blocks sticky.
    reviews: HashMap<String, Review>,
    /// The latest definition seen of each tool of each server, for accepting what a
    /// review blocked.
    listed: HashMap<String, (ServerOrigin, BTreeMap<String, Value>)>,
    /// Moves whenever a review or an acceptance changes what is blocked, so a session may
    /// reuse its review of an unchanged listing until then.
    generation: u64,
}

impl PinStore {
    pub fn open(home: &Home) -> Result<Self, PinError> {
        let path = home.dir().join("pins.json");
        let set = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| PinError::Corrupt { path: path.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PinSet::default(),
            Err(source) => return Err(HomeError::Io { path, source }.into()),
        };
        Ok(PinStore { path, set, reviews: HashMap::new(), listed: HashMap::new(), generation: 0 })
    }

    fn save(&self) {
        let text = serde_json::to_vec_pretty(&self.set).unwrap_or_default();
        if let Err(e) = write_private(&self.path, &text) {
            tracing::error!("could not save tool pins: {e}");
        }
    }

    /// Reviews one page of a listing, pins what is new, and merges the review into where
    /// the server stands. Returns that standing, and what became blocked with this page
    /// (tool, rule, why) for the audit journal.
    pub fn review(&mut self, server: &str, origin: &ServerOrigin, tools: &[Value]) -> (Review, Vec<NewlyBlocked>) {
        let page = self.set.review(server, origin, tools);
        let merged = self.reviews.entry(server.to_string()).or_insert_with(|| Review {
            identity_changed: false,
            first_sight: page.first_sight,
            tools: Default::default(),
        });
        let before = merged.clone();
        merged.identity_changed |= page.identity_changed;
        for (tool, state) in &page.tools {
            let blocked = merged.tools.get(tool).is_some_and(ToolState::blocks);
            // Once blocked, blocked until accepted: a clean page does not undo it.
            if blocked && !state.blocks() {
                continue;
            }
            merged.tools.insert(tool.clone(), state.clone());
        }
        let mut newly = Vec::new();
        if merged.identity_changed && !before.identity_changed {
            newly.push(NewlyBlocked {
                tool: None,
                rule: "pin",
                why: "the server's command or URL changed since it was approved".into(),
            });
        }
        for (tool, state) in &merged.tools {
            if before.tools.get(tool) == Some(state) {
                continue;
            }
            match state {
                ToolState::Changed { diff } => {
                    tracing::warn!(
                        server,
                        tool,
                        "tool definition changed; blocked until `countersign pins accept {server} {tool}`: {}",
                        diff.join("; ")
                    );
                    newly.push(NewlyBlocked { tool: Some(tool.clone()), rule: "pin", why: diff.join("; ") })
                }
                ToolState::Quarantined { why } => {
                    tracing::warn!(
                        server,
                        tool,
                        "tool quarantined (hidden from clients) until reviewed: {}",
                        why.join("; ")
                    );
                    newly.push(NewlyBlocked { tool: Some(tool.clone()), rule: "quarantine", why: why.join("; ") })
                }
                _ => {}
            }
        }
        if merged.identity_changed && !before.identity_changed {
            tracing::warn!(server, "the server's command or URL changed since it was pinned: its tools are blocked until `countersign pins accept {server}`");
        }
        let merged = merged.clone();
        if self.set.accept_new(server, origin, tools, &page) {
            self.save();
        }
        let listed = self.listed.entry(server.to_string()).or_insert_with(|| (origin.clone(), BTreeMap::new()));
        listed.0 = origin.clone();
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                listed.1.insert(name.to_string(), tool.clone());
            }
        }
        if merged != before {
            self.generation += 1;
        }
        (merged, newly)
    }

    /// Where the reviews stand: it moves whenever one changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Why calls to `tool` on `server` are blocked, if they are: the rule (`pin` or
    /// `quarantine`) and a reason a person can act on.
    pub fn blocked(&self, server: &str, tool: &str) -> Option<(&'static str, String)> {
        let review = self.reviews.get(server)?;
        if review.identity_changed {
            return Some(("pin", format!(
                "the command or URL of server `{server}` changed since it was approved; run `countersign pins accept {server}` after checking it"
            )));
        }
        match review.tools.get(tool)? {
            ToolState::Changed { diff } => Some(("pin", format!(
                "the definition of `{tool}` changed since it was approved ({}); run `countersign pins accept {server} {tool}` after checking it",
                diff.join("; ")
            ))),
            ToolState::Quarantined { why } => Some(("quarantine", format!(
                "`{tool}` is quarantined because {}; review its full text with `countersign pins` and accept it with `countersign pins accept {server} {tool}`",
                why.join(" and ")
            ))),
            _ => None,
        }
    }

    /// Accepts the latest definitions seen of `server`'s tools (all of them, or the named
    /// ones): pins them as they are now. Returns how many tools were accepted.
    pub fn accept(&mut self, server: &str, tools: &[String]) -> Result<usize, String> {
        let (origin, listed) = self
            .listed
            .get(server)
            .cloned()
            .ok_or_else(|| format!("no listing of server `{server}` has been seen yet"))?;
        if let Some(missing) = tools.iter().find(|n| !listed.contains_key(n.as_str())) {
            return Err(format!("server `{server}` does not list a tool `{missing}`"));
        }
        let chosen: Vec<Value> = listed
            .iter()
            .filter(|(name, _)| tools.is_empty() || tools.iter().any(|n| n == *name))
            .map(|(_, t)| t.clone())
            .collect();
        self.set.accept(server, &origin, &chosen);
        self.save();
        let fresh = self.set.review(server, &origin, &chosen);
        let review = self.reviews.entry(server.to_string()).or_insert_with(|| fresh.clone());
        review.identity_changed = fresh.identity_changed;
        for (tool, state) in fresh.tools {
            review.tools.insert(tool, state);
        }
        self.generation += 1;
        Ok(chosen.len())
    }

    /// The latest listing of `server` with each tool's review state.
    pub fn listing(&self, server: &str) -> Vec<(Value, Option<ToolState>)> {
        let Some((_, tools)) = self.listed.get(server) else { return Vec::new() };
        let review = self.reviews.get(server);
        tools.iter().map(|(name, t)| (t.clone(), review.and_then(|r| r.tools.get(name).cloned()))).collect()
    }

    /// Blocked and quarantined tools with what changed, for `status` and `countersign pins`.
    pub fn report(&self) -> Value {
        let mut out = Vec::new();
        for (server, review) in &self.reviews {
            if review.identity_changed {
                out.push(json!({"server": server, "tool": null, "state": "server-changed"}));
            }
            for (tool, state) in &review.tools {
                if state.blocks() {
                    let full = self.listed.get(server).and_then(|(_, l)| l.get(tool).cloned());
                    out.push(json!({"server": server, "tool": tool, "review": state, "definition": full}));
                }
            }
        }
        Value::Array(out)
    }
}
