//! "Allow similar": a grant for the task, not the call. From one approved call it derives
//! a scope a person can read and agree to ("writes under /home/alice/site via fs, for 1
//! hour"): which tools (this one, or every read or write tool of the server), which
//! files (the call's project or folder, never shallower than policy allows, never its
//! `.git` and other files that run code), which values kept exactly (a repository, a
//! table, a channel). The catalog says per server what "similar" means; a server it does
//! not know gets the narrowest reading (this tool, this folder).
//!
//! Must never: offer a scope for a destructive or sensitive tool, or for a tool policy
//! keeps to once; widen a scope past what the person was shown (the grant is compiled
//! from the offer the prompt carried, nothing else); let a call through whose file
//! arguments are not all inside the folder, or could not be resolved.

use crate::class::ToolClass;
use crate::grant_length::GrantLength;
use crate::rule::{glob_escape as escape, nfc, normalise, Condition, Quantifier, RuleError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Arguments taken to name files, whatever a rule says: the names MCP file servers use
/// (the filesystem server's `path`, `paths`, `source`, `destination`; others' `file`,
/// `directory`...). A scope bounded by a folder needs every one a call carries inside it.
pub const FILE_KEYS: &[&str] = &[
    "path",
    "paths",
    "source",
    "destination",
    "file",
    "files",
    "file_path",
    "filepath",
    "filename",
    "dir",
    "directory",
    "folder",
    "repo_path",
    "repository",
];

/// Which tools a similar grant covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum SimilarTools {
    /// The approved tool only.
    #[default]
    Tool,
    /// Every tool of the server the catalog or managed policy classifies as a write
    /// (never a read some rule asks for, never an unclassified, sensitive or destructive
    /// tool, never one policy keeps to once).
    Writes,
}

/// What a catalog entry says "similar" means for its server (`[similar]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarRule {
    #[serde(default)]
    pub tools: SimilarTools,
    /// Arguments naming files: the scope is the approved call's project (or folder), and
    /// every file argument of a covered call lies inside it. None: no folder bound.
    #[serde(default)]
    pub folder: Vec<String>,
    /// Arguments kept exactly as approved (a repository, a table, a channel).
    #[serde(default)]
    pub exact: Vec<String>,
    /// The scope in words: `{server}`, `{tool}`, `{folder}`, and `{KEY}` for an exact key.
    pub words: String,
    /// Every path-like string in a covered call lies inside the folder (not only the file
    /// arguments): for servers whose arguments nobody described.
    #[serde(default)]
    pub strict_paths: bool,
}

impl SimilarRule {
    /// For a server the catalog does not know: this tool, under the folder of whatever
    /// file arguments the call has.
    pub fn fallback() -> SimilarRule {
        SimilarRule {
            tools: SimilarTools::Tool,
            folder: FILE_KEYS.iter().map(|k| k.to_string()).collect(),
            exact: Vec::new(),
            words: "`{tool}` calls under {folder} via {server}".into(),
            strict_paths: true,
        }
    }
}

/// The limits policy puts on similar grants (`[grants.similar]`); managed layers only
/// tighten them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SimilarSettings {
    /// Whether "Allow similar" is offered at all.
    pub enabled: bool,
    /// How long a similar grant lasts (`15m`, `1h`, `today` or `session`; never `once`).
    pub length: GrantLength,
    /// The fewest path components a folder scope may have (`/home/alice` has 2): a
    /// call whose folder is shallower gets no offer.
    pub min_depth: u32,
    /// Files inside the folder a similar grant never covers (globs below any folder in
    /// it), added to the built-in ones (version control internals, CI workflows, editor
    /// tasks, environment files: whatever runs code or holds secrets). Each such call
    /// asks on its own.
    pub exclude: Vec<String>,
}

impl Default for SimilarSettings {
    fn default() -> Self {
        SimilarSettings { enabled: true, length: GrantLength::Hour1, min_depth: 3, exclude: Vec::new() }
    }
}

/// Places a similar grant never covers, whatever policy says (`exclude` adds to them):
/// what runs code or holds secrets below a project.
pub const BUILTIN_EXCLUDE: &[&str] = &[
    ".git",
    ".git/**",
    ".hg/**",
    ".svn/**",
    ".github/workflows/**",
    ".gitlab-ci.yml",
    ".vscode/**",
    ".idea/**",
    ".devcontainer/**",
    ".env",
    ".env.*",
    ".envrc",
    ".npmrc",
    ".pypirc",
    ".ssh/**",
    ".aws/**",
    ".bashrc",
    ".zshrc",
    ".profile",
    // Files AI clients and tools read to run commands or hooks.
    ".mcp.json",
    ".cursor/**",
    ".claude/**",
    ".gemini/**",
    ".zed/**",
    ".windsurf/**",
    ".husky/**",
    ".githooks/**",
    ".github/actions/**",
    ".circleci/**",
    ".pre-commit-config.yaml",
    ".gitmodules",
    ".gitattributes",
    // What makes a folder a git repository (a bare one's config can name a command).
    "HEAD",
    "config",
];

impl SimilarSettings {
    /// The built-in places and the ones policy adds.
    pub fn excluded(&self) -> Vec<String> {
        let mut all: Vec<String> = BUILTIN_EXCLUDE.iter().map(|s| s.to_string()).collect();
        all.extend(self.exclude.iter().filter(|e| !BUILTIN_EXCLUDE.contains(&e.as_str())).cloned());
        all
    }

    /// The stricter of two layers' settings.
    pub fn tighten(&self, weak: &SimilarSettings) -> SimilarSettings {
        let mut exclude = self.exclude.clone();
        exclude.extend(weak.exclude.iter().filter(|e| !self.exclude.contains(e)).cloned());
        SimilarSettings {
            enabled: self.enabled && weak.enabled,
            length: if rank(weak.length) < rank(self.length) { weak.length } else { self.length },
            min_depth: self.min_depth.max(weak.min_depth),
            exclude,
        }
    }
}

/// Shorter first; a session sits below any timed length (it can end sooner, never later
/// than the day).
fn rank(length: GrantLength) -> u8 {
    match length {
        GrantLength::Once => 0,
        GrantLength::Session => 1,
        GrantLength::Minutes15 => 2,
        GrantLength::Hour1 => 3,
        GrantLength::Today => 4,
    }
}

fn length_words(length: GrantLength) -> &'static str {
    match length {
        GrantLength::Once => "once",
        GrantLength::Session => "for this session",
        GrantLength::Minutes15 => "for 15 minutes",
        GrantLength::Hour1 => "for 1 hour",
        GrantLength::Today => "until midnight",
    }
}

/// A scope derived from one call, as the person is shown it and as the grant is
/// compiled from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SimilarOffer {
    pub server: String,
    /// The approved tool.
    pub tool: String,
    pub tools: SimilarTools,
    /// Every file argument of a covered call lies inside this folder (absolute).
    pub folder: Option<String>,
    /// Arguments kept exactly as approved.
    pub exact: BTreeMap<String, String>,
    pub length: GrantLength,
    /// The scope in words, with its length ("writes under /w/site via fs, for 1 hour").
    pub words: String,
    /// Globs inside the folder the grant never covers.
    pub exclude: Vec<String>,
    /// A server the catalog does not know: every path-like string anywhere in a covered
    /// call's arguments, under any name or depth, must lie inside the folder too.
    pub strict_paths: bool,
}

impl SimilarOffer {
    /// The same scope for the client's session only (for clients that share one name,
    /// such as every stdio client behind the shim: a grant for a while would reach them
    /// all).
    pub fn for_session(mut self) -> SimilarOffer {
        let suffix = format!(", {}", length_words(self.length));
        if let Some(stem) = self.words.strip_suffix(&suffix) {
            self.words = format!("{stem}, {}", length_words(GrantLength::Session));
        }
        self.length = GrantLength::Session;
        self
    }
}

/// Why no similar grant is offered for a call (shown where the offer would be).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoSimilar {
    #[error("policy offers no similar grants")]
    Disabled,
    #[error("never for a {0} tool")]
    Class(ToolClass),
    #[error("`{0}` is approved once at a time, by policy")]
    OnceOnly(String),
    #[error("policy does not allow grants of length `{0}`")]
    Length(&'static str),
    #[error("the call's `{0}` argument could not be read as a file inside a folder")]
    Unresolved(String),
    #[error("the call names no file, so no folder bounds what is similar")]
    NoFile,
    #[error("the folder `{0}` is too wide for a similar grant (policy asks for at least {1} path components)")]
    TooWide(String, u32),
    #[error("the call has no `{0}` to keep")]
    NoExact(String),
    #[error("{0}")]
    Excluded(String),
}

/// What a call is, for deriving its similar scope.
#[derive(Debug, Clone, Copy)]
pub struct SimilarCall<'a> {
    pub server: &'a str,
    pub tool: &'a str,
    pub class: ToolClass,
    /// The arguments as the server will read them (paths resolved; unresolved: `null`).
    pub arguments: &'a Value,
}

/// Derives the scope of "Allow similar" for `call` by `rule`, within `settings`.
/// `project_of(path)` names the project a file belongs to (the caller looks at the file
/// system: the nearest folder holding `.git`), else the scope is the file's folder.
pub fn derive(
    rule: &SimilarRule,
    call: SimilarCall<'_>,
    settings: &SimilarSettings,
    project_of: &dyn Fn(&str) -> Option<String>,
) -> Result<SimilarOffer, NoSimilar> {
    if !settings.enabled {
        return Err(NoSimilar::Disabled);
    }
    if call.class > ToolClass::Write {
        return Err(NoSimilar::Class(call.class));
    }
    let mut folder: Option<Vec<String>> = None;
    // A rule that names no folder arguments bounds its scope otherwise (a repository kept
    // exactly, the server itself); file arguments then are the server's business.
    let keys = if rule.folder.is_empty() { Vec::new() } else { file_keys(rule) };
    for key in keys {
        let Some(value) = call.arguments.get(&key) else { continue };
        let values: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            let Some(path) = v.as_str().map(|p| normalise(&nfc(p))).filter(|p| p.starts_with('/')) else {
                return Err(NoSimilar::Unresolved(key));
            };
            let deep_enough = |p: &String| segments(p).len() as u32 >= settings.min_depth.max(1);
            let home = project_of(&path).map(|p| normalise(&nfc(&p))).filter(|p| inside(&path, p) && deep_enough(p));
            let own = segments(&home.unwrap_or_else(|| parent(&path)));
            folder = Some(match folder {
                None => own,
                Some(f) => common(&f, &own),
            });
        }
    }
    if !rule.folder.is_empty() && folder.is_none() {
        return Err(NoSimilar::NoFile);
    }
    if let Some(f) = &folder {
        if (f.len() as u32) < settings.min_depth.max(1) {
            return Err(NoSimilar::TooWide(joined(f), settings.min_depth.max(1)));
        }
    }
    let mut exact = BTreeMap::new();
    for key in &rule.exact {
        let text = match call.arguments.get(key) {
            Some(Value::String(s)) if key_is_file(key) => normalise(&nfc(s)),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(NoSimilar::NoExact(key.clone())),
        };
        exact.insert(key.clone(), text);
    }
    let folder = folder.map(|f| joined(&f));
    let mut words = rule.words.replace("{server}", call.server).replace("{tool}", call.tool);
    if let Some(f) = &folder {
        words = words.replace("{folder}", &format!("{f}/"));
    }
    for (key, value) in &exact {
        words = words.replace(&format!("{{{key}}}"), value);
    }
    if folder.is_some() {
        words.push_str(" (not .git, workflows, editor tasks or env files)");
    }
    words = format!("{words}, {}", length_words(settings.length));
    let offer = SimilarOffer {
        server: call.server.to_string(),
        tool: call.tool.to_string(),
        tools: rule.tools,
        folder,
        exact,
        length: settings.length,
        words,
        exclude: settings.excluded(),
        strict_paths: rule.strict_paths,
    };
    // An offer covers at least the call it came from: a call in an excluded place (its
    // project's `.git`, an env file) gets none.
    let scope = SimilarScope::compile(&offer).map_err(|e| NoSimilar::Excluded(e.to_string()))?;
    if !scope.covers(call.tool, Some(call.class), call.arguments) {
        return Err(NoSimilar::Excluded("the call is in a place similar grants never cover".into()));
    }
    Ok(offer)
}

/// Every argument a scope with a folder needs inside it: the rule's and the usual names.
fn file_keys(rule: &SimilarRule) -> Vec<String> {
    let mut keys: Vec<String> = FILE_KEYS.iter().map(|k| k.to_string()).collect();
    keys.extend(rule.folder.iter().filter(|k| !FILE_KEYS.contains(&k.as_str())).cloned());
    keys.retain(|k| !rule.exact.contains(k));
    keys
}

pub(crate) fn key_is_file(key: &str) -> bool {
    FILE_KEYS.contains(&key)
}

pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn joined(segments: &[String]) -> String {
    format!("/{}", segments.join("/"))
}

fn parent(path: &str) -> String {
    let mut s = segments(path);
    s.pop();
    joined(&s)
}

fn inside(path: &str, folder: &str) -> bool {
    let (p, f) = (segments(path), segments(folder));
    p.len() > f.len() && p.starts_with(&f)
}

fn common(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().zip(b).take_while(|(x, y)| x == y).map(|(x, _)| x.clone()).collect()
}

/// A similar grant's scope, compiled from its offer.
#[derive(Debug, Clone)]
pub struct SimilarScope {
    pub offer: SimilarOffer,
    /// Per file argument: inside the folder, and not in an excluded place.
    files: Vec<(String, Condition, Vec<Condition>)>,
    exact: Vec<Condition>,
}

/// A scope is shown, listed and sent as the offer it was compiled from.
impl Serialize for SimilarScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.offer.serialize(s)
    }
}

impl SimilarScope {
    pub fn compile(offer: &SimilarOffer) -> Result<SimilarScope, RuleError> {
        let mut files = Vec::new();
        if let Some(folder) = &offer.folder {
            let base = escape(folder.trim_end_matches('/'));
            for key in FILE_KEYS {
                let under = Condition::path_pattern(key, &format!("{base}/**"))?;
                let excluded = offer
                    .exclude
                    .iter()
                    .map(|e| Condition::path_pattern(key, &format!("{base}/**/{e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                files.push((key.to_string(), under, excluded));
            }
        }
        let exact = offer
            .exact
            .iter()
            .map(|(key, value)| {
                if key_is_file(key) {
                    Condition::path_pattern(key, &escape(value))
                } else {
                    Condition::literal(key, value)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SimilarScope { offer: offer.clone(), files, exact })
    }

    /// Whether a call of `tool` (of class `class`) with `arguments` (as the server reads
    /// them) lies inside the scope. The server is checked by the caller.
    pub fn covers(&self, tool: &str, class: Option<ToolClass>, arguments: &Value) -> bool {
        let tool_ok = match self.offer.tools {
            SimilarTools::Tool => tool == self.offer.tool && class.is_some_and(|c| c <= ToolClass::Write),
            SimilarTools::Writes => class == Some(ToolClass::Write),
        };
        if !tool_ok {
            return false;
        }
        if self.offer.folder.is_some() {
            let mut named = 0;
            for (key, under, excluded) in &self.files {
                if arguments.get(key).is_none() {
                    continue;
                }
                named += 1;
                if !under.matches(arguments, Quantifier::All)
                    || excluded.iter().any(|e| e.matches(arguments, Quantifier::Any))
                {
                    return false;
                }
            }
            if named == 0 {
                return false;
            }
            if self.offer.strict_paths && !self.every_path_inside(arguments, true) {
                return false;
            }
        }
        self.exact.iter().all(|c| c.matches(arguments, Quantifier::All))
    }

    /// Every path-like string in `value` (any key, any depth) is inside the folder; one
    /// that cannot be judged (relative, home, a URL) is not.
    fn every_path_inside(&self, value: &Value, top: bool) -> bool {
        let Some(folder) = &self.offer.folder else { return true };
        match value {
            Value::String(s) => {
                let t = s.trim_start();
                let looks_like_path = t.starts_with('/')
                    || t.starts_with('~')
                    || t.starts_with("./")
                    || t.starts_with("../")
                    || t.starts_with("file:")
                    || t.contains("/../");
                !looks_like_path || (t.starts_with('/') && inside(&normalise(&nfc(t)), folder))
            }
            Value::Array(items) => items.iter().all(|v| self.every_path_inside(v, false)),
            // The top level's file arguments were checked resolved, as the server reads them.
            Value::Object(map) => map
                .iter()
                .filter(|(k, _)| !(top && FILE_KEYS.contains(&k.as_str())))
                .all(|(_, v)| self.every_path_inside(v, false)),
            _ => true,
        }
    }

    /// The arguments the scope reads as file paths (to be resolved before matching).
    pub fn path_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.files.iter().map(|(k, _, _)| k.clone()).chain(self.exact.iter().filter(|c| c.is_path()).map(|c| c.key()))
    }
}

#[cfg(test)]
#[path = "similar_tests.rs"]
mod tests;
