//! Enterprise-managed authorization (the MCP extension; ID-JAG): access to a remote MCP
//! server from the person's sign-in to the company's IdP, with no consent screen per
//! server. The server's authorization server is found as for a sign-in (its `401`
//! challenge, protected resource metadata, then the authorization server's metadata,
//! every URL checked by [`super::guard`], and pinned to the issuer the config names when
//! it names one); the ID token the person's IdP sign-in left in the keychain is traded at
//! the IdP for an ID-JAG (RFC 8693 token exchange), and that at the server's authorization
//! server for an access token (RFC 7523 JWT bearer grant). Both legs are rmcp's
//! (`auth-enterprise-managed`); the access token passes [`super::accept`] and is kept as
//! the server's sign-in, so `auth status` and sign-out work as for any other.
//!
//! It never opens a browser (that is [`super::idp::sign_in`], once), never logs a token,
//! and never sends the ID token anywhere but the IdP's own token endpoint.

use super::accept;
use super::guard;
use super::idp::{self, IdentityProvider, IdpError};
use super::store::KeychainCredentials;
use crate::{Keychain, Secret};
use oauth2::ClientSecret;
use rmcp::transport::auth::enterprise::{
    EmaAuthorizationServer, EmaClientAuthentication, EmaError, EmaExchangeRequest, EmaExchangeStage,
};
use rmcp::transport::auth::{AuthorizationManager, CredentialStore, OAuthTokenResponse, StoredCredentials};

/// How one server is reached with the person's IdP sign-in (`oauth = { enterprise = true }`).
#[derive(Clone, Debug)]
pub struct Enterprise {
    pub idp: IdentityProvider,
    /// The gateway's client id at the server's authorization server.
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    /// The authorization server's issuer the company approved for this server; a server
    /// pointing elsewhere is refused.
    pub authorization_server: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnterpriseError {
    #[error(transparent)]
    Idp(#[from] IdpError),
    #[error("`{server}`: {reason}")]
    Discovery { server: String, reason: String },
    #[error("`{server}`: {reason}")]
    Refused { server: String, reason: String },
    #[error(transparent)]
    Keychain(#[from] crate::VaultError),
}

/// The token obtained.
pub struct Obtained {
    pub access_token: Secret,
    /// Seconds since the epoch, when the server said.
    pub expires_at: Option<u64>,
    pub issuer: Option<String>,
    pub scopes: Vec<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What an exchange's failure says to the person.
fn said(server: &str, idp: &str, e: EmaError) -> EnterpriseError {
    let at = |stage: EmaExchangeStage| match stage {
        EmaExchangeStage::IdentityProvider => format!("the identity provider {idp}"),
        EmaExchangeStage::ResourceAuthorizationServer => "its authorization server".to_string(),
        _ => "a party to the exchange".to_string(),
    };
    let reason = match e {
        EmaError::InvalidGrant(stage) => format!("{} refused the grant (invalid_grant)", at(stage)),
        EmaError::InsufficientUserAuthentication(stage) => {
            format!("{} asks for a stronger sign-in: sign in to the identity provider again", at(stage))
        }
        EmaError::OAuthRejected { stage, status, code } => {
            format!("{} refused access (HTTP {status}, {code})", at(stage))
        }
        EmaError::RequestFailed(stage) => format!("{} could not be reached", at(stage)),
        other => other.to_string(),
    };
    EnterpriseError::Refused { server: server.to_string(), reason }
}

/// Obtains an access token for `server` at `url` from the person's IdP sign-in, and keeps
/// it in the keychain as the server's sign-in.
pub async fn obtain(server: &str, url: &str, e: &Enterprise, keychain: Keychain) -> Result<Obtained, EnterpriseError> {
    let discovery = |reason: String| EnterpriseError::Discovery { server: server.to_string(), reason };
    let challenge = super::login::challenge(server, url).await.map_err(|e| discovery(e.to_string()))?;
    let manager = AuthorizationManager::new(url).await.map_err(|e| discovery(e.to_string()))?;
    let metadata = manager
        .resolve_metadata_from_challenge(Some(&challenge))
        .await
        .map_err(|e| discovery(format!("no usable authorization metadata: {e}")))?
        .metadata;
    let issuer = metadata.issuer.clone().ok_or_else(|| discovery("its authorization server names no issuer".into()))?;
    if let Some(pinned) = &e.authorization_server {
        if pinned.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(discovery(format!(
                "its authorization server is {issuer}, not {pinned} as the config approves; refused"
            )));
        }
    }
    guard::check_endpoint("issuer", &issuer).map_err(|e| discovery(e.to_string()))?;
    guard::check_endpoint("token_endpoint", &metadata.token_endpoint).map_err(|e| discovery(e.to_string()))?;

    let (id_token, idp_token_endpoint) = idp::id_token(&e.idp, &keychain, server).await?;
    let idp_auth = match &e.idp.client_secret {
        Some(s) => EmaClientAuthentication::ClientSecretBasic(ClientSecret::new(s.expose().to_string())),
        None => EmaClientAuthentication::None,
    };
    let resource_auth = match &e.client_secret {
        Some(s) => EmaClientAuthentication::ClientSecretPost(ClientSecret::new(s.expose().to_string())),
        None => EmaClientAuthentication::None,
    };
    let idp_as = EmaAuthorizationServer::new(e.idp.issuer.clone(), idp_token_endpoint, e.idp.client_id.clone())
        .with_client_authentication(idp_auth);
    let resource_as = EmaAuthorizationServer::new(issuer.clone(), metadata.token_endpoint.clone(), e.client_id.clone())
        .with_client_authentication(resource_auth);
    let http = rmcp::transport::auth::default_oauth_http_client().map_err(|e| discovery(e.to_string()))?;
    let token = EmaExchangeRequest::new_with_id_token(idp_as, resource_as, url, id_token.expose())
        .with_scopes(e.scopes.clone())
        .exchange(&http, &http)
        .await
        .map_err(|err| said(server, &e.idp.issuer, err))?;

    let mut scopes: Vec<String> = token.scopes.iter().cloned().collect();
    scopes.sort();
    let mut response = serde_json::json!({
        "access_token": token.access_token.secret(),
        "token_type": "Bearer",
    });
    if let Some(d) = token.expires_in {
        response["expires_in"] = serde_json::json!(d.as_secs());
    }
    if !scopes.is_empty() {
        response["scope"] = serde_json::json!(scopes.join(" "));
    }
    let response: OAuthTokenResponse =
        serde_json::from_value(response).map_err(|e| discovery(format!("the token response: {e}")))?;
    accept::accept(url, &response).map_err(|r| EnterpriseError::Refused {
        server: server.to_string(),
        reason: format!("its authorization server {r}; it was discarded"),
    })?;
    let store = KeychainCredentials::new(server, keychain);
    store.prepare(url, metadata).await;
    let received = now();
    let credentials = StoredCredentials::new(e.client_id.clone(), Some(response), scopes.clone(), Some(received))
        .with_issuer(Some(issuer.clone()));
    store.save(credentials).await.map_err(|e| discovery(format!("cannot keep the token: {e}")))?;
    Ok(Obtained {
        access_token: Secret::new(token.access_token.secret().to_string()),
        expires_at: token.expires_in.map(|d| received + d.as_secs()),
        issuer: Some(issuer),
        scopes,
    })
}

/// What [`sign_in_then_obtain`] did.
pub struct Done {
    pub obtained: Obtained,
    /// The email the IdP named when the person signed in to it now (none: a kept sign-in
    /// served).
    pub signed_in_as: Option<Option<String>>,
}

/// The person's IdP sign-in when no usable one is kept (`open` shows them the checked URL:
/// opens the browser or prints it), then the server's token: one browser trip for every
/// server reached this way.
pub async fn sign_in_then_obtain<F, Fut>(
    server: &str,
    url: &str,
    e: &Enterprise,
    keychain: Keychain,
    open: F,
) -> Result<Done, EnterpriseError>
where
    F: FnOnce(url::Url) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut signed_in_as = None;
    if idp::id_token(&e.idp, &keychain, server).await.is_err() {
        let (tx, rx) = tokio::sync::oneshot::channel::<url::Url>();
        let flow = idp::sign_in(
            &e.idp,
            &keychain,
            move |u| {
                let _ = tx.send(u.clone());
                Ok(())
            },
            std::time::Duration::from_secs(300),
        );
        let opener = async move {
            match rx.await {
                Ok(u) => open(u).await,
                Err(_) => Ok(()),
            }
        };
        let (done, opened) = tokio::join!(flow, opener);
        opened.map_err(|why| IdpError::Provider {
            issuer: e.idp.issuer.clone(),
            reason: format!("cannot open the browser: {why}"),
        })?;
        signed_in_as = Some(done?);
    }
    Ok(Done { obtained: obtain(server, url, e, keychain).await?, signed_in_as })
}
