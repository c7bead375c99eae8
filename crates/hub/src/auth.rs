//! Credentials the hub hands out and checks: device credentials (from enrollment), single
//! use enrollment tokens, and the admin bearer token. The hub keeps SHA-256 digests only;
//! a plaintext is shown once, when it is made, and never logged.

use crate::db::{Db, DbError};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token with a recognisable prefix.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Makes an enrollment token valid for `hours`, for the device of `user` when given (the
/// device's records are then stored as that user's, whatever they claim); returns its
/// plaintext.
pub async fn create_enrollment_token(db: &Db, hours: u64, user: Option<&str>) -> Result<String, DbError> {
    let token = new_token("cse_");
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    sqlx::query(
        "INSERT INTO enrollment_tokens (token_sha256, created_at, expires_at, user_name) VALUES ($1, $2, $3, $4)",
    )
    .bind(digest(&token))
    .bind(fmt(now))
    .bind(fmt(now + time::Duration::hours(hours as i64)))
    .bind(user)
    .execute(&db.pool)
    .await?;
    Ok(token)
}

/// The device a credential belongs to.
pub enum DeviceCredential {
    Valid(String),
    /// The device was revoked (`revoked_at`, why): its credential opens nothing.
    Revoked(String, String),
    Unknown,
}

/// The device a credential belongs to, unless it was revoked.
pub async fn device_of(db: &Db, credential: &str) -> Result<DeviceCredential, DbError> {
    let row: Option<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, revoked_at, revoked_why FROM devices WHERE credential_sha256 = $1")
            .bind(digest(credential))
            .fetch_optional(&db.pool)
            .await?;
    Ok(match row {
        None => DeviceCredential::Unknown,
        Some((id, None, _)) => DeviceCredential::Valid(id),
        Some((_, Some(at), why)) => DeviceCredential::Revoked(at, why.unwrap_or_default()),
    })
}
