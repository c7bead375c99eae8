//! Signing in to a remote MCP server, as the MCP authorization spec asks of a client:
//! discover the protected resource metadata from the server's `WWW-Authenticate`
//! challenge, then the authorization server's metadata (RFC 8414 or OpenID Connect);
//! refuse what fails the checks in `guard` or lacks PKCE S256; register (a client id from
//! config, a client ID metadata document, or dynamic registration); send the browser to
//! the authorization endpoint with PKCE S256, `state` and the `resource` (RFC 8707);
//! take the redirect on the loopback listener (`callback`: one exact path, this sign-in's
//! `state` and `Host` only; anything else is answered and the sign-in keeps waiting);
//! check `iss` (RFC 9207); exchange the code; keep the result in the keychain, where the
//! store refuses a token minted for another audience (`accept`, the same checks every
//! refresh passes).
//!
//! The protocol itself is rmcp's `auth` (built on the `oauth2` crate); this module adds
//! the checks and the loopback redirect. It never logs a code or a token.

use super::accept::RefusedToken;
use super::callback::{Loopback, Page, Redirect};
use super::guard::{self, UnsafeUrl};
use super::store::KeychainCredentials;
use crate::{Keychain, VaultError};
use rmcp::transport::auth::{AuthError, AuthorizationManager, AuthorizationRequest, AuthorizationSession};
use std::time::Duration;
use url::Url;

pub use super::callback::CALLBACK_PATH;

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("`{server}` does not ask for a sign-in (it answered without a 401 challenge)")]
    NotRequired { server: String },
    #[error("cannot reach `{server}`: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("`{server}` publishes no usable authorization metadata: {reason}")]
    Discovery { server: String, reason: String },
    #[error("`{server}`'s authorization metadata is refused: {source}")]
    Unsafe {
        server: String,
        #[source]
        source: UnsafeUrl,
    },
    #[error("`{server}`'s authorization server does not offer PKCE with S256, so signing in is refused")]
    NoPkce { server: String },
    #[error("signing in to `{server}` failed: {reason}")]
    Flow { server: String, reason: String },
    #[error("`{server}`'s authorization server {source}; it was discarded")]
    RefusedToken {
        server: String,
        #[source]
        source: RefusedToken,
    },
    #[error("no answer from the browser within {} minutes; sign in again", .0.as_secs() / 60)]
    TimedOut(Duration),
    #[error(transparent)]
    Keychain(#[from] VaultError),
}

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct SignInRequest {
    pub server: String,
    pub url: String,
    pub scopes: Vec<String>,
    pub client_id: Option<String>,
    /// How long to wait for the browser to come back.
    pub deadline: Option<Duration>,
}

/// The outcome of a sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub issuer: Option<String>,
    pub scopes: Vec<String>,
}

/// Runs the whole flow. `open` is handed the checked authorization URL: it opens the
/// browser (see `browser`) or shows the URL for the user to open.
pub async fn sign_in(
    request: &SignInRequest,
    keychain: Keychain,
    open: impl FnOnce(&Url) -> Result<(), String>,
) -> Result<SignedIn, SignInError> {
    let server = request.server.clone();
    let flow = |reason: String| SignInError::Flow { server: server.clone(), reason };
    let challenge = probe(&request.server, &request.url).await?;

    let mut manager = AuthorizationManager::new(request.url.as_str()).await.map_err(|e| flow(e.to_string()))?;
    let resolution = manager
        .resolve_metadata_from_challenge(Some(&challenge))
        .await
        .map_err(|e| SignInError::Discovery { server: server.clone(), reason: e.to_string() })?;
    if !resolution.source.is_discovered() {
        return Err(SignInError::Discovery {
            server: server.clone(),
            reason: "neither protected resource nor authorization server metadata was found".into(),
        });
    }
    let metadata = resolution.metadata;
    check_metadata(&server, &metadata)?;

    let store = KeychainCredentials::new(&server, keychain);
    store.prepare(&request.url, metadata.clone()).await;
    manager.set_metadata(metadata.clone());
    manager.set_credential_store(store.clone());

    let mut listener = Loopback::bind().await.map_err(flow)?;
    let mut auth = AuthorizationRequest::new(listener.redirect_uri()).with_client_name("Countersign");
    if !request.scopes.is_empty() {
        auth = auth.with_scopes(request.scopes.iter().cloned());
    }
    if let Some(id) = &request.client_id {
        auth = auth.with_preregistered_client(id.clone());
    }
    let session = AuthorizationSession::new(manager, auth).await.map_err(|(_, e)| flow(describe(e)))?;
    let url = guard::check_endpoint("authorization URL", session.get_authorization_url())
        .map_err(|source| SignInError::Unsafe { server: server.clone(), source })?;
    let state = state_of(&url).map_err(flow)?;
    listener.expect_state(state.clone()).map_err(flow)?;
    open(&url).map_err(|e| flow(format!("cannot open the browser: {e}")))?;

    // The listener hands on only a redirect carrying this sign-in's state (others are
    // answered in their own tab and the wait goes on), so the first one decides.
    let deadline = request.deadline.unwrap_or(Duration::from_secs(300));
    let outcome = tokio::time::timeout(deadline, async {
        let Some(arrival) = listener.next().await else {
            return Err(flow("the loopback listener stopped".into()));
        };
        match &arrival.redirect {
            Redirect::Refused { error, description } => {
                let detail = description.as_ref().map(|d| format!(": {d}")).unwrap_or_default();
                let e = flow(format!("the authorization server answered `{error}`{detail}"));
                arrival.answer(Page::new("Sign-in refused", "The authorization server refused the sign-in."));
                Err(e)
            }
            Redirect::Code { code, iss } => {
                match session.handle_callback_with_issuer(code, &state, iss.as_deref()).await {
                    Ok(_) => {
                        arrival.answer(Page::new("Signed in", "Countersign is signed in. You can close this tab."));
                        Ok(())
                    }
                    Err(e) => {
                        arrival.answer(Page::new("Sign-in failed", "Countersign refused this sign-in; see the app."));
                        match store.take_refusal().await {
                            Some(source) => Err(SignInError::RefusedToken { server: server.clone(), source }),
                            None => Err(flow(describe(e))),
                        }
                    }
                }
            }
        }
    })
    .await;
    listener.close().await;
    match outcome {
        Err(_) => return Err(SignInError::TimedOut(deadline)),
        Ok(Err(e)) => {
            let _ = store.forget().await;
            return Err(e);
        }
        Ok(Ok(())) => {}
    }

    let sign_in = store.load_sign_in().await?.ok_or_else(|| flow("no token was kept".into()))?;
    if let Some(why) = &sign_in.refused {
        let _ = store.forget().await;
        return Err(flow(why.clone()));
    }
    if sign_in.credentials.as_ref().and_then(|c| c.token_response.as_ref()).is_none() {
        return Err(flow("no token was issued".into()));
    }
    Ok(SignedIn { issuer: metadata.issuer.clone(), scopes: sign_in.token_scopes() })
}

/// The `state` the authorization URL carries (exactly one).
fn state_of(url: &Url) -> Result<String, String> {
    let mut states = url.query_pairs().filter(|(k, _)| k == "state").map(|(_, v)| v.into_owned());
    match (states.next(), states.next()) {
        (Some(state), None) if !state.is_empty() => Ok(state),
        _ => Err("the authorization URL does not carry exactly one `state`".into()),
    }
}

/// Whether the server at `url` asks for a sign-in (answers an unauthenticated
/// `initialize` with 401). Errors reaching it count as "not known to".
pub async fn asks_for_sign_in(url: &str) -> bool {
    probe("", url).await.is_ok()
}

/// The server's `WWW-Authenticate` challenge to an unauthenticated `initialize` (an error
/// when it answers without a 401).
pub(crate) async fn challenge(server: &str, url: &str) -> Result<String, SignInError> {
    probe(server, url).await
}

/// An unauthenticated `initialize`, to get the server's `WWW-Authenticate` challenge.
async fn probe(server: &str, url: &str) -> Result<String, SignInError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| SignInError::Unreachable { server: server.into(), reason: e.to_string() })?;
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "countersign", "version": env!("CARGO_PKG_VERSION")}}
    });
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .map_err(|e| SignInError::Unreachable { server: server.into(), reason: e.without_url().to_string() })?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(SignInError::NotRequired { server: server.into() });
    }
    Ok(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("Bearer").to_string())
}

/// The checks rmcp does not make, or makes more loosely than we want.
fn check_metadata(server: &str, m: &rmcp::transport::auth::AuthorizationMetadata) -> Result<(), SignInError> {
    let unsafe_url = |source| SignInError::Unsafe { server: server.into(), source };
    guard::check_endpoint("authorization_endpoint", &m.authorization_endpoint).map_err(unsafe_url)?;
    guard::check_endpoint("token_endpoint", &m.token_endpoint).map_err(unsafe_url)?;
    if let Some(r) = &m.registration_endpoint {
        guard::check_endpoint("registration_endpoint", r).map_err(unsafe_url)?;
    }
    if let Some(r) = m.additional_fields.get("revocation_endpoint").and_then(|v| v.as_str()) {
        guard::check_endpoint("revocation_endpoint", r).map_err(unsafe_url)?;
    }
    // The spec: a client MUST refuse when code_challenge_methods_supported is absent or
    // lacks S256 (rmcp tolerates absence).
    let s256 = m.code_challenge_methods_supported.as_ref().is_some_and(|ms| ms.iter().any(|x| x == "S256"));
    if !s256 {
        return Err(SignInError::NoPkce { server: server.into() });
    }
    Ok(())
}

fn describe(e: AuthError) -> String {
    match e {
        AuthError::AuthorizationServerMismatch { expected_issuer, received_issuer } => {
            format!("the redirect's issuer `{received_issuer}` is not the authorization server `{expected_issuer}`")
        }
        AuthError::AuthorizationServerMissingIssuer { expected_issuer } => {
            format!("the redirect carries no issuer though `{expected_issuer}` promised one")
        }
        AuthError::PkceUnsupported => "the authorization server does not offer PKCE with S256".into(),
        other => {
            let text = other.to_string();
            if text.contains("state") || text.contains("CSRF") || text.contains("csrf") {
                format!("the redirect's `state` does not match a sign-in in progress ({text})")
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i15_11_the_state_is_read_from_the_authorization_url_once() {
        let url = |q: &str| Url::parse(&format!("https://as.example/authorize?{q}")).unwrap();
        assert_eq!(state_of(&url("client_id=a&state=s1&code_challenge=x")), Ok("s1".into()));
        assert!(state_of(&url("state=planted&client_id=a&state=s1")).is_err(), "a state planted in the endpoint");
        assert!(state_of(&url("client_id=a")).is_err());
        assert!(state_of(&url("state=")).is_err());
    }
}
