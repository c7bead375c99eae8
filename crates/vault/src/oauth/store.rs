//! One remote server's sign-in, kept as one keychain item (`oauth:SERVER`): the client
//! registration, the tokens, and the endpoints needed to refresh and revoke them without
//! asking the network first. Implements rmcp's `CredentialStore`, so rmcp refreshes and
//! saves through it. A copy is held in memory so a call does not cost a keychain trip;
//! every save goes to the keychain first.
//!
//! Every token response passes `accept` on its way in (a sign-in's, a refresh's) and when
//! a stored one is read back: a refused one is never kept, never handed to rmcp and so
//! never sent; the sign-in then says why and needs doing again.

use super::accept::{accept, RefusedToken};
use crate::{Account, Keychain, Secret, VaultError};
use async_trait::async_trait;
use rmcp::transport::auth::{AuthError, AuthorizationMetadata, CredentialStore, StoredCredentials};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::Mutex;

/// What the keychain item holds.
#[derive(Clone, Serialize, Deserialize)]
pub struct SignIn {
    /// The server's URL the tokens are for (the RFC 8707 resource).
    pub resource: String,
    /// The authorization server's metadata, as discovered at sign-in.
    pub metadata: AuthorizationMetadata,
    pub credentials: Option<StoredCredentials>,
    /// Why the last token the authorization server issued was refused (and the sign-in's
    /// tokens discarded); a sign-in in this state needs doing again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").field("resource", &self.resource).field("issuer", &self.metadata.issuer).finish()
    }
}

impl SignIn {
    pub fn revocation_endpoint(&self) -> Option<&str> {
        self.metadata.additional_fields.get("revocation_endpoint").and_then(|v| v.as_str())
    }

    /// The scopes the stored access token carries: what the token response that brought
    /// it (the sign-in's or the last refresh's) says it granted, or, when it says nothing,
    /// the grant it was asked under (RFC 6749 §5.1).
    pub fn token_scopes(&self) -> Vec<String> {
        token_scopes(self.credentials.as_ref())
    }

    /// Applies `accept` to the stored token: a refused one is dropped and `refused` says why.
    fn checked(mut self) -> Self {
        if let Some(refusal) = self.refusal() {
            self.credentials = None;
            self.refused = Some(refused_text(&refusal));
        }
        self
    }

    fn refusal(&self) -> Option<RefusedToken> {
        let token = self.credentials.as_ref()?.token_response.as_ref()?;
        accept(&self.resource, token).err()
    }
}

/// See [`SignIn::token_scopes`].
fn token_scopes(credentials: Option<&StoredCredentials>) -> Vec<String> {
    use oauth2::TokenResponse;
    let Some(c) = credentials else { return Vec::new() };
    match c.token_response.as_ref().and_then(|t| t.scopes()) {
        Some(scopes) => scopes.iter().map(|s| s.to_string()).collect(),
        None => c.granted_scopes.clone(),
    }
}

/// What a sign-in whose token was refused says (to the caller, and kept in `refused`).
pub fn refused_text(refusal: &RefusedToken) -> String {
    format!("the authorization server {refusal}; it was discarded")
}

/// The keychain-backed store for one server.
#[derive(Clone)]
pub struct KeychainCredentials {
    server: String,
    keychain: Keychain,
    cache: Arc<Mutex<Option<SignIn>>>,
    /// The resource and metadata to file new credentials with (set before a sign-in).
    pending: Arc<Mutex<Option<(String, AuthorizationMetadata)>>>,
    refresh: Arc<Mutex<()>>,
    /// The last token response this store refused, for the caller rmcp reports it to only
    /// as text.
    refusal: Arc<Mutex<Option<RefusedToken>>>,
}

impl KeychainCredentials {
    pub fn new(server: &str, keychain: Keychain) -> Self {
        KeychainCredentials {
            server: server.to_string(),
            keychain,
            cache: Arc::default(),
            pending: Arc::default(),
            refresh: Arc::default(),
            refusal: Arc::default(),
        }
    }

    fn account(&self) -> Account {
        Account::OAuth(self.server.clone())
    }

    /// The stored sign-in, if any (from memory after the first read).
    pub async fn load_sign_in(&self) -> Result<Option<SignIn>, VaultError> {
        let mut cache = self.cache.lock().await;
        if cache.is_none() {
            match self.keychain.get(&self.account()).await {
                Ok(text) => {
                    let parsed: SignIn = serde_json::from_str(text.expose()).map_err(|e| VaultError::Failed {
                        account: self.account(),
                        reason: format!("the stored sign-in is unreadable ({e}); sign in again"),
                    })?;
                    *cache = Some(parsed.checked());
                }
                Err(VaultError::Missing { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(cache.clone())
    }

    /// Files credentials saved during the coming sign-in under this resource and metadata.
    pub async fn prepare(&self, resource: &str, metadata: AuthorizationMetadata) {
        *self.pending.lock().await = Some((resource.to_string(), metadata));
    }

    async fn write(&self, sign_in: SignIn) -> Result<(), VaultError> {
        let text = serde_json::to_string(&sign_in).map_err(|e| VaultError::Failed {
            account: self.account(),
            reason: format!("cannot encode the sign-in: {e}"),
        })?;
        self.keychain.set(&self.account(), &Secret::new(text)).await?;
        *self.cache.lock().await = Some(sign_in);
        Ok(())
    }

    /// The token response this store last refused, if any (taken: asked once).
    pub async fn take_refusal(&self) -> Option<RefusedToken> {
        self.refusal.lock().await.take()
    }

    /// Forgets the sign-in, in the keychain and in memory.
    pub async fn forget(&self) -> Result<bool, VaultError> {
        *self.cache.lock().await = None;
        self.keychain.delete(&self.account()).await
    }
}

fn store_error(e: VaultError) -> AuthError {
    AuthError::CredentialStoreError(e.to_string())
}

#[async_trait]
impl CredentialStore for KeychainCredentials {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        Ok(self.load_sign_in().await.map_err(store_error)?.and_then(|s| s.credentials))
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let existing = self.load_sign_in().await.map_err(store_error)?;
        let pending = self.pending.lock().await.clone();
        let had_sign_in = existing.is_some();
        let mut sign_in = match (pending, existing) {
            (Some((resource, metadata)), _) => SignIn { resource, metadata, credentials: None, refused: None },
            (None, Some(s)) => s,
            (None, None) => {
                return Err(AuthError::CredentialStoreError(format!(
                    "no sign-in to `{}` to save tokens into",
                    self.server
                )))
            }
        };
        sign_in.credentials = Some(credentials);
        sign_in.refused = None;
        let Some(refusal) = sign_in.refusal() else {
            return self.write(sign_in).await.map_err(store_error);
        };
        // Refused: the new tokens are dropped, and so are the stored ones (the refresh
        // token they replace may be spent); the sign-in says why until done again.
        tracing::warn!(server = %self.server, "a token response was refused: {refusal}");
        *self.refusal.lock().await = Some(refusal.clone());
        if had_sign_in {
            self.write(sign_in.checked()).await.map_err(store_error)?;
        }
        Err(AuthError::CredentialStoreError(refused_text(&refusal)))
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.forget().await.map(|_| ()).map_err(store_error)
    }

    async fn acquire_refresh_guard(&self) -> Result<Option<rmcp::transport::auth::CredentialRefreshGuard>, AuthError> {
        let guard = self.refresh.clone().lock_owned().await;
        Ok(Some(rmcp::transport::auth::CredentialRefreshGuard::new(guard)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const MCP: &str = "http://127.0.0.1:9/mcp";

    fn sign_in(access: &str, scope: Option<&str>) -> SignIn {
        let mut token = serde_json::json!({"access_token": access, "token_type": "Bearer", "refresh_token": "rt"});
        if let Some(s) = scope {
            token["scope"] = s.into();
        }
        serde_json::from_value(serde_json::json!({
            "resource": MCP,
            "metadata": {"authorization_endpoint": "http://127.0.0.1:9/a", "token_endpoint": "http://127.0.0.1:9/t"},
            "credentials": {"client_id": "c", "token_response": token, "granted_scopes": ["read", "write"]},
        }))
        .unwrap()
    }

    #[test]
    fn i15_12_a_stored_token_for_another_audience_is_dropped_when_read() {
        let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let foreign = format!("{}.{}.sig", e(b"{}"), e(br#"{"aud":"https://another.example/mcp"}"#));
        let read = sign_in(&foreign, None).checked();
        assert!(read.credentials.is_none(), "the refused token must not be kept");
        let why = read.refused.unwrap();
        assert!(why.contains("another audience") && why.contains("another.example"), "{why}");
        let fine = sign_in("at_opaque", None).checked();
        assert!(fine.credentials.is_some() && fine.refused.is_none());
    }

    #[test]
    fn i15_12_the_scopes_shown_are_the_ones_the_last_token_response_granted() {
        assert_eq!(sign_in("at", Some("read")).token_scopes(), vec!["read".to_string()]);
        assert_eq!(sign_in("at", None).token_scopes(), vec!["read".to_string(), "write".to_string()]);
    }
}
