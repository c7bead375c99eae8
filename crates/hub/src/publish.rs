//! Policy publishing: an admin uploads a `[policy]` document; the hub checks it as the
//! policy engine would, wraps it in the bundle format (`[bundle]` with version, issue and
//! expiry times) and signs it with minisign. The signing key comes from a file named in
//! the hub's configuration, never from the database. Devices fetch the newest bundle with
//! `If-None-Match` and a long poll, so a publication reaches an online laptop in about a
//! second.

use crate::db::{Db, DbError};
use countersign_policy::{Policy, PolicySettings};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("this hub has no signing key (start it with --signing-key), so it cannot publish policy")]
    NoKey,
    #[error("the signing key {path}: {message}")]
    Key { path: String, message: String },
    #[error("the policy is refused: {0}")]
    Invalid(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The minisign secret key the hub signs with.
pub struct SigningKey(minisign::SecretKey);

impl SigningKey {
    /// Reads a minisign secret key box (as `countersign policy keygen` writes), opened
    /// with `passphrase` when it is encrypted.
    pub fn load(path: &Path, passphrase: Option<String>) -> Result<Self, PublishError> {
        let err = |message: String| PublishError::Key { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let sk = minisign::SecretKeyBox::from_string(&text)
            .and_then(|b| b.into_secret_key(passphrase))
            .map_err(|e| err(format!("cannot open it: {e}")))?;
        Ok(SigningKey(sk))
    }

    /// Signs `text` (a checkpoint statement) with this key; the signature box as text.
    pub fn sign_text(&self, text: &str, trusted_comment: &str) -> Result<String, PublishError> {
        minisign::sign(None, &self.0, std::io::Cursor::new(text.as_bytes()), Some(trusted_comment), None)
            .map(|b| b.into_string())
            .map_err(|e| PublishError::Sign(e.to_string()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    policy: PolicySettings,
}

/// A published bundle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub version: i64,
    pub document: String,
    pub signature: String,
    pub published_at: String,
}

/// Checks `upload` (a TOML document with one `[policy]` table), signs it as the next
/// version and stores it.
pub async fn publish(
    db: &Db,
    key: Option<&SigningKey>,
    upload: &str,
    valid_for: Duration,
) -> Result<Published, PublishError> {
    let key = key.ok_or(PublishError::NoKey)?;
    let parsed: Upload = toml::from_str(upload).map_err(|e| PublishError::Invalid(e.message().to_string()))?;
    Policy::compile(&parsed.policy)
        .map_err(|e| PublishError::Invalid(format!("policy.{}[{}]: {}", e.list, e.index, e.error)))?;
    let now = time::OffsetDateTime::now_utc();
    let rfc = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut tx = db.pool.begin().await.map_err(DbError::from)?;
    let (latest,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(version) FROM policies").fetch_one(&mut *tx).await.map_err(DbError::from)?;
    let version = latest.unwrap_or(0) + 1;
    let document = format!(
        "# Published by the Countersign hub; verified with the key in the managed policy.\n\
         [bundle]\nversion = {version}\nissued = \"{}\"\nexpires = \"{}\"\n\n{}\n",
        rfc(now),
        rfc(now + valid_for),
        upload.trim_end()
    );
    let signature = minisign::sign(
        None,
        &key.0,
        std::io::Cursor::new(document.as_bytes()),
        Some(&format!("countersign policy bundle {version}")),
        None,
    )
    .map_err(|e| PublishError::Sign(e.to_string()))?
    .into_string();
    let published_at = rfc(now);
    sqlx::query("INSERT INTO policies (version, document, signature, published_at) VALUES ($1, $2, $3, $4)")
        .bind(version)
        .bind(&document)
        .bind(&signature)
        .bind(&published_at)
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(Published { version, document, signature, published_at })
}

/// The newest published bundle, if any.
pub async fn latest(db: &Db) -> Result<Option<Published>, DbError> {
    let row: Option<(i64, String, String, String)> =
        sqlx::query_as("SELECT version, document, signature, published_at FROM policies ORDER BY version DESC LIMIT 1")
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|(version, document, signature, published_at)| Published { version, document, signature, published_at }))
}
