//! One remote server's sign-in, kept as one keychain item (`oauth:SERVER`): the client
//! registration, the tokens, and the endpoints needed to refresh and revoke them without
//! asking the network first. Implements rmcp's `CredentialStore`, so rmcp refreshes and
//! saves through it. A copy is held in memory so a call does not cost a keychain trip;
//! every save goes to the keychain first.

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
}

impl KeychainCredentials {
    pub fn new(server: &str, keychain: Keychain) -> Self {
        KeychainCredentials {
            server: server.to_string(),
            keychain,
            cache: Arc::default(),
            pending: Arc::default(),
            refresh: Arc::default(),
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
                    *cache = Some(parsed);
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
        let sign_in = match (pending, existing) {
            (Some((resource, metadata)), _) => SignIn { resource, metadata, credentials: Some(credentials) },
            (None, Some(mut s)) => {
                s.credentials = Some(credentials);
                s
            }
            (None, None) => {
                return Err(AuthError::CredentialStoreError(format!(
                    "no sign-in to `{}` to save tokens into",
                    self.server
                )))
            }
        };
        self.write(sign_in).await.map_err(store_error)
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.forget().await.map(|_| ()).map_err(store_error)
    }

    async fn acquire_refresh_guard(&self) -> Result<Option<rmcp::transport::auth::CredentialRefreshGuard>, AuthError> {
        let guard = self.refresh.clone().lock_owned().await;
        Ok(Some(rmcp::transport::auth::CredentialRefreshGuard::new(guard)))
    }
}
