//! Heuristics, the weakest source: words in a tool's name, description and input schema,
//! and what a call's arguments say (SQL statements, shell commands). They can only make a
//! tool stricter: no heuristic ever makes anything `read`, so an unknown tool with no
//! trusted annotation is at least `write`.

use crate::class::{ClassSource, Classification, ToolClass};
use crate::input::ToolDef;
use serde_json::Value;

const DESTRUCTIVE_WORDS: &[&str] = &[
    "delete",
    "remove",
    "rm",
    "drop",
    "purge",
    "truncate",
    "force",
    "reset",
    "revoke",
    "destroy",
    "wipe",
    "erase",
    "terminate",
    "kill",
    "uninstall",
    "overwrite",
    "prune",
    "nuke",
];
const SENSITIVE_WORDS: &[(&str, &str)] = &[
    ("secret", "credentials"),
    ("secrets", "credentials"),
    ("password", "credentials"),
    ("passwords", "credentials"),
    ("credential", "credentials"),
    ("credentials", "credentials"),
    ("token", "credentials"),
    ("tokens", "credentials"),
    ("apikey", "credentials"),
    ("env", "credentials"),
    ("ssn", "personal"),
    ("pii", "personal"),
    ("salary", "personal"),
    ("payment", "payments"),
    ("payments", "payments"),
    ("card", "payments"),
    ("billing", "payments"),
    ("invoice", "payments"),
    ("refund", "payments"),
];
const SHELL_WORDS: &[&str] = &["shell", "exec", "bash", "terminal", "command", "cmd", "powershell", "sh", "eval"];
const DESTRUCTIVE_PHRASES: &[&str] = &["permanently", "irreversibl", "cannot be undone", "can not be undone"];

/// Splits an identifier into lower-case words: `deleteRepo`, `delete_repo`, `delete-repo`
/// all give `delete`, `repo`.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in text.chars() {
        if !ch.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What the tool's definition suggests, when it suggests anything stricter than `write`.
pub fn from_definition(def: &ToolDef) -> Option<Classification> {
    let name_words = words(&def.name);
    if let Some(w) = name_words.iter().find(|w| DESTRUCTIVE_WORDS.contains(&w.as_str())) {
        return Some(Classification::new(
            ToolClass::Destructive,
            ClassSource::Heuristic,
            format!("its name says `{w}`"),
        ));
    }
    let description = def.description.to_lowercase();
    if let Some(p) = DESTRUCTIVE_PHRASES.iter().find(|p| description.contains(*p)) {
        return Some(Classification::new(
            ToolClass::Destructive,
            ClassSource::Heuristic,
            format!("its description says \"{p}\""),
        ));
    }
    let sensitive = name_words
        .iter()
        .chain(def.argument_names().flat_map(words).collect::<Vec<_>>().iter())
        .find_map(|w| SENSITIVE_WORDS.iter().find(|(s, _)| s == w))
        .copied();
    if let Some((word, label)) = sensitive {
        let mut c = Classification::new(
            ToolClass::Sensitive,
            ClassSource::Heuristic,
            format!("its name or arguments mention `{word}`"),
        );
        c.label = Some(label.to_string());
        return Some(c);
    }
    None
}

/// Whether the tool looks like it runs shell commands or code.
pub fn runs_commands(def: &ToolDef) -> bool {
    words(&def.name).iter().any(|w| SHELL_WORDS.contains(&w.as_str()))
}

/// Argument names whose values are read as SQL or shell text.
const STATEMENT_KEYS: &[&str] = &["sql", "query", "statement", "command", "cmd", "script", "code"];

/// What the call's own arguments say: data-changing SQL or a destructive shell command
/// in an argument meant to carry one.
pub fn from_arguments(arguments: &Value) -> Option<Classification> {
    let Value::Object(map) = arguments else { return None };
    let mut worst: Option<Classification> = None;
    for (key, value) in map {
        let Some(text) = value.as_str() else { continue };
        if !STATEMENT_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k) || key.to_lowercase().ends_with(k)) {
            continue;
        }
        if let Some(c) = classify_statement(key, text) {
            if worst.as_ref().is_none_or(|w| c.class > w.class) {
                worst = Some(c);
            }
        }
    }
    worst
}

const SQL_DESTRUCTIVE: &[&str] = &["drop", "truncate", "delete", "alter", "revoke"];
const SQL_WRITE: &[&str] = &["insert", "update", "create", "grant", "merge", "upsert", "replace", "copy", "call"];
const SHELL_DESTRUCTIVE: &[&str] = &["rm", "rmdir", "mkfs", "dd", "shred", "kill", "pkill", "killall"];

fn classify_statement(key: &str, text: &str) -> Option<Classification> {
    let tokens = words(text);
    let lowered = text.to_lowercase();
    let found = |list: &[&str]| tokens.iter().find(|t| list.contains(&t.as_str())).cloned();
    if let Some(w) = found(SQL_DESTRUCTIVE).or_else(|| found(SHELL_DESTRUCTIVE)) {
        return Some(Classification::new(
            ToolClass::Destructive,
            ClassSource::Heuristic,
            format!("its `{key}` argument contains `{}`", w.to_uppercase()),
        ));
    }
    if lowered.contains("--force") || lowered.contains("push -f") || lowered.contains("reset --hard") {
        return Some(Classification::new(
            ToolClass::Destructive,
            ClassSource::Heuristic,
            format!("its `{key}` argument forces a change"),
        ));
    }
    if let Some(w) = found(SQL_WRITE) {
        return Some(Classification::new(
            ToolClass::Write,
            ClassSource::Heuristic,
            format!("its `{key}` argument contains `{}`", w.to_uppercase()),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(name: &str, description: &str, schema: Value) -> ToolDef {
        ToolDef { name: name.into(), description: description.into(), input_schema: schema, ..Default::default() }
    }

    #[test]
    fn identifiers_split_into_words() {
        assert_eq!(words("deleteRepo"), ["delete", "repo"]);
        assert_eq!(words("delete-repo_now"), ["delete", "repo", "now"]);
        assert_eq!(words("HTTPGet"), ["httpget"]);
    }

    #[test]
    fn destructive_names_and_descriptions() {
        for name in ["delete_repo", "purgeCache", "drop-table", "force_push", "reset_db", "revoke_key"] {
            assert_eq!(from_definition(&def(name, "", Value::Null)).unwrap().class, ToolClass::Destructive, "{name}");
        }
        let d = def("tidy", "Permanently removes old rows.", Value::Null);
        assert_eq!(from_definition(&d).unwrap().class, ToolClass::Destructive);
        // "deleted" as a word inside another is not "delete".
        assert!(from_definition(&def("list_undeleted", "", Value::Null)).is_none());
    }

    #[test]
    fn sensitive_names_and_arguments_get_a_label() {
        let c = from_definition(&def("get_secret", "", Value::Null)).unwrap();
        assert_eq!((c.class, c.label.as_deref()), (ToolClass::Sensitive, Some("credentials")));
        let schema = json!({"type": "object", "properties": {"cardNumber": {"type": "string"}}});
        let c = from_definition(&def("charge", "", schema)).unwrap();
        assert_eq!((c.class, c.label.as_deref()), (ToolClass::Sensitive, Some("payments")));
    }

    #[test]
    fn sql_and_shell_in_arguments() {
        let class = |args: Value| from_arguments(&args).map(|c| c.class);
        assert_eq!(class(json!({"sql": "DROP TABLE users"})), Some(ToolClass::Destructive));
        assert_eq!(class(json!({"query": "delete from t where 1=1"})), Some(ToolClass::Destructive));
        assert_eq!(class(json!({"query": "INSERT INTO t VALUES (1)"})), Some(ToolClass::Write));
        assert_eq!(class(json!({"query": "SELECT * FROM t"})), None);
        assert_eq!(class(json!({"command": "rm -rf /"})), Some(ToolClass::Destructive));
        assert_eq!(class(json!({"command": "git push --force"})), Some(ToolClass::Destructive));
        // Free text in an ordinary argument is not read as a statement.
        assert_eq!(class(json!({"content": "DROP TABLE users"})), None);
    }
}
