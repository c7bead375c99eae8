//! Who a request comes from, from its headers alone: an enrolled device by the credential
//! enrollment gave it, or an administrator by the admin bearer token. It never reads a
//! request body, never compares a credential other than by its digest, and never echoes
//! one in a refusal.

use crate::auth;
use crate::reply::{error, internal};
use crate::state::Hub;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// Why a request without the admin bearer token is refused; none when it carries it.
pub(crate) fn admin_refusal(hub: &Hub, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &hub.admin_token_sha256 else {
        return Some(error(StatusCode::UNAUTHORIZED, "no admin token is configured on this hub"));
    };
    match auth::bearer(headers) {
        Some(token) if auth::digest(token) == *expected => None,
        _ => Some(error(StatusCode::UNAUTHORIZED, "an admin bearer token is required")),
    }
}

/// The enrolled device a request comes from.
pub(crate) async fn device(hub: &Hub, headers: &HeaderMap) -> Result<String, Response> {
    let Some(credential) = auth::bearer(headers) else {
        return Err(error(StatusCode::UNAUTHORIZED, "a device credential is required"));
    };
    match auth::device_of(&hub.db, credential).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(error(StatusCode::UNAUTHORIZED, "unknown device credential; enroll again")),
        Err(e) => Err(internal(e)),
    }
}
