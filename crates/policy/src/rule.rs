//! One permission rule in Claude Code's syntax, and a compiled list of them.
//!
//! `mcp__server` matches every tool of `server`; `mcp__server__tool` one tool; `*` and `?`
//! are globs anywhere after `mcp__`. Lists that restrict (deny, ask) match without regard
//! to case, so `Delete_File` cannot slip past a rule written for `delete_file`; the allow
//! list matches exactly. Never matches anything but the `mcp__server__tool` name.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("rule `{0}` must start with `mcp__` (for example `mcp__filesystem__write_file`)")]
    MissingPrefix(String),
    #[error("rule `{0}` names no server after `mcp__`")]
    EmptyServer(String),
    #[error("rule `{0}` has an empty tool name after the server")]
    EmptyTool(String),
    #[error("rule `{rule}` is not a valid glob: {message}")]
    BadGlob { rule: String, message: String },
}

/// A parsed rule: the text as written and the glob it matches `mcp__server__tool` against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    text: String,
    pattern: String,
}

impl Rule {
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let trimmed = text.trim();
        let rest = trimmed.strip_prefix("mcp__").ok_or_else(|| RuleError::MissingPrefix(text.to_string()))?;
        let (server, tool) = match rest.split_once("__") {
            Some((server, tool)) => (server, Some(tool)),
            None => (rest, None),
        };
        if server.is_empty() {
            return Err(RuleError::EmptyServer(text.to_string()));
        }
        let pattern = match tool {
            Some("") => return Err(RuleError::EmptyTool(text.to_string())),
            Some(tool) => format!("mcp__{server}__{tool}"),
            // A bare server (or a server glob such as `mcp__*`) covers all its tools.
            None => format!("mcp__{server}__*"),
        };
        Ok(Rule { text: trimmed.to_string(), pattern })
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The full name a rule is matched against.
pub fn qualified_name(server: &str, tool: &str) -> String {
    format!("mcp__{server}__{tool}")
}

/// A list of rules compiled into one matcher.
#[derive(Debug, Clone)]
pub struct RuleList {
    rules: Vec<Rule>,
    set: GlobSet,
}

impl RuleList {
    pub fn compile(texts: &[String], case_insensitive: bool) -> Result<Self, RuleError> {
        let mut rules = Vec::with_capacity(texts.len());
        let mut builder = GlobSetBuilder::new();
        for text in texts {
            let rule = Rule::parse(text)?;
            let glob = GlobBuilder::new(&rule.pattern)
                .case_insensitive(case_insensitive)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|e| RuleError::BadGlob { rule: text.clone(), message: e.kind().to_string() })?;
            builder.add(glob);
            rules.push(rule);
        }
        let set =
            builder.build().map_err(|e| RuleError::BadGlob { rule: String::from("<list>"), message: e.to_string() })?;
        Ok(RuleList { rules, set })
    }

    /// The first rule (in the order written) that matches `name`.
    pub fn first_match(&self, name: &str) -> Option<&Rule> {
        if self.rules.is_empty() {
            return None;
        }
        self.set.matches(name).into_iter().min().map(|i| &self.rules[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str], ci: bool) -> RuleList {
        RuleList::compile(&rules.iter().map(|s| s.to_string()).collect::<Vec<_>>(), ci).unwrap()
    }

    #[test]
    fn bare_server_covers_all_its_tools_and_no_other_server() {
        let l = list(&["mcp__fs"], false);
        assert!(l.first_match("mcp__fs__read_file").is_some());
        assert!(l.first_match("mcp__fsx__read_file").is_none());
    }

    #[test]
    fn globs_match_tool_names() {
        let l = list(&["mcp__fs__delete*", "mcp__*__drop_?"], false);
        assert_eq!(l.first_match("mcp__fs__delete_file").unwrap().text(), "mcp__fs__delete*");
        assert_eq!(l.first_match("mcp__db__drop_x").unwrap().text(), "mcp__*__drop_?");
        assert!(l.first_match("mcp__fs__read_file").is_none());
    }

    #[test]
    fn restrictive_lists_ignore_case() {
        let l = list(&["mcp__fs__delete_file"], true);
        assert!(l.first_match("mcp__fs__Delete_File").is_some());
        let exact = list(&["mcp__fs__delete_file"], false);
        assert!(exact.first_match("mcp__fs__Delete_File").is_none());
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert_eq!(Rule::parse("fs__x"), Err(RuleError::MissingPrefix("fs__x".into())));
        assert_eq!(Rule::parse("mcp__"), Err(RuleError::EmptyServer("mcp__".into())));
        assert_eq!(Rule::parse("mcp__fs__"), Err(RuleError::EmptyTool("mcp__fs__".into())));
        let err = RuleList::compile(&["mcp__fs__[".to_string()], false).unwrap_err();
        assert!(matches!(err, RuleError::BadGlob { .. }), "{err:?}");
    }

    #[test]
    fn first_written_rule_wins() {
        let l = list(&["mcp__fs__*", "mcp__fs__write_file"], false);
        assert_eq!(l.first_match("mcp__fs__write_file").unwrap().text(), "mcp__fs__*");
    }
}
