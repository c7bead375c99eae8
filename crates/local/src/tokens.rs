//! Client tokens for the loopback endpoint. The store keeps only SHA-256 digests and
//! names (tokens.json, 0600); a token's plaintext is shown once, when it is made. The
//! one token Countersign keeps for itself, the stdio shim's, lives in the OS keychain.
//! The store re-reads the file when an unknown token arrives, so tokens made while the
//! gateway runs work at once. Never logs or returns a token.

use crate::home::{random_token, write_private, Home, HomeError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::SystemTime;

/// The client token `countersign connect` uses; its plaintext lives in the keychain, filed
/// under this data directory (several data directories may share one keychain).
pub const SHIM_TOKEN_NAME: &str = "stdio-shim";

/// The name of the client token a project's own entries connect with, such as
/// `project-shop-1a2b3c4d5e6f`: the folder's name (for people reading the journal) and a
/// digest of its whole path (so two folders of one name get two tokens). The stdio shim
/// uses it for a server configured with `project = DIR`; no other client holds it.
pub fn project_token_name(project: &std::path::Path) -> String {
    let folder: String = project
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .take(32)
        .collect();
    let hash = &digest(&project.to_string_lossy())[..12];
    match folder.trim_matches(['-', '.']) {
        "" => format!("project-{hash}"),
        f => format!("project-{f}-{hash}"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token name `{0}` is not valid: use 1 to 64 letters, digits, `-`, `_` or `.`")]
    BadName(String),
    #[error("a token named `{0}` exists already; revoke it first")]
    Exists(String),
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error("the stdio shim's token lives in the keychain: {0}")]
    Keychain(String),
    #[error("{path}: not a token store: {message}")]
    Corrupt { path: PathBuf, message: String },
}

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    name: String,
    sha256: String,
    created: String,
}

pub struct TokenStore {
    path: PathBuf,
    cache: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    stamp: Option<Stamp>,
    by_digest: HashMap<String, String>,
}

/// What tells one version of the file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp { modified: meta.modified().ok(), len: meta.len(), inode }
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn read_entries(path: &PathBuf) -> Result<Vec<Entry>, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| TokenError::Corrupt { path: path.clone(), message: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(HomeError::Io { path: path.clone(), source }.into()),
    }
}

impl TokenStore {
    pub fn open(home: &Home) -> Self {
        let store = TokenStore { path: home.tokens_path(), cache: RwLock::new(Cache::default()) };
        store.reload();
        store
    }

    /// Makes a token for `name`, stores its digest and returns the plaintext (shown once).
    pub fn create(home: &Home, name: &str) -> Result<String, TokenError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(TokenError::BadName(name.to_string()));
        }
        let path = home.tokens_path();
        let mut entries = read_entries(&path)?;
        if entries.iter().any(|e| e.name == name) {
            return Err(TokenError::Exists(name.to_string()));
        }
        let token = random_token("cst_");
        entries.push(Entry {
            name: name.to_string(),
            sha256: digest(&token),
            created: countersign_audit::now_rfc3339(),
        });
        write_private(&path, serde_json::to_string_pretty(&entries).unwrap_or_default().as_bytes())?;
        Ok(token)
    }

    /// Removes the token called `name`; true when there was one.
    pub fn revoke(home: &Home, name: &str) -> Result<bool, TokenError> {
        let path = home.tokens_path();
        let mut entries = read_entries(&path)?;
        let before = entries.len();
        entries.retain(|e| e.name != name);
        if entries.len() == before {
            return Ok(false);
        }
        write_private(&path, serde_json::to_string_pretty(&entries).unwrap_or_default().as_bytes())?;
        Ok(true)
    }

    /// The shim's own token, made (and registered) on first use, kept in the keychain.
    /// A token left in the old `shim.token` file is moved there and the file removed.
    pub async fn shim_token(home: &Home) -> Result<String, TokenError> {
        Self::kept_token(home, SHIM_TOKEN_NAME, Some(&home.dir().join("shim.token"))).await
    }

    fn kept_account(home: &Home, name: &str) -> countersign_vault::Account {
        countersign_vault::Account::ClientToken(format!("{name}@{}", &digest(&home.dir().to_string_lossy())[..16]))
    }

    /// A token Countersign keeps for a client it configured itself (the shim, or a client
    /// `countersign clients install` pointed at the loopback URL): made and registered on
    /// first use, its plaintext kept in the keychain, filed under this data directory.
    pub async fn kept_token(home: &Home, name: &str, legacy: Option<&std::path::Path>) -> Result<String, TokenError> {
        use countersign_vault::{Keychain, Secret, VaultError};
        let account = Self::kept_account(home, name);
        let keychain = Keychain::open().await.map_err(|e| TokenError::Keychain(e.for_account(&account).to_string()))?;
        let registered = |token: &str| -> Result<bool, TokenError> {
            Ok(read_entries(&home.tokens_path())?.iter().any(|e| e.name == name && e.sha256 == digest(token)))
        };
        let forget_legacy = || {
            if let Some(l) = legacy {
                let _ = std::fs::remove_file(l);
            }
        };
        match keychain.get(&account).await {
            Ok(t) if registered(t.expose())? => {
                forget_legacy();
                return Ok(t.expose().to_string());
            }
            Ok(_) | Err(VaultError::Missing { .. }) => {}
            Err(e) => return Err(TokenError::Keychain(e.to_string())),
        }
        if let Some(old) = legacy.and_then(|l| std::fs::read_to_string(l).ok()).map(|t| t.trim().to_string()) {
            if registered(&old)? {
                keychain
                    .set(&account, &Secret::new(old.clone()))
                    .await
                    .map_err(|e| TokenError::Keychain(e.to_string()))?;
                forget_legacy();
                return Ok(old);
            }
        }
        let _ = Self::revoke(home, name)?;
        let token = Self::create(home, name)?;
        keychain.set(&account, &Secret::new(token.clone())).await.map_err(|e| TokenError::Keychain(e.to_string()))?;
        forget_legacy();
        Ok(token)
    }

    /// Revokes a kept token and removes its plaintext from the keychain.
    pub async fn forget_kept_token(home: &Home, name: &str) -> Result<(), TokenError> {
        use countersign_vault::{Keychain, VaultError};
        Self::revoke(home, name)?;
        let account = Self::kept_account(home, name);
        let keychain = Keychain::open().await.map_err(|e| TokenError::Keychain(e.for_account(&account).to_string()))?;
        match keychain.delete(&account).await {
            Ok(_) | Err(VaultError::Missing { .. }) => Ok(()),
            Err(e) => Err(TokenError::Keychain(e.to_string())),
        }
    }

    /// The name of the client `token` belongs to, if it is a current token. The store
    /// is re-read whenever the file changed, so a revoked token stops working at once.
    pub fn verify(&self, token: &str) -> Option<String> {
        self.reload();
        self.cache.read().ok()?.by_digest.get(&digest(token)).cloned()
    }

    /// Whether a token of this name is current (it may have been revoked since a session
    /// opened with it).
    pub fn holds(&self, name: &str) -> bool {
        self.reload();
        self.cache.read().is_ok_and(|c| c.by_digest.values().any(|n| n == name))
    }

    /// Re-reads the file if it changed (a write replaces it, so its identity changes
    /// even within the clock's resolution); true when it did.
    fn reload(&self) -> bool {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        let Ok(mut cache) = self.cache.write() else { return false };
        if stamp.is_some() && cache.stamp == stamp {
            return false;
        }
        match read_entries(&self.path) {
            Ok(entries) => {
                cache.by_digest = entries.into_iter().map(|e| (e.sha256, e.name)).collect();
                cache.stamp = stamp;
                true
            }
            Err(e) => {
                // Fail closed: a store we cannot read accepts no token.
                tracing::error!(error = %e, "token store unreadable; refusing all client tokens");
                cache.by_digest.clear();
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_token_is_named_for_its_folder_and_valid() {
        let a = project_token_name(std::path::Path::new("/home/ana/src/shop"));
        let b = project_token_name(std::path::Path::new("/home/ana/old/shop"));
        assert!(a.starts_with("project-shop-") && a.len() == "project-shop-".len() + 12, "{a}");
        assert_ne!(a, b, "two folders of one name get two tokens");
        let odd = project_token_name(std::path::Path::new(&format!("/x/{}\u{202e}evil$(id)", "r".repeat(80))));
        assert!(odd.len() <= 64 && odd.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf()).unwrap();
        TokenStore::create(&home, &odd).expect("a valid token name");
        assert!(project_token_name(std::path::Path::new("/")).starts_with("project-"));
    }

    #[test]
    fn sec_03_tokens_verify_by_digest_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf()).unwrap();
        let store = TokenStore::open(&home);
        let t = TokenStore::create(&home, "cursor").unwrap();
        assert_eq!(store.verify(&t).as_deref(), Some("cursor"), "a token made after open works at once");
        assert_eq!(store.verify("cst_wrong"), None);
        let file = std::fs::read_to_string(home.tokens_path()).unwrap();
        assert!(!file.contains(&t), "the store must not hold the plaintext");
        assert!(matches!(TokenStore::create(&home, "cursor"), Err(TokenError::Exists(_))));
        assert!(matches!(TokenStore::create(&home, "bad name"), Err(TokenError::BadName(_))));
        assert!(TokenStore::revoke(&home, "cursor").unwrap());
        assert_eq!(store.verify(&t), None, "a revoked token stops working in a running store");
    }

    /// Against the session's real Secret Service (`scripts/keyring-session.sh`).
    #[tokio::test(flavor = "multi_thread")]
    async fn the_shim_token_is_stable_registered_and_kept_in_the_keychain() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf()).unwrap();
        // A token from before the keychain, in the old file, is moved into the keychain.
        let old = TokenStore::create(&home, SHIM_TOKEN_NAME).unwrap();
        std::fs::write(dir.path().join("shim.token"), &old).unwrap();
        let a = TokenStore::shim_token(&home).await.unwrap();
        assert_eq!(a, old);
        assert!(!dir.path().join("shim.token").exists(), "no plaintext token stays on disk");
        assert_eq!(a, TokenStore::shim_token(&home).await.unwrap());
        assert_eq!(TokenStore::open(&home).verify(&a).as_deref(), Some(SHIM_TOKEN_NAME));
        // Another data directory on the same keychain has a token of its own.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Home::at(other_dir.path().to_path_buf()).unwrap();
        let b = TokenStore::shim_token(&other).await.unwrap();
        assert_ne!(a, b);
        assert_eq!(a, TokenStore::shim_token(&home).await.unwrap());
    }
}
