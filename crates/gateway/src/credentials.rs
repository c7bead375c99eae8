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

/// How a server with `oauth = { enterprise = true }` is reached: the person's IdP sign-in
/// and the gateway's clients at the IdP and at the server's authorization server, their
/// secrets read from the keychain. `None` for any other server.
pub async fn enterprise(
    oauth: &countersign_local::config::OAuthSettings,
) -> Result<Option<countersign_vault::oauth::Enterprise>, String> {
    let Some(idp) = oauth.identity_provider.as_ref().filter(|_| oauth.enterprise) else { return Ok(None) };
    let mut secrets = BTreeMap::new();
    if let Some(s) = &idp.client_secret {
        secrets.insert("idp".to_string(), s.clone());
    }
    if let Some(s) = &oauth.client_secret {
        secrets.insert("server".to_string(), s.clone());
    }
    let mut resolved: BTreeMap<String, Secret> = resolve(&secrets).await?.into_iter().collect();
    Ok(Some(countersign_vault::oauth::Enterprise {
        idp: countersign_vault::oauth::IdentityProvider {
            issuer: idp.issuer.clone(),
            client_id: idp.client_id.clone(),
            client_secret: resolved.remove("idp"),
            scopes: idp.scopes.clone(),
        },
        client_id: oauth.client_id.clone().unwrap_or_else(|| idp.client_id.clone()),
        client_secret: resolved.remove("server"),
        scopes: oauth.scopes.clone(),
        authorization_server: oauth.authorization_server.clone(),
    }))
}
