//! Arguments as the server will read them. A rule such as
//! `deny = ["mcp__fs__read_file(path=/x/secret/**)"]` is about the file the server opens,
//! not the text the client wrote: `secret/a.txt` (relative to the server's root),
//! `./secret/a.txt`, a symlink under an allowed folder, or a decomposed-Unicode spelling
//! all name the same file. For the arguments a condition reads as a file path, this
//! module resolves each value the way a local file server does (the `file://` scheme
//! decoded, `~` expanded, a relative value joined to the first of the server's root
//! folders it stays inside, `.` and `..` removed, every symlink followed, a missing
//! name matched to an existing one with the same NFC form) and hands the policy the
//! result. A value it cannot resolve (a loop, a permission error, an ambiguous name, a
//! relative path on a remote server, a non-string) becomes `null`, which deny and ask
//! conditions catch and allow conditions never match: it fails closed.
//!
//! Roots are what the gateway knows of a local server: the folders named in its
//! arguments (as `@modelcontextprotocol/server-filesystem` takes them), else its working
//! folder, replaced by the roots the client gave it when it asked (only roots inside the
//! configured folders are passed on: see `narrow_roots`). Every argument named like a file
//! ([`FILE_KEYS`]) is resolved for a local server: a condition on `path` covers every file
//! the call names, and the caller refuses any call that names Countersign's own data
//! folder. Path patterns in rules get the same treatment once, when the policy compiles
//! ([`pattern_alias`]: `~` expanded, links in the fixed part followed).
//!
//! Must never: change what is forwarded (the client's arguments go upstream as sent), or
//! follow more than it must (bounded names, bounded directory scans).

use crate::config::{ServerConfig, Transport};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Longest path resolved; longer ones are not resolved (fail closed).
const MAX_PATH: usize = 4096;
/// Most entries scanned in one directory to match a name by its NFC form.
const MAX_SCAN: usize = 10_000;

/// Arguments taken to name files, whatever a rule says (the policy's list: a similar
/// grant's folder bounds every one of them too).
pub use countersign_policy::FILE_KEYS;

/// Where a server reads relative paths from.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The folders the server was given (absolute, symlinks resolved), in order.
    dirs: Vec<PathBuf>,
    /// Its working folder.
    cwd: Option<PathBuf>,
    /// Whether its files are this machine's (a stdio server) or another's (remote).
    local: bool,
}

impl Roots {
    /// A server's roots from its configuration.
    pub fn of(server: &ServerConfig) -> Roots {
        match &server.transport {
            Transport::Stdio { args, cwd, .. } => {
                let dirs = args
                    .iter()
                    .map(Path::new)
                    .filter(|p| p.is_absolute())
                    .filter_map(|p| std::fs::canonicalize(p).ok())
                    .filter(|p| p.is_dir())
                    .collect();
                let cwd = cwd.clone().or_else(|| std::env::current_dir().ok());
                Roots { dirs, cwd, local: true }
            }
            Transport::Http { .. } => Roots { dirs: Vec::new(), cwd: None, local: false },
        }
    }

    /// The roots after the client answered the server's `roots/list` with `given` (a file
    /// server replaces its folders with the client's roots).
    pub fn with_client(mut self, given: Option<&[PathBuf]>) -> Roots {
        if let Some(given) = given.filter(|g| !g.is_empty()) {
            self.dirs = given.to_vec();
        }
        self
    }

    #[cfg(test)]
    fn local(dirs: &[&Path]) -> Roots {
        let dirs = dirs.iter().map(|d| std::fs::canonicalize(d).unwrap()).collect();
        Roots { dirs, cwd: None, local: true }
    }
}

/// A call's arguments as the server will read them.
#[derive(Debug, Default)]
pub struct ReadAs {
    /// The arguments for conditions: values under keys a condition reads as a path are
    /// resolved (`null` when they cannot be), and `path` lists every file the call names.
    /// `None`: nothing to resolve; conditions read the arguments as sent.
    pub resolved: Option<Value>,
    /// Every file the call names, resolved (`None` for one that could not be).
    pub files: Vec<Option<String>>,
}

/// The arguments of one call as the server will read them: for a local server every
/// file argument is resolved; conditions see the resolved values of the keys they read
/// as paths, and a condition on `path` sees every file the call names.
pub fn read_as_server(
    policy: &countersign_policy::Policy,
    grants: &countersign_policy::GrantBook,
    local: bool,
    roots: impl FnOnce() -> Roots,
    arguments: &Value,
) -> ReadAs {
    let present = |k: &str| arguments.get(k.split('.').next().unwrap_or_default()).is_some();
    let mut condition_keys: BTreeSet<String> = policy.path_keys().iter().filter(|k| present(k)).cloned().collect();
    let path_rule = policy.path_keys().contains("path") || grants.path_keys().any(|k| k == "path");
    condition_keys.extend(grants.path_keys().filter(|k| present(k)));
    let mut file_keys: BTreeSet<String> = FILE_KEYS.iter().filter(|k| present(k)).map(|k| k.to_string()).collect();
    if local {
        file_keys.extend(condition_keys.iter().cloned());
    }
    if condition_keys.is_empty() && (file_keys.is_empty() || !local) {
        // Nothing names a file or is judged as a path: no roots to look up, no disk touched.
        return ReadAs::default();
    }
    let roots = &roots();
    let mut read = ReadAs::default();
    let mut view = arguments.clone();
    let mut every = Vec::new();
    for key in file_keys.iter().chain(condition_keys.iter().filter(|k| !file_keys.contains(*k))) {
        let path: Vec<&str> = key.split('.').collect();
        let Some(value) = lookup(arguments, &path) else { continue };
        let resolved = match value {
            Value::Array(items) => Value::Array(items.iter().map(|v| resolve_value(v, roots)).collect()),
            v => resolve_value(v, roots),
        };
        let each: Vec<&Value> = match &resolved {
            Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in each {
            read.files.push(v.as_str().map(str::to_string));
            every.push(v.clone());
        }
        if condition_keys.contains(key) {
            if let Some(slot) = lookup_mut(&mut view, &path) {
                *slot = resolved;
            }
        }
    }
    if path_rule && !every.is_empty() {
        if let Some(obj) = view.as_object_mut() {
            obj.insert("path".into(), Value::Array(every));
        }
    }
    if !condition_keys.is_empty() || path_rule {
        read.resolved = Some(view);
    }
    read
}

/// The arguments with every file argument ([`FILE_KEYS`]) as the server will open it
/// (`null` where that cannot be known), for deriving a similar grant's scope.
pub fn files_as_server(roots: &Roots, arguments: &Value) -> Value {
    let mut view = arguments.clone();
    for key in FILE_KEYS {
        if let Some(slot) = view.get_mut(*key) {
            *slot = match &*slot {
                Value::Array(items) => Value::Array(items.iter().map(|v| resolve_value(v, roots)).collect()),
                v => resolve_value(v, roots),
            };
        }
    }
    view
}

/// The arguments with every value under `keys` (dotted for nested members) resolved;
/// `None` when no such argument is present (the policy then reads them as sent).
#[cfg(test)]
fn resolve(arguments: &Value, keys: &BTreeSet<String>, roots: &Roots) -> Option<Value> {
    let mut out: Option<Value> = None;
    for key in keys {
        let path: Vec<&str> = key.split('.').collect();
        let Some(value) = lookup(arguments, &path) else { continue };
        let resolved = match value {
            Value::Array(items) => Value::Array(items.iter().map(|v| resolve_value(v, roots)).collect()),
            v => resolve_value(v, roots),
        };
        let target = out.get_or_insert_with(|| arguments.clone());
        if let Some(slot) = lookup_mut(target, &path) {
            *slot = resolved;
        }
    }
    out
}

/// A client's `roots/list` answer for a server: the roots to pass on, the folders the
/// server will then hold, and the roots refused (outside the configured folders, or not
/// `file:` URIs). A server with no configured folders (or a remote one) keeps what the
/// client says; with none left, the configured folders are passed on instead.
pub fn narrow_roots(given: &[Value], roots: &Roots) -> (Vec<Value>, Vec<PathBuf>, Vec<String>) {
    let (mut kept, mut held, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    if !roots.local {
        return (given.to_vec(), held, dropped);
    }
    for root in given {
        let uri = root.get("uri").and_then(Value::as_str).unwrap_or_default();
        let path =
            url::Url::parse(uri).ok().and_then(|u| u.to_file_path().ok()).and_then(|p| std::fs::canonicalize(p).ok());
        let inside = |p: &Path| roots.dirs.is_empty() || roots.dirs.iter().any(|d| p.starts_with(d));
        match path {
            Some(p) if inside(&p) => {
                kept.push(root.clone());
                held.push(p);
            }
            _ => dropped.push(crate::govern::methods::shorten(uri)),
        }
    }
    if kept.is_empty() && !roots.dirs.is_empty() && !given.is_empty() {
        for d in &roots.dirs {
            if let Ok(u) = url::Url::from_directory_path(d) {
                kept.push(serde_json::json!({"uri": u.as_str()}));
                held.push(d.clone());
            }
        }
    }
    (kept, held, dropped)
}

/// The spelling of a rule's path pattern that resolved values are compared with: `~`
/// expanded, a `file://` prefix removed, and the longest existing folder of its fixed
/// part (before the first `*`, `?`, `[` or `{`) with symlinks followed. `None` when it
/// is written that way already, or names nothing that exists.
pub fn pattern_alias(pattern: &str) -> Option<String> {
    let text = pattern.trim();
    let text = text.strip_prefix("file://").unwrap_or(text);
    let expanded = expand_home(text)?.to_str()?.to_string();
    let fixed_end = expanded.find(['*', '?', '[', '{']).unwrap_or(expanded.len());
    let fixed = &expanded[..fixed_end];
    // The longest existing folder at the start of the fixed part.
    let cut = fixed.rfind('/').map_or(0, |i| i + 1);
    let mut base = PathBuf::from(&fixed[..cut]);
    let mut rest = String::from(&expanded[cut..]);
    while !base.as_os_str().is_empty() && std::fs::canonicalize(&base).is_err() {
        let Some(name) = base.file_name().map(|n| n.to_string_lossy().into_owned()) else { break };
        rest = format!("{name}/{rest}");
        base.pop();
    }
    let real = std::fs::canonicalize(&base).ok()?;
    let joined = if rest.is_empty() {
        real.to_str()?.to_string()
    } else {
        format!("{}/{rest}", real.to_str()?.trim_end_matches('/'))
    };
    Some(joined).filter(|j| j != pattern)
}

fn lookup<'a>(mut v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    for key in path {
        v = v.get(key)?;
    }
    Some(v)
}

fn lookup_mut<'a>(mut v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    for key in path {
        v = v.get_mut(key)?;
    }
    Some(v)
}

fn resolve_value(value: &Value, roots: &Roots) -> Value {
    match value {
        Value::String(s) => resolve_path(s, roots).map_or(Value::Null, Value::String),
        _ => Value::Null,
    }
}

/// One path as the server will open it, or `None` when that cannot be known.
pub fn resolve_path(text: &str, roots: &Roots) -> Option<String> {
    if text.len() > MAX_PATH || text.contains('\0') {
        return None;
    }
    let text = text.trim();
    let decoded;
    let text = if text.starts_with("file:") {
        decoded = url::Url::parse(text).ok()?.to_file_path().ok()?;
        decoded.to_str()?
    } else {
        text
    };
    let expanded = expand_home(text)?;
    let absolute = if expanded.is_absolute() {
        expanded
    } else if !roots.local {
        return None;
    } else {
        relative_to_roots(&expanded, roots)?
    };
    let lexical = lexical(&absolute);
    if !roots.local {
        return Some(countersign_policy::nfc(lexical.to_str()?).into_owned());
    }
    let real = follow(&lexical)?;
    Some(countersign_policy::nfc(real.to_str()?).into_owned())
}

fn expand_home(text: &str) -> Option<PathBuf> {
    let home = || directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
    if text == "~" {
        return home();
    }
    match text.strip_prefix("~/") {
        Some(rest) => Some(home()?.join(rest)),
        None => Some(PathBuf::from(text)),
    }
}

/// A relative path joined as a file server does: to the first root it stays inside,
/// else to the first root; with no roots, to the working folder.
fn relative_to_roots(relative: &Path, roots: &Roots) -> Option<PathBuf> {
    if roots.dirs.is_empty() {
        return Some(roots.cwd.as_ref()?.join(relative));
    }
    let inside = |p: &Path| roots.dirs.iter().any(|d| p.starts_with(d));
    roots
        .dirs
        .iter()
        .map(|d| lexical(&d.join(relative)))
        .find(|c| inside(c))
        .or_else(|| Some(roots.dirs[0].join(relative)))
}

/// `.` and `..` removed without touching the disk (`/..` is `/`).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Every symlink followed, component by component; a name that does not exist is matched
/// to the one entry with the same NFC form, and the rest of a path that does not exist
/// yet is kept as written.
fn follow(path: &Path) -> Option<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(real) => return Some(real),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return None,
    }
    let mut parts = path.components();
    let mut current = PathBuf::from(parts.next()?.as_os_str());
    let rest: Vec<_> = parts.map(|c| c.as_os_str().to_owned()).collect();
    for (i, name) in rest.iter().enumerate() {
        let exact = current.join(name);
        let found = match std::fs::symlink_metadata(&exact) {
            Ok(_) => Some(exact),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => equivalent(&current, name.to_str()?)?,
            Err(_) => return None,
        };
        match found {
            // A dangling symlink or a loop names no file the server could use safely.
            Some(entry) => current = std::fs::canonicalize(entry).ok()?,
            None => {
                for name in &rest[i..] {
                    current.push(name);
                }
                return Some(current);
            }
        }
    }
    Some(current)
}

/// The entry of `dir` whose name has the NFC form of `name`: `Some(None)` when there is
/// none, `None` when it cannot be told (several, unreadable, too many entries).
fn equivalent(dir: &Path, name: &str) -> Option<Option<PathBuf>> {
    let want = countersign_policy::nfc(name);
    let mut found = None;
    for (n, entry) in std::fs::read_dir(dir).ok()?.enumerate() {
        if n >= MAX_SCAN {
            return None;
        }
        let entry = entry.ok()?;
        let file_name = entry.file_name();
        let Some(text) = file_name.to_str() else { continue };
        if countersign_policy::nfc(text) == want {
            if found.is_some() {
                return None;
            }
            found = Some(entry.path());
        }
    }
    Some(found)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_spelling_of_one_file_resolves_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        let x = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(x.join("secret")).unwrap();
        std::fs::create_dir_all(x.join("projects")).unwrap();
        std::fs::write(x.join("secret/secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(x.join("secret"), x.join("projects/link")).unwrap();
        std::fs::create_dir_all(x.join("caf\u{e9}")).unwrap();
        let roots = Roots::local(&[&x]);
        let want = x.join("secret/secret.txt").to_str().unwrap().to_string();
        for spelling in [
            "secret/secret.txt".to_string(),
            "./secret/secret.txt".into(),
            "projects/../secret/secret.txt".into(),
            "projects/link/secret.txt".into(),
            format!("{}/projects/link/secret.txt", x.display()),
            format!("{}//secret/./secret.txt", x.display()),
            format!("file://{}/secret/secret.txt", x.display()),
        ] {
            assert_eq!(resolve_path(&spelling, &roots).as_deref(), Some(want.as_str()), "{spelling}");
        }
        // A file that does not exist yet, through the link: its real folder.
        let new = resolve_path("projects/link/new.txt", &roots).unwrap();
        assert_eq!(new, x.join("secret/new.txt").to_str().unwrap());
        // Decomposed Unicode names the composed folder on disk.
        let nfd = resolve_path("cafe\u{301}/menu.txt", &roots).unwrap();
        assert_eq!(nfd, x.join("caf\u{e9}/menu.txt").to_str().unwrap());
    }

    #[test]
    fn what_cannot_be_resolved_is_null() {
        let tmp = tempfile::tempdir().unwrap();
        let x = std::fs::canonicalize(tmp.path()).unwrap();
        std::os::unix::fs::symlink(x.join("loop"), x.join("loop")).unwrap();
        std::os::unix::fs::symlink(x.join("nowhere"), x.join("dangling")).unwrap();
        let roots = Roots::local(&[&x]);
        let args = json!({"path": "loop/a", "paths": ["dangling/a", 3, "ok.txt"], "mode": "fast"});
        let out = resolve(&args, &keys(&["path", "paths", "absent"]), &roots).unwrap();
        assert_eq!(out["path"], Value::Null);
        assert_eq!(out["paths"][0], Value::Null);
        assert_eq!(out["paths"][1], Value::Null, "a number is not a path");
        assert_eq!(out["paths"][2], json!(x.join("ok.txt").to_str().unwrap()));
        assert_eq!(out["mode"], "fast", "other arguments stay");
        assert!(resolve(&json!({"mode": 1}), &keys(&["path"]), &roots).is_none());
        let remote = Roots { dirs: Vec::new(), cwd: None, local: false };
        assert_eq!(resolve_path("relative/a", &remote), None, "a remote server's relative path is unknown");
        assert_eq!(resolve_path("/a/../b", &remote).as_deref(), Some("/b"));
    }

    #[test]
    fn a_path_pattern_is_spelled_as_values_are_resolved() {
        let tmp = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(real.join("data/secret")).unwrap();
        std::os::unix::fs::symlink(real.join("data"), real.join("link")).unwrap();
        let via_link = format!("{}/link/secret/**", real.display());
        assert_eq!(pattern_alias(&via_link).unwrap(), format!("{}/data/secret/**", real.display()));
        let missing = format!("{}/link/not-yet/*.txt", real.display());
        assert_eq!(pattern_alias(&missing).unwrap(), format!("{}/data/not-yet/*.txt", real.display()));
        let home = directories::BaseDirs::new().unwrap().home_dir().to_path_buf();
        let home = std::fs::canonicalize(home).unwrap();
        assert!(pattern_alias("~/.ssh/**").unwrap().starts_with(home.to_str().unwrap()));
        assert_eq!(pattern_alias(&format!("{}/data/**", real.display())), None, "already the real spelling");
    }

    #[test]
    fn nested_keys_are_resolved_too() {
        let tmp = tempfile::tempdir().unwrap();
        let x = std::fs::canonicalize(tmp.path()).unwrap();
        let roots = Roots::local(&[&x]);
        let out = resolve(&json!({"repo": {"dir": "a/../b"}}), &keys(&["repo.dir"]), &roots).unwrap();
        assert_eq!(out["repo"]["dir"], json!(x.join("b").to_str().unwrap()));
    }
}
