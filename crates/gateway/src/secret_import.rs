//! Moves credentials written in plain text in the user's config into the keychain, leaving
//! a `{ secret = "name" }` reference in their place (the rest of the file kept as written).
//! Each value is stored before the file changes, so a failure never loses one. Used by
//! `countersign secret import` and the app's offer to move them.

use crate::config::{Config, PlaintextSecret, Transport};
use crate::config_edit;
use countersign_vault::{plaintext, Account, Keychain, Secret, SecretName, Setting};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Keychain(#[from] countersign_vault::VaultError),
    #[error("no keychain is available: {0}")]
    NoKeychain(#[from] countersign_vault::OpenError),
    #[error(transparent)]
    Edit(#[from] config_edit::EditError),
}

/// One credential found, with the name it would be filed under.
#[derive(Debug, Clone)]
pub struct Found {
    pub found: PlaintextSecret,
    pub name: SecretName,
}

impl Found {
    /// Where it is in the config: `servers.gh.env.GITHUB_TOKEN`.
    pub fn field(&self) -> String {
        format!("servers.{}.{}.{}", self.found.server, self.found.table, self.found.key)
    }
}

/// The plaintext credentials in the config at `path`.
pub fn find(path: &Path) -> Result<Vec<Found>, ImportError> {
    let config = Config::load(path)?;
    Ok(config
        .plaintext_secrets()
        .into_iter()
        .filter_map(|found| plaintext::suggested_name(&found.server, &found.key).map(|name| Found { found, name }))
        .collect())
}

/// Moves `which` of the found credentials into the keychain; returns those moved.
pub async fn import(path: &Path, which: impl Fn(&Found) -> bool) -> Result<Vec<Found>, ImportError> {
    let config = Config::load(path)?;
    let keychain = Keychain::open().await?;
    let mut moved = Vec::new();
    for f in find(path)? {
        if !which(&f) {
            continue;
        }
        let settings = match &config.servers[&f.found.server].transport {
            Transport::Stdio { env, .. } => env,
            Transport::Http { headers, .. } => headers,
        };
        let Some(Setting::Plain(value)) = settings.get(&f.found.key) else { continue };
        let (format, bare) =
            if f.found.table == "headers" { plaintext::split_scheme(value) } else { (None, value.as_str()) };
        keychain.set(&Account::Secret(f.name.clone()), &Secret::new(bare.to_string())).await?;
        config_edit::set_secret_reference(path, &f.found.server, f.found.table, &f.found.key, &f.name, format)?;
        moved.push(f);
    }
    Ok(moved)
}
