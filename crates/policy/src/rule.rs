//! One permission rule, and a compiled list of them.
//!
//! A rule is one or more selectors separated by spaces; all must match:
//! - `mcp__server`, `mcp__server__tool`, with `*` and `?` globs (Claude Code's syntax), and
//!   optionally argument conditions in parentheses: `mcp__fs__write_file(path=/work/**)`,
//!   `mcp__git__*(repo_path=/src/*, branch=feature/*)`;
//! - `class:read|write|sensitive|destructive`, the tool's class;
//! - `client:GLOB`, the client: the name of the token it presented. The name a client
//!   gives itself in `initialize` is a claim anyone can make, so no rule matches it;
//! - `request:GLOB`, only in deny lists: a request the server sends to the client
//!   (`request:sampling/*`, `request:elicitation/create`); such a rule never matches a
//!   tool call, and rules without it never match a server's request.
//!
//! Lists that restrict (deny, ask) match tool and client names without regard to case, so
//! `Delete_File` cannot slip past a rule written for `delete_file`, and a condition in them
//! matches when any element of an array argument matches; the allow list matches exactly
//! and needs every element to match. Argument values and patterns are compared in Unicode
//! NFC, and path-like ones are normalised (`.`, `..`, repeated `/`) before matching, so
//! `/work/../etc/passwd` is `/etc/passwd`; where the file system ignores case (macOS,
//! Windows) path patterns do too. A `null` value stands for one the caller could not
//! resolve: restrictive lists count it as a match, the allow list as a miss (fail closed).

use crate::class::ToolClass;
use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("rule `{0}` is empty")]
    Empty(String),
    #[error("rule `{rule}`: `{term}` is not a selector (use `mcp__server__tool`, `class:...` or `client:...`)")]
    UnknownSelector { rule: String, term: String },
    #[error("rule `{0}` must start with `mcp__` (for example `mcp__filesystem__write_file`)")]
    MissingPrefix(String),
    #[error("rule `{0}` names no server after `mcp__`")]
    EmptyServer(String),
    #[error("rule `{0}` has an empty tool name after the server")]
    EmptyTool(String),
    #[error("rule `{rule}`: unknown class `{class}` (read, write, sensitive or destructive)")]
    UnknownClass { rule: String, class: String },
    #[error("rule `{rule}`: `{selector}` is given twice")]
    Repeated { rule: String, selector: &'static str },
    #[error("rule `{rule}`: argument condition `{condition}` must be `name=pattern`")]
    BadCondition { rule: String, condition: String },
    #[error("rule `{rule}` has an unclosed `(`")]
    Unclosed { rule: String },
    #[error("rule `{rule}` is not a valid glob: {message}")]
    BadGlob { rule: String, message: String },
    #[error("an allowed-server entry must set serverName, serverCommand or serverUrl")]
    EmptyMatcher,
    #[error("approver `{approver}`: {why}")]
    BadApprover { approver: String, why: String },
    #[error("rule `{0}`: `request:` rules belong in the deny list (a server's requests are denied or relayed)")]
    RequestOutsideDeny(String),
}

/// How a condition treats an array of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// Every element must match (allow: nothing outside the pattern gets through).
    All,
    /// One matching element is enough (deny and ask: anything inside the pattern is caught).
    Any,
}

/// `key=pattern` on one argument (a dotted key reaches into objects).
#[derive(Debug, Clone)]
pub struct Condition {
    path: Vec<String>,
    matcher: GlobMatcher,
    /// Whether its pattern is a file path (the value is resolved as the server reads it).
    is_path: bool,
    /// The pattern as written.
    pattern: String,
    /// Other spellings of the same place (`~` expanded, symlinks in the pattern's fixed
    /// part followed), given by the caller: a value matching any of them matches.
    aliases: Vec<GlobMatcher>,
}

impl Condition {
    pub fn matches(&self, arguments: &Value, q: Quantifier) -> bool {
        let mut value = arguments;
        for key in &self.path {
            match value.get(key) {
                Some(v) => value = v,
                None => return false,
            }
        }
        match value {
            Value::Array(items) if !items.is_empty() => match q {
                Quantifier::All => items.iter().all(|v| self.matches_scalar(v, q)),
                Quantifier::Any => items.iter().any(|v| self.matches_scalar(v, q)),
            },
            v => self.matches_scalar(v, q),
        }
    }

    fn matches_scalar(&self, value: &Value, q: Quantifier) -> bool {
        match value {
            Value::String(s) => {
                let s = normalise(&nfc(s));
                self.matcher.is_match(&s) || self.aliases.iter().any(|a| a.is_match(&s))
            }
            Value::Number(n) => self.matcher.is_match(number_text(n)),
            Value::Bool(b) => self.matcher.is_match(b.to_string()),
            // Unresolved: caught by what restricts, never let through by what allows.
            Value::Null => q == Quantifier::Any,
            _ => false,
        }
    }

    /// `key` (a top-level argument) matching the glob `pattern`, which the caller built
    /// from normalised parts (values are normalised before they are matched).
    pub fn path_pattern(key: &str, pattern: &str) -> Result<Condition, RuleError> {
        let fold = PATHS_IGNORE_CASE && is_path_pattern(pattern);
        Ok(Condition {
            path: vec![key.to_string()],
            matcher: glob(&format!("({key}={pattern})"), pattern, fold, true)?,
            is_path: is_path_pattern(pattern),
            pattern: pattern.to_string(),
            aliases: Vec::new(),
        })
    }

    /// `key` equal to `value` (not a path: compared as it is, in NFC).
    pub fn literal(key: &str, value: &str) -> Result<Condition, RuleError> {
        let pattern = glob_escape(&nfc(value));
        Ok(Condition {
            path: vec![key.to_string()],
            matcher: glob(&format!("({key}={pattern})"), &pattern, false, true)?,
            is_path: false,
            pattern,
            aliases: Vec::new(),
        })
    }

    /// The argument this condition reads (`path`, `repo.name`).
    pub fn key(&self) -> String {
        self.path.join(".")
    }

    /// Whether its pattern is a file path.
    pub fn is_path(&self) -> bool {
        self.is_path
    }

    /// Adds the other spelling `alias(pattern)` gives for a path pattern (the caller
    /// knows the home folder and the file system; this crate does not look).
    pub fn alias_path(&mut self, alias: &dyn Fn(&str) -> Option<String>) {
        if !self.is_path {
            return;
        }
        let Some(other) = alias(&self.pattern).filter(|o| *o != self.pattern) else { return };
        let fold = PATHS_IGNORE_CASE;
        if let Ok(g) = build_glob(&other, &normalise(&nfc(&other)), fold, true) {
            self.aliases = vec![g.compile_matcher()];
        }
    }
}

/// A number as one text whatever its spelling: `5`, `5.0` and `5e0` are `5`.
fn number_text(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (_, Some(u), _) => u.to_string(),
        (_, _, Some(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            (f as i64).to_string()
        }
        _ => n.to_string(),
    }
}

/// Whether the file systems of this platform ignore case (macOS and Windows by default).
const PATHS_IGNORE_CASE: bool = cfg!(any(target_os = "macos", target_os = "windows"));

/// A glob that matches `text` literally (every glob character escaped).
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\' | '!' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Unicode NFC, the form two spellings of one name share.
pub fn nfc(text: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => std::borrow::Cow::Borrowed(text),
        _ => std::borrow::Cow::Owned(text.nfc().collect()),
    }
}

/// Whether a condition's pattern speaks of file paths (absolute, home-relative or a drive).
pub fn is_path_pattern(pattern: &str) -> bool {
    let p = pattern.trim();
    p.starts_with('/')
        || p.starts_with('~')
        || p.starts_with("file://")
        || p.as_bytes().get(1).is_some_and(|c| *c == b':') && p.as_bytes()[0].is_ascii_alphabetic()
}

/// Lexically normalises a path-like value (`/a/./b/../c` → `/a/c`; `/..` is `/`);
/// anything else comes back unchanged. A backslash separates folders only on Windows:
/// elsewhere it is an ordinary character of a file name (`..\\x` is one name there).
pub fn normalise(value: &str) -> String {
    let slashed = if cfg!(windows) { value.replace('\\', "/") } else { value.to_string() };
    let looks_like_path = slashed.starts_with('/')
        || slashed.starts_with("./")
        || slashed.starts_with("../")
        || slashed.contains("/..")
        || slashed.contains("/./")
        || slashed.contains("//");
    if !looks_like_path {
        return value.to_string();
    }
    let absolute = slashed.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in slashed.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// A parsed rule.
#[derive(Debug, Clone)]
pub struct Rule {
    text: String,
    /// The glob over `mcp__server__tool`; `*` when the rule names no tool.
    pattern: String,
    pub class: Option<ToolClass>,
    client: Option<String>,
    /// `request:GLOB`: a server's request to the client, not a tool.
    request: Option<String>,
    conditions: Vec<(String, String)>,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Splits on spaces outside parentheses.
fn terms(text: &str) -> Result<Vec<&str>, RuleError> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if c.is_whitespace() && depth == 0 => {
                if let Some(s) = start.take() {
                    out.push(&text[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if depth > 0 {
        return Err(RuleError::Unclosed { rule: text.to_string() });
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    Ok(out)
}

impl Rule {
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let trimmed = text.trim();
        let terms = terms(trimmed)?;
        if terms.is_empty() {
            return Err(RuleError::Empty(text.to_string()));
        }
        let mut rule = Rule {
            text: trimmed.to_string(),
            pattern: "*".into(),
            class: None,
            client: None,
            request: None,
            conditions: vec![],
        };
        let mut has_tool = false;
        let repeated = |selector| RuleError::Repeated { rule: trimmed.to_string(), selector };
        for term in terms {
            if let Some(class) = term.strip_prefix("class:") {
                if rule.class.is_some() {
                    return Err(repeated("class:"));
                }
                rule.class =
                    Some(ToolClass::parse(class).ok_or_else(|| RuleError::UnknownClass {
                        rule: trimmed.to_string(),
                        class: class.to_string(),
                    })?);
            } else if let Some(client) = term.strip_prefix("client:") {
                if rule.client.is_some() {
                    return Err(repeated("client:"));
                }
                rule.client = Some(client.to_string());
            } else if let Some(request) = term.strip_prefix("request:") {
                if rule.request.is_some() {
                    return Err(repeated("request:"));
                }
                if request.is_empty() {
                    return Err(RuleError::UnknownSelector { rule: trimmed.to_string(), term: term.to_string() });
                }
                rule.request = Some(request.to_string());
            } else if term.starts_with("mcp__") || term.starts_with("mcp_") {
                if has_tool {
                    return Err(repeated("mcp__"));
                }
                has_tool = true;
                let (name, conditions) = match term.split_once('(') {
                    Some((name, rest)) => {
                        let inner =
                            rest.strip_suffix(')').ok_or_else(|| RuleError::Unclosed { rule: trimmed.to_string() })?;
                        (name, Some(inner))
                    }
                    None => (term, None),
                };
                rule.pattern = tool_pattern(trimmed, name)?;
                for cond in conditions.into_iter().flat_map(|c| c.split(',')).map(str::trim).filter(|c| !c.is_empty()) {
                    let bad = || RuleError::BadCondition { rule: trimmed.to_string(), condition: cond.to_string() };
                    let (key, pattern) = cond.split_once('=').ok_or_else(bad)?;
                    if key.trim().is_empty() || pattern.trim().is_empty() {
                        return Err(bad());
                    }
                    rule.conditions.push((key.trim().to_string(), pattern.trim().to_string()));
                }
            } else if term.starts_with("mcp") || !term.contains(':') {
                return Err(RuleError::MissingPrefix(trimmed.to_string()));
            } else {
                return Err(RuleError::UnknownSelector { rule: trimmed.to_string(), term: term.to_string() });
            }
        }
        Ok(rule)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the rule is about a server's requests (`request:`) rather than tools.
    pub fn is_request_rule(&self) -> bool {
        self.request.is_some()
    }

    /// The arguments its conditions read whose patterns are paths.
    pub fn path_keys(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().filter(|(_, p)| is_path_pattern(p)).map(|(k, _)| k.as_str())
    }
}

fn tool_pattern(rule: &str, name: &str) -> Result<String, RuleError> {
    let rest = name.strip_prefix("mcp__").ok_or_else(|| RuleError::MissingPrefix(rule.to_string()))?;
    let (server, tool) = match rest.split_once("__") {
        Some((server, tool)) => (server, Some(tool)),
        None => (rest, None),
    };
    if server.is_empty() {
        return Err(RuleError::EmptyServer(rule.to_string()));
    }
    Ok(match tool {
        Some("") => return Err(RuleError::EmptyTool(rule.to_string())),
        Some(tool) => format!("mcp__{server}__{tool}"),
        // A bare server (or a server glob such as `mcp__*`) covers all its tools.
        None => format!("mcp__{server}__*"),
    })
}

/// The full name a rule is matched against.
pub fn qualified_name(server: &str, tool: &str) -> String {
    format!("mcp__{server}__{tool}")
}

/// What a rule list is asked about one call.
pub struct Subject<'a> {
    /// `mcp__server__tool`, and a second spelling to try (the name's confusable skeleton).
    pub names: &'a [String],
    pub class: ToolClass,
    /// The client token's name (what a client says of itself is never matched).
    pub clients: &'a [&'a str],
    pub arguments: &'a Value,
    /// For a server's request to the client, its method; `None` for a tool call.
    pub request: Option<&'a str>,
}

struct Compiled {
    rule: Rule,
    client: Option<GlobMatcher>,
    request: Option<GlobMatcher>,
    conditions: Vec<Condition>,
}

/// A list of rules compiled into one matcher.
pub struct RuleList {
    rules: Vec<Compiled>,
    set: GlobSet,
    quantifier: Quantifier,
}

impl std::fmt::Debug for RuleList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.rules.iter().map(|c| &c.rule.text)).finish()
    }
}

fn glob(rule: &str, pattern: &str, case_insensitive: bool, literal_separator: bool) -> Result<GlobMatcher, RuleError> {
    Ok(build_glob(rule, pattern, case_insensitive, literal_separator)?.compile_matcher())
}

fn build_glob(rule: &str, pattern: &str, ci: bool, literal_separator: bool) -> Result<globset::Glob, RuleError> {
    GlobBuilder::new(pattern)
        .case_insensitive(ci)
        .literal_separator(literal_separator)
        .backslash_escape(true)
        .build()
        .map_err(|e| RuleError::BadGlob { rule: rule.to_string(), message: e.kind().to_string() })
}

fn compile_conditions(text: &str, rule: &Rule) -> Result<Vec<Condition>, RuleError> {
    rule.conditions
        .iter()
        .map(|(key, pattern)| {
            let fold = PATHS_IGNORE_CASE && is_path_pattern(pattern);
            Ok(Condition {
                path: key.split('.').map(str::to_string).collect(),
                matcher: glob(text, &normalise(&nfc(pattern)), fold, true)?,
                is_path: is_path_pattern(pattern),
                pattern: pattern.clone(),
                aliases: Vec::new(),
            })
        })
        .collect()
}

impl RuleList {
    /// The compiled argument conditions of one rule (for grants scoped by a condition).
    pub fn conditions_of(rule_text: &str) -> Result<Vec<Condition>, RuleError> {
        compile_conditions(rule_text, &Rule::parse(rule_text)?)
    }

    /// Compiles rules; `restrictive` lists (deny, ask) ignore case and catch any element.
    pub fn compile(texts: &[String], restrictive: bool) -> Result<Self, RuleError> {
        let mut rules = Vec::with_capacity(texts.len());
        let mut builder = GlobSetBuilder::new();
        for text in texts {
            let rule = Rule::parse(text)?;
            builder.add(build_glob(text, &rule.pattern, restrictive, false)?);
            let client = rule.client.as_deref().map(|c| glob(text, c, true, false)).transpose()?;
            let request = rule.request.as_deref().map(|r| glob(text, r, true, false)).transpose()?;
            let conditions = compile_conditions(text, &rule)?;
            rules.push(Compiled { rule, client, request, conditions });
        }
        let set =
            builder.build().map_err(|e| RuleError::BadGlob { rule: String::from("<list>"), message: e.to_string() })?;
        Ok(RuleList { rules, set, quantifier: if restrictive { Quantifier::Any } else { Quantifier::All } })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule (in the order written) that matches the call.
    pub fn first_match(&self, subject: &Subject<'_>) -> Option<&Rule> {
        self.first_index(subject).map(|i| &self.rules[i].rule)
    }

    /// The rule at `index`, in the order written.
    pub fn text_at(&self, index: usize) -> &str {
        &self.rules[index].rule.text
    }

    /// The position of the first rule that matches the call.
    pub fn first_index(&self, subject: &Subject<'_>) -> Option<usize> {
        if self.rules.is_empty() {
            return None;
        }
        let mut hits: Vec<usize> = Vec::new();
        for name in subject.names {
            hits.extend(self.set.matches(name));
        }
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().find(|&i| self.selectors_match(&self.rules[i], subject))
    }

    /// Adds the other spellings of every path pattern (see [`Condition::alias_path`]).
    pub fn alias_paths(&mut self, alias: &dyn Fn(&str) -> Option<String>) {
        for c in &mut self.rules {
            for cond in &mut c.conditions {
                cond.alias_path(alias);
            }
        }
    }

    /// Every rule's text, in the order written.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| &c.rule)
    }

    fn selectors_match(&self, c: &Compiled, subject: &Subject<'_>) -> bool {
        let request = match (&c.request, subject.request) {
            (None, None) => true,
            (Some(glob), Some(method)) => glob.is_match(method),
            _ => false,
        };
        request
            && c.rule.class.is_none_or(|class| class == subject.class)
            && c.client.as_ref().is_none_or(|g| subject.clients.iter().any(|name| g.is_match(name)))
            && c.conditions.iter().all(|cond| cond.matches(subject.arguments, self.quantifier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(rules: &[&str], restrictive: bool) -> RuleList {
        RuleList::compile(&rules.iter().map(|s| s.to_string()).collect::<Vec<_>>(), restrictive).unwrap()
    }

    fn hit<'a>(l: &'a RuleList, name: &str, class: ToolClass, client: &str, args: Value) -> Option<&'a str> {
        let names = [name.to_string()];
        let clients = [client];
        l.first_match(&Subject { names: &names, class, clients: &clients, arguments: &args, request: None })
            .map(Rule::text)
    }

    fn name_hit<'a>(l: &'a RuleList, name: &str) -> Option<&'a str> {
        hit(l, name, ToolClass::Write, "cli", json!({}))
    }

    #[test]
    fn bare_server_covers_all_its_tools_and_no_other_server() {
        let l = list(&["mcp__fs"], false);
        assert!(name_hit(&l, "mcp__fs__read_file").is_some());
        assert!(name_hit(&l, "mcp__fsx__read_file").is_none());
    }

    #[test]
    fn globs_match_tool_names() {
        let l = list(&["mcp__fs__delete*", "mcp__*__drop_?"], false);
        assert_eq!(name_hit(&l, "mcp__fs__delete_file"), Some("mcp__fs__delete*"));
        assert_eq!(name_hit(&l, "mcp__db__drop_x"), Some("mcp__*__drop_?"));
        assert!(name_hit(&l, "mcp__fs__read_file").is_none());
    }

    #[test]
    fn restrictive_lists_ignore_case() {
        let l = list(&["mcp__fs__delete_file"], true);
        assert!(name_hit(&l, "mcp__fs__Delete_File").is_some());
        let exact = list(&["mcp__fs__delete_file"], false);
        assert!(name_hit(&exact, "mcp__fs__Delete_File").is_none());
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert_eq!(Rule::parse("fs__x"), Err(RuleError::MissingPrefix("fs__x".into())));
        assert_eq!(Rule::parse("mcp__"), Err(RuleError::EmptyServer("mcp__".into())));
        assert_eq!(Rule::parse("mcp__fs__"), Err(RuleError::EmptyTool("mcp__fs__".into())));
        assert!(matches!(Rule::parse("class:harmless"), Err(RuleError::UnknownClass { .. })));
        assert!(matches!(Rule::parse("mcp__fs__w(path)"), Err(RuleError::BadCondition { .. })));
        assert!(matches!(Rule::parse("mcp__fs__w(path=/x"), Err(RuleError::Unclosed { .. })));
        assert!(matches!(Rule::parse("class:read class:write"), Err(RuleError::Repeated { .. })));
        assert!(matches!(Rule::parse("user:bob"), Err(RuleError::UnknownSelector { .. })));
        assert!(matches!(Rule::parse("  "), Err(RuleError::Empty(_))));
        let err = RuleList::compile(&["mcp__fs__[".to_string()], false).unwrap_err();
        assert!(matches!(err, RuleError::BadGlob { .. }), "{err:?}");
    }

    #[test]
    fn first_written_rule_wins() {
        let l = list(&["mcp__fs__*", "mcp__fs__write_file"], false);
        assert_eq!(name_hit(&l, "mcp__fs__write_file"), Some("mcp__fs__*"));
    }

    #[test]
    fn class_and_client_selectors() {
        let l = list(&["class:write client:cursor", "mcp__gh class:destructive"], true);
        assert_eq!(
            hit(&l, "mcp__fs__write_file", ToolClass::Write, "Cursor", json!({})),
            Some("class:write client:cursor")
        );
        assert_eq!(hit(&l, "mcp__fs__write_file", ToolClass::Write, "claude-code", json!({})), None);
        assert_eq!(
            hit(&l, "mcp__gh__delete_repo", ToolClass::Destructive, "x", json!({})),
            Some("mcp__gh class:destructive")
        );
        assert_eq!(hit(&l, "mcp__fs__delete", ToolClass::Destructive, "x", json!({})), None);
    }

    #[test]
    fn argument_conditions_with_paths() {
        let allow = list(&["mcp__fs__write_file(path=/work/**)"], false);
        let w = |args| hit(&allow, "mcp__fs__write_file", ToolClass::Write, "c", args);
        assert!(w(json!({"path": "/work/a/b.txt"})).is_some());
        assert!(w(json!({"path": "/work/../etc/passwd"})).is_none(), "`..` is resolved before matching");
        assert!(w(json!({"path": "/workshop/x"})).is_none());
        assert!(w(json!({})).is_none(), "a missing argument never matches");
        let one = list(&["mcp__fs__read_multiple_files(paths=/work/*)"], false);
        let r = |args| hit(&one, "mcp__fs__read_multiple_files", ToolClass::Read, "c", args);
        assert!(r(json!({"paths": ["/work/a", "/work/b"]})).is_some());
        assert!(r(json!({"paths": ["/work/a", "/etc/shadow"]})).is_none(), "allow needs every element");
        assert!(r(json!({"paths": ["/work/a/deeper"]})).is_none(), "`*` stays within one directory");
        let deny = list(&["mcp__fs__read_multiple_files(paths=/etc/**)"], true);
        let d = |args| hit(&deny, "mcp__fs__read_multiple_files", ToolClass::Read, "c", args);
        assert!(d(json!({"paths": ["/work/a", "/etc/shadow"]})).is_some(), "deny catches any element");
    }

    #[test]
    fn nested_and_scalar_conditions() {
        let l = list(&["mcp__git__*(repo.name=acme/*, force=false)"], false);
        let g = |args| hit(&l, "mcp__git__push", ToolClass::Write, "c", args);
        assert!(g(json!({"repo": {"name": "acme/api"}, "force": false})).is_some());
        assert!(g(json!({"repo": {"name": "acme/api"}, "force": true})).is_none());
        assert!(g(json!({"repo": {"name": "other/api"}, "force": false})).is_none());
    }

    #[test]
    fn a_number_matches_whatever_its_spelling() {
        let deny = list(&["mcp__x__y(level=5)"], true);
        for spelling in ["5", "5.0", "5e0", "50e-1"] {
            let args: Value = serde_json::from_str(&format!(r#"{{"level": {spelling}}}"#)).unwrap();
            assert!(hit(&deny, "mcp__x__y", ToolClass::Write, "c", args).is_some(), "{spelling}");
        }
        assert!(hit(&deny, "mcp__x__y", ToolClass::Write, "c", json!({"level": 5.5})).is_none());
    }

    #[test]
    fn request_rules_match_only_a_servers_requests() {
        let l = list(&["mcp__sketchy request:sampling/*"], true);
        let names = ["mcp__sketchy__sampling/createMessage".to_string()];
        let subject = |request| Subject {
            names: &names,
            class: ToolClass::Read,
            clients: &["c"],
            arguments: &Value::Null,
            request,
        };
        assert!(l.first_match(&subject(Some("sampling/createMessage"))).is_some());
        assert!(l.first_match(&subject(Some("elicitation/create"))).is_none());
        assert!(l.first_match(&subject(None)).is_none(), "never a tool call");
        assert!(name_hit(&l, "mcp__sketchy__write_file").is_none());
        assert!(matches!(Rule::parse("request:"), Err(RuleError::UnknownSelector { .. })));
        assert!(Rule::parse("mcp__x request:sampling/* request:x").is_err());
    }

    #[test]
    fn an_unresolved_value_is_caught_by_restrictive_lists_only() {
        let deny = list(&["mcp__fs__read_file(path=/x/secret/**)"], true);
        let allow = list(&["mcp__fs__read_file(path=/x/**)"], false);
        let unknown = json!({"path": null});
        assert!(hit(&deny, "mcp__fs__read_file", ToolClass::Read, "c", unknown.clone()).is_some());
        assert!(hit(&allow, "mcp__fs__read_file", ToolClass::Read, "c", unknown).is_none());
        let some_unknown = json!({"path": ["/x/a", null]});
        assert!(hit(&deny, "mcp__fs__read_file", ToolClass::Read, "c", some_unknown.clone()).is_some());
        assert!(hit(&allow, "mcp__fs__read_file", ToolClass::Read, "c", some_unknown).is_none());
    }

    #[test]
    fn composed_and_decomposed_spellings_are_one_name() {
        let deny = list(&["mcp__fs__read_file(path=/x/caf\u{e9}/**)"], true);
        let nfd = json!({"path": "/x/cafe\u{301}/menu.txt"});
        assert!(hit(&deny, "mcp__fs__read_file", ToolClass::Read, "c", nfd).is_some());
        let rule = Rule::parse("mcp__fs__x(path=/a/**, mode=fast, dir=~/b)").unwrap();
        assert_eq!(rule.path_keys().collect::<Vec<_>>(), ["path", "dir"]);
    }

    #[test]
    fn normalising_paths() {
        assert_eq!(normalise("/a/./b/../c"), "/a/c");
        assert_eq!(normalise("/../../etc"), "/etc");
        assert_eq!(normalise("//a//b/"), "/a/b");
        assert_eq!(normalise("a/../../b"), "../b");
        assert_eq!(normalise("acme/api"), "acme/api");
        if cfg!(windows) {
            assert_eq!(normalise("C:\\work\\..\\x"), "C:/x");
        } else {
            // One file name, `..\\x`, not a way out of the folder.
            assert_eq!(normalise("/w/site/..\\evil"), "/w/site/..\\evil");
            assert_eq!(normalise("/w/a/..\\..\\b/c"), "/w/a/..\\..\\b/c");
        }
    }
}
