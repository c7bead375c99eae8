//! Reads the policy layers from disk and keeps the gateway's policy current.
//!
//! Layers: the user's `[policy]` in the config file; the managed file (`managed.toml` in
//! `COUNTERSIGN_MANAGED_DIR`, else the OS location: `/etc/countersign` on Linux,
//! `/Library/Application Support/Countersign` on macOS, `%ProgramData%\Countersign` on
//! Windows); and a signed bundle (`<data dir>/policy/bundle.toml` with its minisign
//! signature `bundle.toml.minisig`), verified against the key only the managed file can
//! set. The files are watched; a change is applied without a restart. A layer that does
//! not load is rejected with a message naming the file, and the last good policy stays in
//! force (at start, the last bundle that was accepted). It must never let a broken or
//! unverified layer weaken the policy in force.

use crate::clock::now_unix;
use crate::config::Config;
use crate::home::Home;
use countersign_policy::{verify_bundle, Layers, ManagedFile, Policy, PolicySettings};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Policy(String),
}

/// Where the managed layer lives.
pub fn managed_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COUNTERSIGN_MANAGED_DIR") {
        return PathBuf::from(dir);
    }
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Countersign")
    } else if cfg!(windows) {
        // HKLM\Software\Policies\Countersign is read by the desktop app on Windows; the
        // file here is the same settings as TOML.
        std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
            .join("Countersign")
    } else {
        PathBuf::from("/etc/countersign")
    }
}

pub fn managed_file() -> PathBuf {
    managed_dir().join("managed.toml")
}

fn bundle_dir(home: &Home) -> PathBuf {
    home.dir().join("policy")
}

/// The bundle the hub delivers (and the signature beside it).
pub fn bundle_path(home: &Home) -> PathBuf {
    bundle_dir(home).join("bundle.toml")
}

fn signature_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

fn accepted_path(home: &Home) -> PathBuf {
    bundle_dir(home).join("accepted.toml")
}

fn read_managed() -> Result<Option<ManagedFile>, LayerError> {
    let path = managed_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(1);
            LayerError::File { path: path.clone(), message: format!("line {line}: {}", e.message().trim()) }
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LayerError::File { path, message: format!("cannot read: {e}") }),
    }
}

/// The newest bundle version accepted so far (rollback protection).
fn newest_accepted(home: &Home) -> Option<u64> {
    let text = std::fs::read_to_string(accepted_path(home)).ok()?;
    let doc: toml::Value = toml::from_str(&text).ok()?;
    doc.get("bundle")?.get("version")?.as_integer().map(|v| v as u64)
}

/// Verifies the bundle at `path` against the managed key.
fn verify_at(path: &Path, key: Option<&str>, newest: Option<u64>) -> Result<Option<(PolicySettings, u64)>, LayerError> {
    let document = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LayerError::File { path: path.into(), message: format!("cannot read: {e}") }),
    };
    let signature = std::fs::read_to_string(signature_path(path)).ok();
    let b = verify_bundle(&document, signature.as_deref(), key, now_unix(), newest)
        .map_err(|e| LayerError::File { path: path.into(), message: e.to_string() })?;
    Ok(Some((b.policy, b.header.version)))
}

/// Reads every layer. A bundle that fails verification is reported in `rejected` and
/// replaced by the last accepted one, so a bad delivery never removes managed rules.
pub fn load(user: &PolicySettings, home: &Home) -> Result<(Layers, Vec<LayerError>), LayerError> {
    let managed = read_managed()?;
    let key = managed.as_ref().and_then(|m| m.managed.bundle_public_key.clone());
    let newest = newest_accepted(home);
    let mut rejected = Vec::new();
    let delivered = bundle_path(home);
    let bundle = match verify_at(&delivered, key.as_deref(), newest) {
        Ok(Some(b)) => {
            // Remember it (and its signature) as the last good bundle.
            if newest != Some(b.1) || !accepted_path(home).exists() {
                let _ = std::fs::copy(&delivered, accepted_path(home));
                let _ = std::fs::copy(signature_path(&delivered), signature_path(&accepted_path(home)));
            }
            Some(b)
        }
        Ok(None) => None,
        Err(e) => {
            rejected.push(e);
            // The last good bundle, checked again (its version is the newest by definition).
            verify_at(&accepted_path(home), key.as_deref(), None).unwrap_or_else(|e| {
                rejected.push(e);
                None
            })
        }
    };
    Ok((Layers { user: user.clone(), managed, bundle }, rejected))
}

/// Loads the layers and compiles them.
pub fn compile(user: &PolicySettings, home: &Home) -> Result<(Policy, Vec<LayerError>), LayerError> {
    let (layers, rejected) = load(user, home)?;
    let mut policy =
        Policy::from_layers(layers).map_err(|e| LayerError::Policy(format!("{}: {e}", e.layer.as_str())))?;
    policy.alias_paths(&crate::govern::arguments::pattern_alias);
    Ok((policy, rejected))
}

/// Re-reads the config file's `[policy]` (falling back to the one the gateway started
/// with when there is no file) and every other layer.
pub fn reload(config: &Config, home: &Home) -> Result<(Policy, Vec<LayerError>), LayerError> {
    let user = match &config.path {
        Some(path) => Config::load_or_empty(path).map_err(|e| LayerError::Policy(e.to_string()))?.policy,
        None => config.policy.clone(),
    };
    compile(&user, home)
}

/// The files whose changes reload the policy (their directories are what is watched).
pub fn watched_files(config: &Config, home: &Home) -> Vec<PathBuf> {
    let bundle = bundle_path(home);
    let mut files = vec![managed_file(), signature_path(&bundle), bundle];
    files.extend(config.path.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())));
    files
}

/// The directories to watch for those files.
pub fn watched_dirs(config: &Config, home: &Home) -> Vec<PathBuf> {
    let mut dirs = vec![managed_dir(), bundle_dir(home)];
    if let Some(dir) = config.path.as_ref().and_then(|p| p.parent()) {
        dirs.push(if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() });
    }
    dirs
}

/// Makes sure the bundle directory exists, so it can be watched before the first bundle.
pub fn prepare(home: &Home) {
    let _ = std::fs::create_dir_all(bundle_dir(home));
}

/// The hub's public key as the managed policy names it (`bundle_public_key`): it checks
/// the policy bundles the hub signs and the audit checkpoints it signs. `None` when no
/// managed policy names one (or it cannot be read).
pub fn hub_public_key() -> Option<String> {
    read_managed().ok().flatten().and_then(|m| m.managed.bundle_public_key)
}
