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
    modified: Option<SystemTime>,
    by_digest: HashMap<String, String>,
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
        use countersign_vault::{Account, Keychain, Secret, VaultError};
        let account =
            Account::ClientToken(format!("{SHIM_TOKEN_NAME}@{}", &digest(&home.dir().to_string_lossy())[..16]));
        let keychain = Keychain::open().await.map_err(|e| TokenError::Keychain(e.for_account(&account).to_string()))?;
        let legacy = home.dir().join("shim.token");
        let registered = |token: &str| -> Result<bool, TokenError> {
            Ok(read_entries(&home.tokens_path())?
                .iter()
                .any(|e| e.name == SHIM_TOKEN_NAME && e.sha256 == digest(token)))
        };
        match keychain.get(&account).await {
            Ok(t) if registered(t.expose())? => {
                let _ = std::fs::remove_file(&legacy);
                return Ok(t.expose().to_string());
            }
            Ok(_) | Err(VaultError::Missing { .. }) => {}
            Err(e) => return Err(TokenError::Keychain(e.to_string())),
        }
        if let Some(old) = std::fs::read_to_string(&legacy).ok().map(|t| t.trim().to_string()) {
            if registered(&old)? {
                keychain
                    .set(&account, &Secret::new(old.clone()))
                    .await
                    .map_err(|e| TokenError::Keychain(e.to_string()))?;
                let _ = std::fs::remove_file(&legacy);
                return Ok(old);
            }
        }
        let _ = Self::revoke(home, SHIM_TOKEN_NAME)?;
        let token = Self::create(home, SHIM_TOKEN_NAME)?;
        keychain.set(&account, &Secret::new(token.clone())).await.map_err(|e| TokenError::Keychain(e.to_string()))?;
        let _ = std::fs::remove_file(&legacy);
        Ok(token)
    }

    /// The name of the client `token` belongs to, if it is a current token.
    pub fn verify(&self, token: &str) -> Option<String> {
        let d = digest(token);
        if let Some(name) = self.cache.read().ok()?.by_digest.get(&d) {
            return Some(name.clone());
        }
        if self.reload() {
            return self.cache.read().ok()?.by_digest.get(&d).cloned();
        }
        None
    }

    /// Re-reads the file if it changed; true when it did.
    fn reload(&self) -> bool {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let Ok(mut cache) = self.cache.write() else { return false };
        if modified.is_some() && cache.modified == modified {
            return false;
        }
        match read_entries(&self.path) {
            Ok(entries) => {
                cache.by_digest = entries.into_iter().map(|e| (e.sha256, e.name)).collect();
                cache.modified = modified;
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
        // The mtime may not move within the file system's resolution; a fresh store must refuse.
        assert_eq!(TokenStore::open(&home).verify(&t), None);
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
