//! Turns a server's configured environment or headers into the values to send: plain
//! values as written, `{ secret = "name" }` references read from the keychain. A
//! reference that cannot be read stops the server from starting, and the error names the
//! secret and why (missing, keychain locked, no keychain). Values are handed on as
//! [`Secret`]s and are never logged.

use countersign_vault::{Keychain, Secret, Setting};
use std::collections::BTreeMap;

/// The values of `settings`, in order, secrets read from the keychain.
pub async fn resolve(settings: &BTreeMap<String, Setting>) -> Result<Vec<(String, Secret)>, String> {
    let mut keychain: Option<Keychain> = None;
    let mut out = Vec::with_capacity(settings.len());
    for (key, setting) in settings {
        let value = match setting {
            Setting::Plain(v) => Secret::new(v.clone()),
            Setting::Secret(reference) => {
                let account = countersign_vault::Account::Secret(reference.secret.clone());
                let chain = match keychain {
                    Some(k) => k,
                    None => {
                        let k = Keychain::open().await.map_err(|e| e.for_account(&account).to_string())?;
                        keychain = Some(k);
                        k
                    }
                };
                let secret = chain.secret(&reference.secret).await.map_err(|e| e.to_string())?;
                reference.render(&secret)
            }
        };
        out.push((key.clone(), value));
    }
    Ok(out)
}
