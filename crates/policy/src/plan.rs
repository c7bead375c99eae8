//! Session plans: at the start of a task a client declares the calls it means to make
//! ("`write_file` under /home/alice/site", "git writes to the repository
//! /home/alice/site"), and the person approves them as one prompt. Each item the policy
//! accepts becomes a grant for the client's session with the same scope machinery as
//! "Allow similar" ([`crate::similar`]): a folder never shallower than policy allows and
//! never its `.git`, workflows or env files; values kept exactly where the catalog says
//! what bounds a server (a repository, a channel). Calls outside every item still ask.
//!
//! Must never: accept an item wider than "Allow similar" could offer for a call of that
//! tool (a file server's item without a folder, a git item without its repository), an
//! item for a destructive or sensitive tool or one policy keeps to once, or a plan when
//! policy turns plans or session grants off. It only shapes offers: whether a call runs
//! is still decided per call (a deny rule, a routed approver, a pin win over any grant).

use crate::class::ToolClass;
use crate::grant_length::GrantLength;
use crate::rule::{nfc, normalise};
use crate::similar::{self, SimilarOffer, SimilarRule, SimilarScope, SimilarSettings, SimilarTools};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most items a plan may declare.
pub const MAX_PLAN_ITEMS: usize = 16;
/// The longest title, in characters.
pub const MAX_PLAN_TITLE: usize = 200;

/// What a client declares (`countersign/plan`'s params).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The task, in the client's words (shown as its claim).
    pub title: String,
    pub items: Vec<PlanItem>,
}

/// One kind of call a plan declares.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlanItem {
    pub server: String,
    /// A tool of the server, or `*` for every tool of it that writes (where the catalog
    /// reads "similar" as the server's writes).
    pub tool: String,
    /// The folder every file argument lies in (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under: Option<String>,
    /// Arguments kept exactly (a repository, a channel).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exact: BTreeMap<String, String>,
}

/// Limits on plans (`[grants.plans]`); managed layers only tighten them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PlanSettings {
    /// Whether clients may declare plans at all.
    pub enabled: bool,
    /// The most items one plan may carry (at most 16).
    pub max_items: u32,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings { enabled: true, max_items: MAX_PLAN_ITEMS as u32 }
    }
}

impl PlanSettings {
    /// The stricter of two layers' settings.
    pub fn tighten(&self, weak: &PlanSettings) -> PlanSettings {
        PlanSettings { enabled: self.enabled && weak.enabled, max_items: self.max_items.min(weak.max_items) }
    }
}

/// Why a plan item is not granted (shown to the person and the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemRefused {
    #[error("never for a {0} tool")]
    Class(ToolClass),
    #[error("name the folder its files lie in (`under`): {server} reads files")]
    NoFolder { server: String },
    #[error("`{0}` names no files: leave out `under`")]
    NoFiles(String),
    #[error("`under` must be an absolute folder, not `{0}`")]
    Relative(String),
    #[error("`{0}` is wider than policy allows (at least {1} folders deep)")]
    TooWide(String, u32),
    #[error("name `{0}` exactly (it bounds what the server's calls reach)")]
    NoExact(String),
    #[error("`*` covers a server's writes only where the catalog knows them; name the tool")]
    NoWrites,
    #[error("a bad scope: {0}")]
    Scope(String),
    #[error("`{0}` is in `{1}`, a place grants never cover")]
    Excluded(String, String),
    #[error("`{0}` is not an argument of the tool")]
    NotAnArgument(String),
}

/// The excluded place (`.git/**`, `.ssh/**`...) `folder` is, or lies in, if any: the
/// folder and anything in it matched against each pattern from every depth.
fn excluded_place(folder: &str, excluded: &[String]) -> Option<String> {
    let inside = format!("{}/x", folder.trim_end_matches('/'));
    // Places named by a dot or a folder (`.git/**`, `.github/workflows/**`, `.env`); bare
    // file names (`config`, `HEAD`) stay file exclusions below the folder.
    excluded.iter().filter(|e| e.starts_with('.') || e.contains('/')).find_map(|e| {
        let pattern = format!("/**/{e}");
        let hit = |p: &str| {
            crate::rule::Condition::path_pattern("path", &pattern)
                .is_ok_and(|c| c.matches(&serde_json::json!({ "path": p }), crate::rule::Quantifier::All))
        };
        (hit(folder) || hit(&inside)).then(|| e.clone())
    })
}

/// The scope one item would be granted, for the session, by `rule` (the catalog's reading
/// of the server, or the narrowest one), within `settings`.
pub fn item_offer(
    rule: &SimilarRule,
    item: &PlanItem,
    class: Option<ToolClass>,
    settings: &SimilarSettings,
) -> Result<SimilarOffer, ItemRefused> {
    let tools = if item.tool == "*" {
        if rule.tools != SimilarTools::Writes {
            return Err(ItemRefused::NoWrites);
        }
        SimilarTools::Writes
    } else {
        let class = class.unwrap_or(ToolClass::Destructive);
        if class > ToolClass::Write {
            return Err(ItemRefused::Class(class));
        }
        SimilarTools::Tool
    };
    let folder = match (&item.under, rule.folder.is_empty()) {
        (None, false) => return Err(ItemRefused::NoFolder { server: item.server.clone() }),
        (Some(_), true) => return Err(ItemRefused::NoFiles(item.server.clone())),
        (None, true) => None,
        (Some(under), false) => {
            let path = normalise(&nfc(under));
            let path = match path.trim_end_matches('/') {
                "" if path.starts_with('/') => "/".to_string(),
                trimmed => trimmed.to_string(),
            };
            if !path.starts_with('/') {
                return Err(ItemRefused::Relative(under.clone()));
            }
            let depth = settings.min_depth.max(1);
            if (similar::segments(&path).len() as u32) < depth {
                return Err(ItemRefused::TooWide(path, depth));
            }
            // The folder itself may not be (or lie in) a place grants never cover: the
            // exclusions apply below a folder, so a plan for `site/.git` would escape them.
            if let Some(place) = excluded_place(&path, &settings.excluded()) {
                return Err(ItemRefused::Excluded(path, place));
            }
            Some(path)
        }
    };
    let mut exact = BTreeMap::new();
    for key in &rule.exact {
        let Some(value) = item.exact.get(key) else { return Err(ItemRefused::NoExact(key.clone())) };
        exact.insert(key.clone(), value.clone());
    }
    // Keys beyond the catalog's narrow the item further (the caller checks the tool takes
    // them); for every write tool of a server, only the catalog's keys mean anything.
    if tools == SimilarTools::Writes {
        if let Some(key) = item.exact.keys().find(|k| !rule.exact.contains(k)) {
            return Err(ItemRefused::NotAnArgument(key.clone()));
        }
    }
    for (key, value) in &item.exact {
        exact.entry(key.clone()).or_insert_with(|| value.clone());
    }
    for (key, value) in exact.iter_mut() {
        if similar::key_is_file(key) {
            *value = normalise(&nfc(value));
            if !value.starts_with('/') {
                return Err(ItemRefused::Relative(value.clone()));
            }
        }
    }
    let what = match tools {
        SimilarTools::Writes => "writes".to_string(),
        SimilarTools::Tool => format!("`{}` calls", item.tool),
    };
    let mut words = format!("{what} via {}", item.server);
    if let Some(f) = &folder {
        words.push_str(&format!(" under {f}/ (not .git, workflows, editor tasks or env files)"));
    }
    for (key, value) in &exact {
        words.push_str(&format!(", {key} = {value}"));
    }
    words.push_str(", for this session");
    let offer = SimilarOffer {
        server: item.server.clone(),
        tool: item.tool.clone(),
        tools,
        folder,
        exact,
        length: GrantLength::Session,
        words,
        exclude: settings.excluded(),
        strict_paths: rule.strict_paths,
    };
    SimilarScope::compile(&offer).map_err(|e| ItemRefused::Scope(e.to_string()))?;
    Ok(offer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn files() -> SimilarRule {
        SimilarRule {
            tools: SimilarTools::Writes,
            folder: vec!["path".into()],
            exact: Vec::new(),
            words: String::new(),
            strict_paths: false,
        }
    }

    fn item(tool: &str, under: Option<&str>) -> PlanItem {
        PlanItem { server: "fs".into(), tool: tool.into(), under: under.map(str::to_string), exact: BTreeMap::new() }
    }

    fn covers(offer: &SimilarOffer, tool: &str, class: ToolClass, args: serde_json::Value) -> bool {
        SimilarScope::compile(offer).unwrap().covers(tool, Some(class), &args)
    }

    #[test]
    fn an_item_covers_its_tool_under_its_folder_and_nothing_else() {
        let s = SimilarSettings::default();
        let offer =
            item_offer(&files(), &item("write_file", Some("/home/a/site/")), Some(ToolClass::Write), &s).unwrap();
        assert_eq!(offer.folder.as_deref(), Some("/home/a/site"));
        assert_eq!(offer.length, GrantLength::Session);
        assert!(offer.words.starts_with("`write_file` calls via fs under /home/a/site/"), "{}", offer.words);
        assert!(covers(&offer, "write_file", ToolClass::Write, json!({"path": "/home/a/site/x/index.html"})));
        assert!(!covers(&offer, "write_file", ToolClass::Write, json!({"path": "/home/a/other/x"})));
        assert!(!covers(&offer, "write_file", ToolClass::Write, json!({"path": "/home/a/site/.git/config"})));
        assert!(!covers(&offer, "write_file", ToolClass::Write, json!({"path": "/home/a/site/.env"})));
        assert!(!covers(&offer, "edit_file", ToolClass::Write, json!({"path": "/home/a/site/x"})));
        assert!(!covers(&offer, "write_file", ToolClass::Write, json!({})), "a call naming no file");
    }

    #[test]
    fn items_wider_than_allow_similar_are_refused() {
        let s = SimilarSettings::default();
        let w = Some(ToolClass::Write);
        let refused = |i: PlanItem, class| item_offer(&files(), &i, class, &s).unwrap_err();
        assert_eq!(refused(item("write_file", None), w), ItemRefused::NoFolder { server: "fs".into() });
        assert_eq!(refused(item("write_file", Some("/home/a")), w), ItemRefused::TooWide("/home/a".into(), 3));
        assert_eq!(refused(item("write_file", Some("/home/a/b/../..")), w), ItemRefused::TooWide("/home".into(), 3));
        assert_eq!(refused(item("write_file", Some("site")), w), ItemRefused::Relative("site".into()));
        assert_eq!(refused(item("write_file", Some("/")), w), ItemRefused::TooWide("/".into(), 3));
        for place in [
            "/home/a/site/.git",
            "/home/a/site/.git/hooks",
            "/home/a/site/.github/workflows",
            "/home/a/.ssh",
            "/home/a/site/.vscode",
            "/home/a/site/.claude/commands",
        ] {
            assert!(matches!(refused(item("write_file", Some(place)), w), ItemRefused::Excluded(..)), "{place}");
        }
        assert!(item_offer(&files(), &item("write_file", Some("/home/a/site/src")), w, &s).is_ok());
        assert!(item_offer(&files(), &item("write_file", Some("/home/a/gitlab/site")), w, &s).is_ok());
        assert!(item_offer(&files(), &item("write_file", Some("/home/a/site/config")), w, &s).is_ok());
        assert_eq!(
            refused(item("move_file", Some("/home/a/site")), Some(ToolClass::Destructive)),
            ItemRefused::Class(ToolClass::Destructive)
        );
        assert_eq!(
            refused(item("mystery", Some("/home/a/site")), None),
            ItemRefused::Class(ToolClass::Destructive),
            "a tool of unknown class is taken at its worst"
        );
        let narrow = SimilarRule { tools: SimilarTools::Tool, ..files() };
        assert_eq!(item_offer(&narrow, &item("*", Some("/home/a/site")), w, &s).unwrap_err(), ItemRefused::NoWrites);
        let memory = SimilarRule { folder: Vec::new(), ..files() };
        assert_eq!(
            item_offer(&memory, &item("create_entities", Some("/home/a/site")), w, &s).unwrap_err(),
            ItemRefused::NoFiles("fs".into())
        );
        assert!(item_offer(&memory, &item("create_entities", None), w, &s).is_ok());
    }

    #[test]
    fn a_repository_is_named_exactly_and_extra_values_only_narrow() {
        let s = SimilarSettings::default();
        let git = SimilarRule {
            tools: SimilarTools::Writes,
            folder: Vec::new(),
            exact: vec!["repo_path".into()],
            words: String::new(),
            strict_paths: false,
        };
        let mut i = item("*", None);
        assert_eq!(item_offer(&git, &i, None, &s).unwrap_err(), ItemRefused::NoExact("repo_path".into()));
        i.exact.insert("repo_path".into(), "/home/a/site/".into());
        let offer = item_offer(&git, &i, None, &s).unwrap();
        assert_eq!(offer.exact["repo_path"], "/home/a/site");
        assert!(covers(&offer, "git_commit", ToolClass::Write, json!({"repo_path": "/home/a/site", "message": "m"})));
        assert!(!covers(&offer, "git_commit", ToolClass::Write, json!({"repo_path": "/home/a/other"})));
        assert!(!covers(&offer, "git_reset", ToolClass::Destructive, json!({"repo_path": "/home/a/site"})));
        i.exact.insert("branch".into(), "main".into());
        assert_eq!(
            item_offer(&git, &i, None, &s).unwrap_err(),
            ItemRefused::NotAnArgument("branch".into()),
            "every write tool: only the catalog's keys"
        );
        i.tool = "git_commit".into();
        let narrower = item_offer(&git, &i, Some(ToolClass::Write), &s).unwrap();
        assert!(!covers(
            &narrower,
            "git_commit",
            ToolClass::Write,
            json!({"repo_path": "/home/a/site", "branch": "x"})
        ));
    }

    #[test]
    fn settings_only_tighten() {
        let on = PlanSettings::default();
        let off = PlanSettings { enabled: false, max_items: 4 };
        assert_eq!(on.tighten(&off), off);
        assert_eq!(off.tighten(&on), off);
    }
}
