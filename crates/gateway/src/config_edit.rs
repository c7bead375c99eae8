//! Edits the user's own config file for the settings a person changes in the app (class
//! overrides under `[policy.classify]`) and for `countersign secret import` (a plaintext
//! value replaced by a keychain reference), keeping everything else in the file as written:
//! comments, order, formatting. The edited text must parse as a valid configuration
//! before it replaces the file, and it replaces it atomically; a file that does not
//! parse is never touched. Managed policy is never written here.

use crate::config::Config;
use countersign_policy::ToolClass;
use countersign_vault::SecretName;
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
    edit(path, |doc| {
        let policy = doc.entry("policy").or_insert(toml_edit::table());
        let policy = policy.as_table_mut().ok_or_else(|| EditError::Invalid("`policy` is not a table".into()))?;
        let classify = policy.entry("classify").or_insert(toml_edit::table());
        let classify = classify
            .as_table_like_mut()
            .ok_or_else(|| EditError::Invalid("`policy.classify` is not a table".into()))?;
        match class {
            Some(c) => {
                classify.insert(pattern, toml_edit::value(c.as_str()));
            }
            None => {
                classify.remove(pattern);
            }
        }
        Ok(())
    })
}

/// Replaces `servers.SERVER.TABLE.KEY` (a plaintext value) with a reference to the
/// keychain secret `name`, in `format` when given (such as `Bearer {}`).
pub fn set_secret_reference(
    path: &Path,
    server: &str,
    table: &str,
    key: &str,
    name: &SecretName,
    format: Option<&str>,
) -> Result<(), EditError> {
    edit(path, |doc| {
        let missing = || EditError::Invalid(format!("servers.{server}.{table}.{key} is not in the file"));
        let settings = doc
            .get_mut("servers")
            .and_then(|s| s.get_mut(server))
            .and_then(|s| s.get_mut(table))
            .and_then(|t| t.as_table_like_mut())
            .ok_or_else(missing)?;
        let slot = settings.get_mut(key).ok_or_else(missing)?;
        let mut reference = toml_edit::InlineTable::new();
        reference.insert("secret", name.as_str().into());
        if let Some(f) = format {
            reference.insert("format", f.into());
        }
        *slot = toml_edit::value(reference);
        Ok(())
    })
}

/// Reads the file, applies `change`, checks the result is a valid configuration and
/// replaces the file atomically with the file's permissions kept.
fn edit(
    path: &Path,
    change: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<(), EditError>,
) -> Result<(), EditError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EditError::Io { path: shown.clone(), source })?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse { path: shown.clone(), message: e.to_string() })?;
    change(&mut doc)?;
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
    fn a_plaintext_value_becomes_a_reference_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let original = "[servers.gh] # GitHub\ncommand = \"gh-mcp\"\nenv = { GITHUB_TOKEN = \"ghp_x\", LOG = \"1\" }\n";
        std::fs::write(&path, original).unwrap();
        let name = SecretName::new("gh-token").unwrap();
        set_secret_reference(&path, "gh", "env", "GITHUB_TOKEN", &name, None).unwrap();
        let edited = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            edited,
            "[servers.gh] # GitHub\ncommand = \"gh-mcp\"\nenv = { GITHUB_TOKEN = { secret = \"gh-token\" }, LOG = \"1\" }\n"
        );
        assert!(!edited.contains("ghp_x"));
        assert!(set_secret_reference(&path, "gh", "env", "NOPE", &name, None).is_err());
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
