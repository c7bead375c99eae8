//! The company's OpenID provider, as the hub's staff sign-in uses it (the `openidconnect`
//! crate does the protocol: discovery, PKCE S256, `state`, `nonce`, the ID token's
//! signature, `iss`, `aud` and `exp`). What this module adds: the provider's metadata
//! and keys kept and read again when a token names a key they lack (rotation), and the
//! person read from a verified token by the claim names the config gives.
//!
//! It never accepts an ID token it did not verify, never logs or stores a token, and
//! never follows a redirect from the provider (SSRF).

use crate::config::{ClaimNames, HubConfig, OidcSettings};
use crate::roles::Role;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// How long discovered metadata and keys are kept before they are read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// A person, as a verified ID token names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub subject: String,
    pub email: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub manager: Option<String>,
}

/// Why a sign-in failed, in words for the person and the audit.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the identity provider could not be reached or described itself wrongly: {0}")]
    Discovery(String),
    #[error("the identity provider refused the code: {0}")]
    Exchange(String),
    #[error("the identity provider sent no ID token")]
    NoIdToken,
    #[error("the ID token was refused: {0}")]
    Token(String),
    #[error("the ID token has no usable `{0}` claim")]
    MissingClaim(String),
    #[error("the identity provider says the email {0} is not verified")]
    UnverifiedEmail(String),
}

/// A sign-in in progress: what the callback needs to finish it.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The provider, with its metadata and keys kept for [`METADATA_TTL`].
pub struct Provider {
    settings: OidcSettings,
    client_secret: Option<String>,
    redirect: RedirectUrl,
    http: reqwest::Client,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

impl Provider {
    /// `redirect` is `<public_url>/v1/auth/callback`; the secret is read by the caller
    /// from `client_secret_file`.
    pub fn new(settings: OidcSettings, client_secret: Option<String>, redirect: &str) -> Result<Self, SignInError> {
        let redirect = RedirectUrl::new(redirect.to_string()).map_err(|e| SignInError::Discovery(e.to_string()))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| SignInError::Discovery(e.to_string()))?;
        Ok(Provider { settings, client_secret, redirect, http, metadata: RwLock::new(None) })
    }

    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, SignInError> {
        if !fresh {
            if let Some((m, at)) = self.metadata.read().await.as_ref() {
                if at.elapsed() < METADATA_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| SignInError::Discovery(e.to_string()))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SignInError::Discovery(error_chain(&e)))?;
        *self.metadata.write().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Client {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Where to send the person, with a fresh `state`, `nonce` and PKCE S256 challenge.
    pub async fn start(&self) -> Result<Started, SignInError> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Trades `code` for tokens and returns the person the verified ID token names.
    pub async fn finish(&self, code: &str, pkce_verifier: &str, nonce: &str) -> Result<Person, SignInError> {
        let client = self.client(self.metadata(false).await?);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SignInError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Exchange(error_chain(&e)))?;
        let _ = response.access_token();
        let raw = response.id_token().ok_or(SignInError::NoIdToken)?.to_string();
        let nonce = Nonce::new(nonce.to_string());
        let first = verify(&raw, &client.id_token_verifier(), &nonce, &self.settings.claims);
        match first {
            // A key the kept set lacks: the provider may have rotated; read it again once.
            Err(SignInError::Token(why)) if why.contains("key") => {
                let fresh = self.client(self.metadata(true).await?);
                let again = verify(&raw, &fresh.id_token_verifier(), &nonce, &self.settings.claims);
                again
            }
            other => other,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Verifies `raw` (signature, `iss`, `aud`, `exp`, `nonce`) and reads the person from it
/// by the configured claim names.
pub fn verify(
    raw: &str,
    verifier: &CoreIdTokenVerifier,
    nonce: &Nonce,
    names: &ClaimNames,
) -> Result<Person, SignInError> {
    let token = CoreIdToken::from_str(raw).map_err(|e| SignInError::Token(format!("not a signed JWT ({e})")))?;
    let claims = token.claims(verifier, nonce).map_err(|e| SignInError::Token(error_chain(&e)))?;
    // The signature holds: the payload can be read as the provider wrote it, for claims
    // under names of the company's choosing.
    let payload = raw.split('.').nth(1).unwrap_or_default();
    let payload: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|b: Vec<u8>| serde_json::from_slice(&b).ok())
        .ok_or_else(|| SignInError::Token("the payload is not JSON".into()))?;
    let text = |name: &str| payload.get(name).and_then(|v| v.as_str()).map(str::to_string).filter(|s| !s.is_empty());
    let email = text(&names.email)
        .filter(|e| e.contains('@') && !e.chars().any(char::is_control))
        .ok_or_else(|| SignInError::MissingClaim(names.email.clone()))?;
    if names.email == "email" && payload.get("email_verified").and_then(|v| v.as_bool()) == Some(false) {
        return Err(SignInError::UnverifiedEmail(email));
    }
    let groups = match payload.get(&names.groups) {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|g| g.as_str().map(str::to_string)).collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Ok(Person {
        subject: claims.subject().as_str().to_string(),
        email: email.to_lowercase(),
        name: text(&names.name),
        groups,
        manager: text(&names.manager),
    })
}

/// Staff sign-in as configured.
pub struct SignIn {
    pub provider: Provider,
    /// IdP group → role.
    pub roles: BTreeMap<String, Role>,
    pub session_hours: u64,
    /// `scheme://host[:port]` of `public_url`: what a cookie-carrying request that
    /// changes something must name as its `Origin`.
    pub public_origin: String,
    /// Whether the cookie is `Secure` (an https public URL).
    pub secure_cookie: bool,
    /// `public_url` without a trailing slash: where people's browsers reach the hub.
    pub public_url: String,
}

impl SignIn {
    /// From hub.toml's `[oidc]`, `public_url` and `[roles]` (checked when loaded), and the
    /// client secret read from its file.
    pub fn new(config: &HubConfig, oidc: &OidcSettings, client_secret: Option<String>) -> Result<Self, SignInError> {
        let public = config.public_url.as_deref().unwrap_or_default().trim_end_matches('/');
        let provider = Provider::new(oidc.clone(), client_secret, &format!("{public}/v1/auth/callback"))?;
        let origin = public.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        Ok(SignIn {
            provider,
            roles: config.roles.clone(),
            session_hours: oidc.session_hours,
            public_origin: origin,
            secure_cookie: public.starts_with("https://"),
            public_url: public.to_string(),
        })
    }

    /// The roles `person`'s groups hold, fewest first, without repeats.
    pub fn roles_of(&self, person: &Person) -> Vec<Role> {
        let mut roles: Vec<Role> = person.groups.iter().filter_map(|g| self.roles.get(g).copied()).collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

#[cfg(test)]
#[path = "oidc_tests.rs"]
pub(crate) mod tests;
