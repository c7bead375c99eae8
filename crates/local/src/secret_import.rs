//! Moves credentials written in plain text in the user's config into the keychain, leaving
//! a `{ secret = "name" }` reference in their place (the rest of the file kept as written).
//! Each value is stored before the file changes, so a failure never loses one. Used by
//! `countersign secret import` and the app's offer to move them.
//!
//! It never overwrites a keychain item: a name already referenced anywhere in the config,
//! already chosen in this run (`API_KEY` and `api_key` are one name once lower-cased) or
//! held in the keychain (another config's server may read it) is passed over for the
//! next free one (`NAME-2`…), and the reference written is the name actually used.

use crate::config::{Config, PlaintextSecret, Transport};
use crate::config_edit;
use countersign_vault::{plaintext, Keychain, Secret, SecretName, Setting};
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

/// One credential found, with the name it would be filed under (once moved: the name
/// it was filed under).
#[derive(Debug, Clone)]
pub struct Found {
    pub found: PlaintextSecret,
    pub name: SecretName,
    /// The name first suggested, when it was taken and another was used instead.
    pub instead_of: Option<SecretName>,
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
        .filter_map(|found| {
            plaintext::suggested_name(&found.server, &found.key).map(|name| Found { found, name, instead_of: None })
        })
        .collect())
}

/// Moves `which` of the found credentials into the keychain; returns those moved, each
/// with the name it was filed under.
pub async fn import(path: &Path, which: impl Fn(&Found) -> bool) -> Result<Vec<Found>, ImportError> {
    let config = Config::load(path)?;
    let keychain = Keychain::open().await?;
    let referenced = config.secret_uses();
    let mut moved: Vec<Found> = Vec::new();
    for mut f in find(path)? {
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
        let taken = |n: &SecretName| referenced.contains_key(n) || moved.iter().any(|m| &m.name == n);
        let name = keychain.store_new(&f.name, &Secret::new(bare.to_string()), taken).await?;
        config_edit::set_secret_reference(path, &f.found.server, f.found.table, &f.found.key, &name, format)?;
        if name != f.name {
            f.instead_of = Some(std::mem::replace(&mut f.name, name));
        }
        moved.push(f);
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    //! Against the test session's keychain (run inside `scripts/keyring-session.sh`).
    use super::*;
    use countersign_vault::Account;

    #[tokio::test(flavor = "multi_thread")]
    async fn names_that_meet_once_lower_cased_never_overwrite_an_item() {
        let keychain = Keychain::open().await.expect("the session's keychain");
        let names = ["ut15-b-api_key", "ut15-b-api_key-2", "ut15-b-api_key-3"].map(|n| SecretName::new(n).unwrap());
        for n in &names {
            let _ = keychain.delete(&Account::Secret(n.clone())).await;
        }
        // Server `a` reads the item `ut15-b-api_key`; server `ut15-b` writes `API_KEY` and
        // `api_key` in plain text, both of which would be filed under that name.
        keychain.set(&Account::Secret(names[0].clone()), &Secret::new("a's value".into())).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[servers.a]\ncommand = \"a-mcp\"\nenv = { API_KEY = { secret = \"ut15-b-api_key\" } }\n\
             [servers.ut15-b]\ncommand = \"b-mcp\"\nenv = { API_KEY = \"upper\", api_key = \"lower\" }\n",
        )
        .unwrap();
        let moved = import(&path, |_| true).await.unwrap();

        assert_eq!(keychain.secret(&names[0]).await.unwrap().expose(), "a's value", "a's item is left as it is");
        let filed: Vec<(String, &str, Option<&str>)> = moved
            .iter()
            .map(|f| (f.found.key.clone(), f.name.as_str(), f.instead_of.as_ref().map(SecretName::as_str)))
            .collect();
        assert_eq!(
            filed,
            [
                ("API_KEY".to_string(), "ut15-b-api_key-2", Some("ut15-b-api_key")),
                ("api_key".to_string(), "ut15-b-api_key-3", Some("ut15-b-api_key")),
            ]
        );
        let config = Config::load(&path).unwrap();
        let Transport::Stdio { env, .. } = &config.servers["ut15-b"].transport else { panic!("stdio") };
        for (key, item, value) in [("API_KEY", &names[1], "upper"), ("api_key", &names[2], "lower")] {
            assert_eq!(&env[key].secret().unwrap().secret, item, "the reference names the item used");
            assert_eq!(keychain.secret(item).await.unwrap().expose(), value);
        }
        for n in &names {
            let _ = keychain.delete(&Account::Secret(n.clone())).await;
        }
    }
}
