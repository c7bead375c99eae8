//! The gateway's side of a sign-in: the bearer token to put on requests to one remote
//! server, refreshed before it expires (rmcp refreshes when little time is left) and
//! once more when the server refuses it. The token goes only into the upstream request's
//! `Authorization` header; a client's own header is never used. A refreshed token passes
//! the same checks as a sign-in's (`accept`, applied by the store); one that fails is
//! never sent, and the server then needs a sign-in, saying why.

use super::store::{refused_text, KeychainCredentials};
use crate::{Keychain, Secret, VaultError};
use rmcp::transport::auth::{AuthError, AuthorizationManager};
use tokio::sync::Mutex;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BearerError {
    #[error("`{server}` needs you to sign in: run `countersign auth login {server}` or choose Sign in to {server} in the Countersign app ({why})")]
    NeedsSignIn { server: String, why: String },
    #[error(transparent)]
    Keychain(#[from] VaultError),
    #[error("cannot get a token for `{server}`: {reason}")]
    Failed { server: String, reason: String },
}

/// The state of one server's credentials, for the app and `auth status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CredentialState {
    /// No sign-in is stored (the server may not need one).
    None,
    SignedIn {
        issuer: Option<String>,
        expires_at: Option<u64>,
        /// The scopes the current access token carries, as the token response that brought
        /// it (the sign-in's or the last refresh's) granted them.
        scopes: Vec<String>,
        /// When that token response arrived (seconds since the epoch).
        received_at: Option<u64>,
    },
    /// Stored tokens exist but cannot be used; sign in again.
    NeedsSignIn { why: String },
    /// The keychain could not be read.
    KeychainProblem { why: String },
}

pub struct ServerAuth {
    server: String,
    url: String,
    loaded: Mutex<Option<Loaded>>,
    /// Tokens come from the person's IdP sign-in instead (enterprise-managed
    /// authorization): obtained again, silently, when the last is spent or refused.
    enterprise: Option<(super::Enterprise, Mutex<Option<Held>>)>,
}

/// An enterprise token held, and when it expires (seconds since the epoch), if said.
type Held = (Secret, Option<u64>);

enum Loaded {
    /// No sign-in in the keychain when last looked.
    Nothing,
    Manager(Box<AuthorizationManager>, KeychainCredentials),
}

impl ServerAuth {
    pub fn new(server: &str, url: &str) -> Self {
        ServerAuth { server: server.to_string(), url: url.to_string(), loaded: Mutex::new(None), enterprise: None }
    }

    /// A server reached with the person's IdP sign-in (`oauth = { enterprise = true }`).
    pub fn enterprise(server: &str, url: &str, settings: super::Enterprise) -> Self {
        ServerAuth { enterprise: Some((settings, Mutex::new(None))), ..ServerAuth::new(server, url) }
    }

    /// The enterprise token to send: the one held while it has more than 30 s left, else a
    /// new one (`fresh`: a new one whatever is held, after a refusal).
    async fn enterprise_bearer(
        &self,
        settings: &super::Enterprise,
        held: &Mutex<Option<Held>>,
        fresh: bool,
    ) -> Result<Secret, BearerError> {
        let mut held = held.lock().await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if let (false, Some((token, expires))) = (fresh, held.as_ref()) {
            if expires.is_none_or(|at| at > now + 30) {
                return Ok(token.clone());
            }
        }
        let keychain =
            Keychain::open().await.map_err(|e| e.for_account(&crate::Account::OAuth(self.server.clone())))?;
        match super::enterprise::obtain(&self.server, &self.url, settings, keychain).await {
            Ok(got) => {
                *held = Some((got.access_token.clone(), got.expires_at));
                Ok(got.access_token)
            }
            Err(super::EnterpriseError::Idp(e @ super::idp::IdpError::NeedsSignIn { .. })) => {
                *held = None;
                Err(self.needs(e.to_string()))
            }
            Err(e) => {
                *held = None;
                Err(BearerError::Failed { server: self.server.clone(), reason: e.to_string() })
            }
        }
    }

    fn needs(&self, why: impl Into<String>) -> BearerError {
        BearerError::NeedsSignIn { server: self.server.clone(), why: why.into() }
    }

    async fn load(&self) -> Result<Loaded, BearerError> {
        let keychain =
            Keychain::open().await.map_err(|e| e.for_account(&crate::Account::OAuth(self.server.clone())))?;
        let store = KeychainCredentials::new(&self.server, keychain);
        let Some(sign_in) = store.load_sign_in().await? else { return Ok(Loaded::Nothing) };
        if sign_in.resource != self.url {
            return Err(self.needs(format!("the stored sign-in is for {}, not {}", sign_in.resource, self.url)));
        }
        if let Some(why) = sign_in.refused {
            return Err(self.needs(why));
        }
        let failed = |e: AuthError| BearerError::Failed { server: self.server.clone(), reason: e.to_string() };
        let mut manager = AuthorizationManager::new(self.url.as_str()).await.map_err(failed)?;
        manager.set_metadata(sign_in.metadata.clone());
        manager.set_credential_store(store.clone());
        match manager.initialize_from_store().await {
            Ok(true) => Ok(Loaded::Manager(Box::new(manager), store)),
            Ok(false) => Err(self.needs("the stored sign-in holds no token")),
            Err(e) => Err(failed(e)),
        }
    }

    /// The token to send, or `None` when no sign-in is stored (the request goes without;
    /// a server that needs one answers 401, and then [`ServerAuth::after_refusal`]).
    pub async fn bearer(&self) -> Result<Option<Secret>, BearerError> {
        if let Some((settings, held)) = &self.enterprise {
            return self.enterprise_bearer(settings, held, false).await.map(Some);
        }
        let mut loaded = self.loaded.lock().await;
        if loaded.is_none() {
            *loaded = Some(self.load().await?);
        }
        match loaded.as_ref() {
            Some(Loaded::Manager(manager, store)) => match manager.get_access_token().await {
                Ok(token) => Ok(Some(Secret::new(token))),
                Err(e) => {
                    let refused = store.take_refusal().await;
                    let required = matches!(e, AuthError::AuthorizationRequired);
                    if refused.is_some() || required {
                        *loaded = None;
                    }
                    match refused {
                        Some(r) => Err(self.needs(format!("on refresh, {}", refused_text(&r)))),
                        None if required => Err(self.needs("the sign-in expired and could not be refreshed")),
                        None => Err(BearerError::Failed { server: self.server.clone(), reason: e.to_string() }),
                    }
                }
            },
            _ => Ok(None),
        }
    }

    /// The server refused the request (401). Re-reads the keychain (a sign-in may have
    /// happened elsewhere) and refreshes the token; the token to retry with, if any.
    pub async fn after_refusal(&self, sent: Option<&Secret>) -> Result<Secret, BearerError> {
        if let Some((settings, held)) = &self.enterprise {
            return self.enterprise_bearer(settings, held, true).await;
        }
        let mut loaded = self.loaded.lock().await;
        *loaded = Some(self.load().await?);
        let Some(Loaded::Manager(manager, store)) = loaded.as_ref() else {
            return Err(self.needs("the server asks for a sign-in"));
        };
        let current = manager.get_access_token().await.ok().map(Secret::new);
        if let Some(token) = current.filter(|t| sent.is_none_or(|s| s.expose() != t.expose())) {
            return Ok(token);
        }
        match manager.refresh_token().await {
            Ok(response) => {
                use oauth2::TokenResponse;
                Ok(Secret::new(response.access_token().secret().to_string()))
            }
            Err(e) => {
                let why = match store.take_refusal().await {
                    Some(r) => format!("on refresh, {}", refused_text(&r)),
                    None => format!("the server refused the token and it could not be refreshed: {e}"),
                };
                *loaded = None;
                Err(self.needs(why))
            }
        }
    }

    /// What the keychain holds for this server.
    pub async fn state(&self) -> CredentialState {
        let keychain = match Keychain::open().await {
            Ok(k) => k,
            Err(e) => return CredentialState::KeychainProblem { why: e.to_string() },
        };
        let store = KeychainCredentials::new(&self.server, keychain);
        match store.load_sign_in().await {
            Err(e) => CredentialState::KeychainProblem { why: e.to_string() },
            Ok(None) => CredentialState::None,
            Ok(Some(super::store::SignIn { refused: Some(why), .. })) => CredentialState::NeedsSignIn { why },
            Ok(Some(s)) => match s.credentials.as_ref().and_then(|c| c.token_response.as_ref().map(|t| (c, t))) {
                None => CredentialState::NeedsSignIn { why: "no token is stored".into() },
                Some((c, t)) => {
                    use oauth2::TokenResponse;
                    let expires_at = c.token_received_at.zip(t.expires_in()).map(|(at, d)| at + d.as_secs());
                    CredentialState::SignedIn {
                        issuer: s.metadata.issuer.clone(),
                        expires_at,
                        scopes: s.token_scopes(),
                        received_at: c.token_received_at,
                    }
                }
            },
        }
    }
}
