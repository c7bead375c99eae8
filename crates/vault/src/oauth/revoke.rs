//! Signing out: the refresh and access tokens are revoked at the authorization server
//! (RFC 7009) when it offers a revocation endpoint, and the keychain item is removed.
//! The request is the RFC's form POST made here with reqwest: the `oauth2` crate refuses
//! any revocation endpoint that is not https, and a local server's loopback http endpoint
//! (which the MCP spec allows) must be revocable too; the URL passes `guard` first. Used by `countersign auth logout` and when a server is
//! removed from the config.

use super::guard;
use super::store::KeychainCredentials;
use crate::{Keychain, VaultError};
use oauth2::TokenResponse;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOut {
    /// Whether a sign-in was stored at all.
    pub had_sign_in: bool,
    /// How many tokens the authorization server confirmed revoked.
    pub revoked: usize,
    /// Why revocation did not happen or failed (the keychain item is removed regardless).
    pub warning: Option<String>,
}

pub async fn sign_out(server: &str, keychain: Keychain) -> Result<SignedOut, VaultError> {
    let store = KeychainCredentials::new(server, keychain);
    let Some(sign_in) = store.load_sign_in().await? else {
        return Ok(SignedOut { had_sign_in: false, revoked: 0, warning: None });
    };
    let mut out = SignedOut { had_sign_in: true, revoked: 0, warning: None };
    match (sign_in.revocation_endpoint(), sign_in.credentials.as_ref()) {
        (Some(endpoint), Some(creds)) => match revoke_all(endpoint, creds).await {
            Ok(n) => out.revoked = n,
            Err(e) => out.warning = Some(e),
        },
        (None, _) => out.warning = Some("the authorization server offers no revocation endpoint".into()),
        (_, None) => {}
    }
    store.forget().await?;
    Ok(out)
}

async fn revoke_all(endpoint: &str, creds: &rmcp::transport::auth::StoredCredentials) -> Result<usize, String> {
    let url = guard::check_endpoint("revocation_endpoint", endpoint).map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| e.to_string())?;
    let Some(token) = creds.token_response.as_ref() else { return Ok(0) };
    let mut tokens = Vec::new();
    if let Some(r) = token.refresh_token() {
        tokens.push((r.secret().as_str(), "refresh_token"));
    }
    tokens.push((token.access_token().secret().as_str(), "access_token"));
    let mut revoked = 0;
    for (value, hint) in tokens {
        // RFC 7009 §2.1: the token in the form body, never in the URL; a public client
        // identifies itself with client_id.
        let form = [("token", value), ("token_type_hint", hint), ("client_id", creds.client_id.as_str())];
        let resp = http
            .post(url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("revocation failed: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("the revocation endpoint answered HTTP {}", resp.status()));
        }
        revoked += 1;
    }
    Ok(revoked)
}
