//! Where managed policy and the hub's bundles live on this machine, and reading them: the
//! OS location only an administrator writes (`/etc/countersign`, `/Library/Application
//! Support/Countersign`, `%ProgramData%\Countersign`; in debug builds a folder named by
//! `COUNTERSIGN_TEST_OS_MANAGED_DIR`), the folder `COUNTERSIGN_MANAGED_DIR` adds, and the
//! bundle files in the data directory. Reads and names files; never compiles, merges or
//! weakens a policy (that is the gateway's `policy_layers`).

use crate::home::Home;
use countersign_policy::ManagedFile;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Policy(String),
}

/// The variable that, in debug builds only, stands a folder in for the OS location.
pub const TEST_OS_DIR_VAR: &str = "COUNTERSIGN_TEST_OS_MANAGED_DIR";

/// The OS location of managed policy, which only an administrator can write.
pub fn os_managed_dir() -> PathBuf {
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

/// Where the managed layer lives: the OS location (in debug builds, the folder
/// `COUNTERSIGN_TEST_OS_MANAGED_DIR` names instead, for tests).
pub fn managed_dir() -> PathBuf {
    #[cfg(debug_assertions)]
    if let Some(dir) = std::env::var_os(TEST_OS_DIR_VAR).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    os_managed_dir()
}

pub fn managed_file() -> PathBuf {
    managed_dir().join("managed.toml")
}

/// The `managed.toml` of the folder `COUNTERSIGN_MANAGED_DIR` names, when it is not the
/// managed location itself: a layer the user adds, which can only tighten.
pub fn added_managed_file() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("COUNTERSIGN_MANAGED_DIR").filter(|v| !v.is_empty())?);
    let same = std::path::absolute(&dir).ok() == std::path::absolute(managed_dir()).ok();
    (!same).then(|| dir.join("managed.toml"))
}

pub fn bundle_dir(home: &Home) -> PathBuf {
    home.dir().join("policy")
}

/// The bundle the hub delivers (and the signature beside it).
pub fn bundle_path(home: &Home) -> PathBuf {
    bundle_dir(home).join("bundle.toml")
}

pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

/// The last good bundle kept in the data directory.
pub fn accepted_path(home: &Home) -> PathBuf {
    bundle_dir(home).join("accepted.toml")
}

/// The last good bundle kept in the managed location (written there only by IT or by a
/// gateway an administrator runs).
pub fn managed_copy_path() -> PathBuf {
    managed_dir().join("last-good-bundle.toml")
}

pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, LayerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(1);
            LayerError::File { path: path.to_path_buf(), message: format!("line {line}: {}", e.message().trim()) }
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LayerError::File { path: path.to_path_buf(), message: format!("cannot read: {e}") }),
    }
}

pub fn read_managed() -> Result<Option<ManagedFile>, LayerError> {
    read_toml(&managed_file())
}

/// The public key bundles must be signed with (only the managed file sets it).
pub fn bundle_key() -> Result<Option<String>, LayerError> {
    Ok(read_managed()?.and_then(|m| m.managed.bundle_public_key))
}

/// The hub's public key as the managed policy names it (`bundle_public_key`): it checks
/// the policy bundles the hub signs and the audit checkpoints it signs. `None` when no
/// managed policy names one (or it cannot be read).
pub fn hub_public_key() -> Option<String> {
    read_managed().ok().flatten().and_then(|m| m.managed.bundle_public_key)
}
