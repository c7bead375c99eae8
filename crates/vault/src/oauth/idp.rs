//! The person's sign-in to the company's identity provider, for enterprise-managed
//! authorization: once, in the browser (OpenID Connect code flow with PKCE S256, `state`
//! and `nonce`, the redirect to this machine's loopback listener), the ID token verified
//! (signature, `iss`, `aud`, `exp`, `nonce`; the `openidconnect` crate) and kept in the
//! keychain (`Account::Idp`) with the refresh token the IdP gave, if any (ask for
//! `offline_access` where the IdP wants it). [`id_token`] hands the ID token to the token
//! exchange while it has more than a minute left, renews it with the refresh token when it
//! has not (the new one verified as the first), and only without one asks the person to
//! sign in again.
//!
//! It never logs, prints or writes a token anywhere but the keychain.

use super::callback::{Loopback, Page, Redirect};
use super::guard;
use crate::{Account, Keychain, Secret, VaultError};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The company's identity provider, as the config names it (`[identity_provider]`).
#[derive(Clone)]
pub struct IdentityProvider {
    pub issuer: String,
    /// The gateway's client id at the IdP.
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider").field("issuer", &self.issuer).field("client_id", &self.client_id).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("sign in to your company's identity provider first: `countersign auth login {server}` ({why})")]
    NeedsSignIn { server: String, why: String },
    #[error("the identity provider {issuer}: {reason}")]
    Provider { issuer: String, reason: String },
    #[error(transparent)]
    Keychain(#[from] VaultError),
}

/// What the keychain keeps.
#[derive(Serialize, Deserialize)]
struct Kept {
    issuer: String,
    client_id: String,
    id_token: String,
    /// Seconds since the epoch.
    expires_at: u64,
    token_endpoint: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| e.to_string())
}

/// A usable ID token from the keychain, and the IdP's token endpoint: one with more than
/// a minute left, issued by `idp` to its client.
pub async fn id_token(idp: &IdentityProvider, keychain: &Keychain, server: &str) -> Result<(Secret, String), IdpError> {
    let needs = |why: &str| IdpError::NeedsSignIn { server: server.to_string(), why: why.to_string() };
    let kept = match keychain.get(&Account::Idp(idp.issuer.clone())).await {
        Ok(k) => k,
        Err(VaultError::Missing { .. }) => return Err(needs("no sign-in to it is stored")),
        Err(e) => return Err(e.into()),
    };
    let kept: Kept = serde_json::from_str(kept.expose()).map_err(|_| needs("the stored sign-in cannot be read"))?;
    if kept.issuer != idp.issuer || kept.client_id != idp.client_id {
        return Err(needs("the stored sign-in is for another identity provider or client"));
    }
    if kept.expires_at > now() + 60 {
        return Ok((Secret::new(kept.id_token), kept.token_endpoint));
    }
    let Some(refresh) = kept.refresh_token.clone() else {
        return Err(needs("the sign-in to it has expired"));
    };
    let renewed = renew(idp, &refresh).await.map_err(|why| needs(&format!("renewing the sign-in failed: {why}")))?;
    let text = serde_json::to_string(&renewed).map_err(|e| needs(&e.to_string()))?;
    keychain.set(&Account::Idp(idp.issuer.clone()), &Secret::new(text)).await?;
    tracing::debug!(issuer = %idp.issuer, "the identity provider sign-in was renewed");
    Ok((Secret::new(renewed.id_token), renewed.token_endpoint))
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// The IdP's metadata and a client for it, and its token endpoint (discovery read again
/// each time: a sign-in or a renewal is rare).
async fn client_for(
    idp: &IdentityProvider,
    http: &reqwest::Client,
    redirect: Option<RedirectUrl>,
) -> Result<(Client, String), String> {
    guard::check_endpoint("identity provider", &idp.issuer).map_err(|e| e.to_string())?;
    let issuer = IssuerUrl::new(idp.issuer.clone()).map_err(|e| e.to_string())?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http).await.map_err(|e| chain(&e))?;
    let token_endpoint = metadata.token_endpoint().map(|u| u.to_string()).ok_or("no token endpoint")?;
    guard::check_endpoint("token_endpoint", &token_endpoint).map_err(|e| e.to_string())?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(idp.client_id.clone()),
        idp.client_secret.as_ref().map(|s| ClientSecret::new(s.expose().to_string())),
    );
    let redirect = match redirect {
        Some(r) => r,
        None => RedirectUrl::new("http://127.0.0.1/".into()).map_err(|e| e.to_string())?,
    };
    Ok((client.set_redirect_uri(redirect), token_endpoint))
}

/// A new ID token for the refresh token, verified (signature, `iss`, `aud`, `exp`).
async fn renew(idp: &IdentityProvider, refresh: &str) -> Result<Kept, String> {
    let http = http()?;
    let (client, token_endpoint) = client_for(idp, &http, None).await?;
    let response = client
        .exchange_refresh_token(&RefreshToken::new(refresh.to_string()))
        .map_err(|e| e.to_string())?
        .request_async(&http)
        .await
        .map_err(|e| chain(&e))?;
    let token = response.id_token().ok_or("the identity provider sent no new ID token")?;
    let claims = token.claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(())).map_err(|e| chain(&e))?;
    Ok(Kept {
        issuer: idp.issuer.clone(),
        client_id: idp.client_id.clone(),
        id_token: token.to_string(),
        expires_at: claims.expiration().timestamp().max(0) as u64,
        token_endpoint,
        // A rotated refresh token replaces the old one.
        refresh_token: Some(response.refresh_token().map_or(refresh.to_string(), |r| r.secret().clone())),
    })
}

/// Signs the person in to `idp` in the browser (`open` is handed the checked URL) and
/// keeps the verified ID token; returns the email it names, if any.
pub async fn sign_in(
    idp: &IdentityProvider,
    keychain: &Keychain,
    open: impl FnOnce(&url::Url) -> Result<(), String>,
    deadline: Duration,
) -> Result<Option<String>, IdpError> {
    let fail = |reason: String| IdpError::Provider { issuer: idp.issuer.clone(), reason };
    let http = http().map_err(fail)?;
    let mut listener = Loopback::bind().await.map_err(fail)?;
    let redirect = RedirectUrl::new(listener.redirect_uri().to_string()).map_err(|e| fail(e.to_string()))?;
    let (client, token_endpoint) = client_for(idp, &http, Some(redirect)).await.map_err(fail)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request =
        client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    for scope in idp.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let url = guard::check_endpoint("authorization URL", url.as_str()).map_err(|e| fail(e.to_string()))?;
    listener.expect_state(state.secret().clone()).map_err(fail)?;
    open(&url).map_err(|e| fail(format!("cannot open the browser: {e}")))?;
    let code = tokio::time::timeout(deadline, async {
        let Some(arrival) = listener.next().await else { return Err(fail("the loopback listener stopped".into())) };
        match &arrival.redirect {
            Redirect::Refused { error, description } => {
                let detail = description.as_ref().map(|d| format!(": {d}")).unwrap_or_default();
                let e = fail(format!("it answered `{error}`{detail}"));
                arrival.answer(Page::new("Sign-in refused", "The identity provider refused the sign-in."));
                Err(e)
            }
            Redirect::Code { code, .. } => {
                let code = code.clone();
                arrival.answer(Page::new("Signed in", "Countersign is signed in. You can close this tab."));
                Ok(code)
            }
        }
    })
    .await
    .map_err(|_| fail("no answer from the browser in time".into()))?;
    listener.close().await;
    let code = code?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| fail(e.to_string()))?
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .map_err(|e| fail(format!("the code was refused: {}", chain(&e))))?;
    let token = response.id_token().ok_or_else(|| fail("it sent no ID token".into()))?;
    let claims =
        token.claims(&client.id_token_verifier(), &nonce).map_err(|e| fail(format!("the ID token: {}", chain(&e))))?;
    let expires_at = claims.expiration().timestamp().max(0) as u64;
    let email = claims.email().map(|e| e.as_str().to_string());
    let kept = Kept {
        issuer: idp.issuer.clone(),
        client_id: idp.client_id.clone(),
        id_token: token.to_string(),
        expires_at,
        token_endpoint,
        refresh_token: response.refresh_token().map(|r| r.secret().clone()),
    };
    let text = serde_json::to_string(&kept).map_err(|e| fail(e.to_string()))?;
    keychain.set(&Account::Idp(idp.issuer.clone()), &Secret::new(text)).await?;
    Ok(email)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
