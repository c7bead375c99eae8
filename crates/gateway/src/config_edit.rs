//! Edits the user's own config file for the settings a person changes in the app (class
//! overrides under `[policy.classify]`), keeping everything else in the file as written:
//! comments, order, formatting. The edited text must parse as a valid configuration
//! before it replaces the file, and it replaces it atomically; a file that does not
//! parse is never touched. Managed policy is never written here.

use crate::config::Config;
use countersign_policy::ToolClass;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not TOML, left untouched: {message}")]
    Parse { path: String, message: String },
    #[error("the edit would make the configuration invalid, so it was not written: {0}")]
    Invalid(String),
}

/// Sets (or, with `None`, removes) the class override for `pattern` in the user's file.
pub fn set_class_override(path: &Path, pattern: &str, class: Option<ToolClass>) -> Result<(), EditError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EditError::Io { path: shown.clone(), source })?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse { path: shown.clone(), message: e.to_string() })?;
    let policy = doc.entry("policy").or_insert(toml_edit::table());
    let policy = policy.as_table_mut().ok_or_else(|| EditError::Invalid("`policy` is not a table".into()))?;
    let classify = policy.entry("classify").or_insert(toml_edit::table());
    let classify =
        classify.as_table_like_mut().ok_or_else(|| EditError::Invalid("`policy.classify` is not a table".into()))?;
    match class {
        Some(c) => {
            classify.insert(pattern, toml_edit::value(c.as_str()));
        }
        None => {
            classify.remove(pattern);
        }
    }
    let edited = doc.to_string();
    Config::parse(&edited, Some(path)).map_err(|e| EditError::Invalid(e.to_string()))?;
    let tmp = path.with_extension(format!("edit{}", std::process::id()));
    let io = |source| EditError::Io { path: shown.clone(), source };
    std::fs::write(&tmp, edited).map_err(io)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_is_added_and_removed_keeping_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let original =
            "# my gateway\n[gateway]\nlisten = \"127.0.0.1:0\" # loopback\n\n[policy]\nallow = [\"mcp__fs__read*\"]\n";
        std::fs::write(&path, original).unwrap();
        set_class_override(&path, "mcp__fs__write_file", Some(ToolClass::Destructive)).unwrap();
        let edited = std::fs::read_to_string(&path).unwrap();
        assert!(edited.starts_with("# my gateway\n[gateway]\nlisten = \"127.0.0.1:0\" # loopback\n"), "{edited}");
        let c = Config::parse(&edited, None).unwrap();
        assert_eq!(c.policy.classify["mcp__fs__write_file"].class(), ToolClass::Destructive);
        assert_eq!(c.policy.allow, vec!["mcp__fs__read*"]);
        set_class_override(&path, "mcp__fs__write_file", None).unwrap();
        let c = Config::load(&path).unwrap();
        assert!(c.policy.classify.is_empty());
    }

    #[test]
    fn a_broken_file_is_never_touched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[policy\n").unwrap();
        assert!(matches!(set_class_override(&path, "mcp__a__b", Some(ToolClass::Write)), Err(EditError::Parse { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[policy\n");
    }
}
