//! Edits the user's own config file for the settings a person changes in the app (class
//! overrides under `[policy.classify]`) and for `countersign secret import` (a plaintext
//! value replaced by a keychain reference), keeping everything else in the file as written:
//! comments, order, formatting. The edited text must parse as a valid configuration
//! before it replaces the file, and it replaces it atomically; a file that does not
//! parse is never touched. Managed policy is never written here.

use crate::config::Config;
use countersign_policy::ToolClass;
use countersign_vault::{SecretName, Setting};
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

/// A server definition to add, its settings plain or keychain references.
#[derive(Debug, Clone)]
pub enum NewServer {
    Stdio { command: String, args: Vec<String>, env: Vec<(String, Setting)>, cwd: Option<String> },
    Http { url: String, headers: Vec<(String, Setting)> },
}

fn settings_table(settings: &[(String, Setting)]) -> toml_edit::InlineTable {
    let mut table = toml_edit::InlineTable::new();
    for (k, v) in settings {
        let value: toml_edit::Value = match v {
            Setting::Plain(text) => text.as_str().into(),
            Setting::Secret(r) => {
                let mut reference = toml_edit::InlineTable::new();
                reference.insert("secret", r.secret.as_str().into());
                if let Some(f) = &r.format {
                    reference.insert("format", f.as_str().into());
                }
                reference.into()
            }
        };
        table.insert(k, value);
    }
    table
}

/// Adds `[servers.NAME]`, with `note` as a comment above it; the file is made when absent.
/// A server of that name already there is an error, never overwritten. With `project`, the
/// server serves only that project folder's own entries (`project = DIR`).
pub fn add_server(
    path: &Path,
    name: &str,
    server: &NewServer,
    project: Option<&Path>,
    note: &str,
) -> Result<(), EditError> {
    edit(path, |doc| {
        let servers = doc.entry("servers").or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        });
        let servers = servers.as_table_mut().ok_or_else(|| EditError::Invalid("`servers` is not a table".into()))?;
        if servers.contains_key(name) {
            return Err(EditError::Invalid(format!("a server named `{name}` is configured already")));
        }
        let mut t = toml_edit::Table::new();
        match server {
            NewServer::Stdio { command, args, env, cwd } => {
                t.insert("command", toml_edit::value(command.as_str()));
                t.insert("args", toml_edit::value(args.iter().map(String::as_str).collect::<toml_edit::Array>()));
                if !env.is_empty() {
                    t.insert("env", toml_edit::value(settings_table(env)));
                }
                if let Some(c) = cwd {
                    t.insert("cwd", toml_edit::value(c.as_str()));
                }
            }
            NewServer::Http { url, headers } => {
                t.insert("url", toml_edit::value(url.as_str()));
                if !headers.is_empty() {
                    t.insert("headers", toml_edit::value(settings_table(headers)));
                }
            }
        }
        if let Some(p) = project {
            let p = p.to_str().ok_or_else(|| EditError::Invalid(format!("{} is not UTF-8", p.display())))?;
            t.insert("project", toml_edit::value(p));
        }
        t.decor_mut().set_prefix(format!("\n# {note}\n"));
        servers.insert(name, toml_edit::Item::Table(t));
        Ok(())
    })
}

/// Removes `[servers.NAME]`; true when it was there.
pub fn remove_server(path: &Path, name: &str) -> Result<bool, EditError> {
    let mut removed = false;
    edit(path, |doc| {
        removed = doc.get_mut("servers").and_then(|s| s.as_table_like_mut()).and_then(|s| s.remove(name)).is_some();
        Ok(())
    })?;
    Ok(removed)
}

/// Reads the file (none yet reads as empty), applies `change`, checks the result is a
/// valid configuration and replaces the file atomically with the file's permissions kept.
fn edit(
    path: &Path,
    change: impl FnOnce(&mut toml_edit::DocumentMut) -> Result<(), EditError>,
) -> Result<(), EditError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(EditError::Io { path: shown, source }),
    };
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
    fn a_server_is_added_with_references_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let reference =
            countersign_vault::SecretRef { secret: SecretName::new("brave-brave-api-key").unwrap(), format: None };
        let server = NewServer::Stdio {
            command: "npx".into(),
            args: vec!["-y".into(), "brave".into()],
            env: vec![("BRAVE_API_KEY".into(), Setting::Secret(reference)), ("LOG".into(), Setting::Plain("1".into()))],
            cwd: None,
        };
        add_server(&path, "brave", &server, None, "from Windsurf").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "\n# from Windsurf\n[servers.brave]\ncommand = \"npx\"\nargs = [\"-y\", \"brave\"]\nenv = { BRAVE_API_KEY = { secret = \"brave-brave-api-key\" }, LOG = \"1\" }\n"
        );
        assert!(add_server(&path, "brave", &server, None, "again").is_err(), "never overwritten");
        assert!(remove_server(&path, "brave").unwrap());
        assert!(Config::load(&path).unwrap().servers.is_empty());
        let repo = Path::new("/home/ana/src/repo");
        add_server(&path, "helper", &server, Some(repo), "from the project /home/ana/src/repo").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.servers["helper"].project.as_deref(), Some(repo));
        let scope = c.servers["helper"].info.scope.clone().expect("scoped to the project");
        assert_eq!(scope.client_token, crate::tokens::project_token_name(repo));
        assert!(remove_server(&path, "helper").unwrap());
        assert!(!remove_server(&path, "brave").unwrap());
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
