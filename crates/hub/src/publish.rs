//! Policy publishing: an admin uploads a `[policy]` document; the hub builds the bundle
//! from the parsed document (`[bundle]` with version, issue and expiry times, then the
//! upload's `policy` table under its own `[policy]` header, whatever shape it was written
//! in: a header, dotted keys or an inline table), signs it with minisign, and before
//! storing anything verifies the signed bundle exactly as a laptop will (the same
//! `verify_bundle` and the same compilation of the bundle layer), refusing the upload
//! with the laptop's own error otherwise. It must never publish a bundle a laptop would
//! refuse, or one that says other than the upload. The signing key comes from a file
//! named in the hub's configuration, never from the database. Devices fetch the newest
//! bundle with `If-None-Match` and a long poll, so a publication reaches an online
//! laptop in about a second.

use crate::db::{Db, DbError};
use countersign_policy::{verify_bundle, Layers, Policy, PolicySettings};
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

/// The minisign secret key the hub signs with, and its public half (what laptops hold in
/// their managed file), to check each bundle as they will.
pub struct SigningKey {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl SigningKey {
    /// Reads a minisign secret key box (as `countersign policy keygen` writes), opened
    /// with `passphrase` when it is encrypted.
    pub fn load(path: &Path, passphrase: Option<String>) -> Result<Self, PublishError> {
        let err = |message: String| PublishError::Key { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let sk = minisign::SecretKeyBox::from_string(&text)
            .and_then(|b| b.into_secret_key(passphrase))
            .map_err(|e| err(format!("cannot open it: {e}")))?;
        let public = minisign::PublicKey::from_secret_key(&sk).map_err(|e| err(format!("no public key in it: {e}")))?;
        Ok(SigningKey { secret: sk, public })
    }

    /// The public half as laptops' managed files hold it (base64).
    pub fn public_base64(&self) -> String {
        self.public.to_base64()
    }

    /// Signs `text` (a checkpoint statement) with this key; the signature box as text.
    pub fn sign_text(&self, text: &str, trusted_comment: &str) -> Result<String, PublishError> {
        minisign::sign(None, &self.secret, std::io::Cursor::new(text.as_bytes()), Some(trusted_comment), None)
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

/// Checks `upload` (a TOML document with one `policy` table), builds and signs it as the
/// next version, checks the result as a laptop will, and stores it.
pub async fn publish(
    db: &Db,
    key: Option<&SigningKey>,
    upload: &str,
    valid_for: Duration,
) -> Result<Published, PublishError> {
    let key = key.ok_or(PublishError::NoKey)?;
    let parsed: Upload = toml::from_str(upload).map_err(|e| PublishError::Invalid(e.message().to_string()))?;
    let policy = policy_section(upload)?;
    let now = time::OffsetDateTime::now_utc();
    let rfc = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut tx = db.pool.begin().await.map_err(DbError::from)?;
    let (latest,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(version) FROM policies").fetch_one(&mut *tx).await.map_err(DbError::from)?;
    let version = latest.unwrap_or(0) + 1;
    let document = format!(
        "# Published by the Countersign hub; verified with the key in the managed policy.\n\
         [bundle]\nversion = {version}\nissued = \"{}\"\nexpires = \"{}\"\n\n{policy}",
        rfc(now),
        rfc(now + valid_for),
    );
    let signature = minisign::sign(
        Some(&key.public),
        &key.secret,
        std::io::Cursor::new(document.as_bytes()),
        Some(&format!("countersign policy bundle {version}")),
        None,
    )
    .map_err(|e| PublishError::Sign(e.to_string()))?
    .into_string();
    let applied = as_a_laptop_will(
        &document,
        &signature,
        &key.public.to_base64(),
        now.unix_timestamp(),
        latest.map(|v| v.max(0) as u64),
    )?;
    if applied != parsed.policy {
        return Err(PublishError::Invalid(
            "the signed bundle would not say what the upload says (nothing was published)".into(),
        ));
    }
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

/// What an upload would put in force, checked as publishing checks it (the laptop's own
/// parser and errors), without signing or keeping anything.
pub fn check(upload: &str) -> Result<PolicySettings, PublishError> {
    let parsed: Upload = toml::from_str(upload).map_err(|e| PublishError::Invalid(e.message().to_string()))?;
    policy_section(upload)?;
    Policy::from_layers(Layers { bundle: Some((parsed.policy.clone(), 0)), ..Default::default() })
        .map_err(|e| PublishError::Invalid(format!("{}: {e}", e.layer.as_str())))?;
    Ok(parsed.policy)
}

/// Every published version, newest first: (version, published_at).
pub async fn history(db: &Db) -> Result<Vec<(i64, String)>, DbError> {
    Ok(sqlx::query_as("SELECT version, published_at FROM policies ORDER BY version DESC").fetch_all(&db.pool).await?)
}

/// One published version.
pub async fn version(db: &Db, version: i64) -> Result<Option<Published>, DbError> {
    let row: Option<(i64, String, String, String)> =
        sqlx::query_as("SELECT version, document, signature, published_at FROM policies WHERE version = $1")
            .bind(version)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|(version, document, signature, published_at)| Published { version, document, signature, published_at }))
}

/// The upload's `policy` table alone, under its own `[policy]` header, whatever shape it
/// was written in (a header, dotted keys, an inline table); IT's comments are kept.
fn policy_section(upload: &str) -> Result<String, PublishError> {
    let doc: toml_edit::DocumentMut =
        upload.parse().map_err(|e: toml_edit::TomlError| PublishError::Invalid(e.message().to_string()))?;
    let mut table = match doc.get("policy") {
        Some(toml_edit::Item::Table(t)) => t.clone(),
        Some(toml_edit::Item::Value(toml_edit::Value::InlineTable(t))) => t.clone().into_table(),
        _ => return Err(PublishError::Invalid("`policy` must be a table".into())),
    };
    table.set_implicit(false);
    table.set_dotted(false);
    let mut out = toml_edit::DocumentMut::new();
    out.insert("policy", toml_edit::Item::Table(table));
    out.set_trailing(doc.trailing().clone());
    Ok(out.to_string())
}

/// What a laptop does with a delivered bundle (the gateway's `policy_layers`): verify it
/// against the managed key, then compile it as the bundle layer. The policy it would
/// apply, or the laptop's own error.
fn as_a_laptop_will(
    document: &str,
    signature: &str,
    public_key: &str,
    now_unix: i64,
    newest_accepted: Option<u64>,
) -> Result<PolicySettings, PublishError> {
    let bundle = verify_bundle(document.as_bytes(), Some(signature), Some(public_key), now_unix, newest_accepted)
        .map_err(|e| PublishError::Invalid(format!("a laptop would refuse this bundle: {e}")))?;
    Policy::from_layers(Layers { bundle: Some((bundle.policy.clone(), bundle.header.version)), ..Default::default() })
        .map_err(|e| PublishError::Invalid(format!("{}: {e}", e.layer.as_str())))?;
    Ok(bundle.policy)
}

/// The newest published bundle, if any.
pub async fn latest(db: &Db) -> Result<Option<Published>, DbError> {
    let row: Option<(i64, String, String, String)> =
        sqlx::query_as("SELECT version, document, signature, published_at FROM policies ORDER BY version DESC LIMIT 1")
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|(version, document, signature, published_at)| Published { version, document, signature, published_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        SigningKey { secret: kp.sk, public: kp.pk }
    }

    async fn db() -> Db {
        Db::connect("sqlite::memory:").await.unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// The published bundle, checked as a laptop checks a delivered one.
    fn delivered(key: &SigningKey, p: &Published) -> PolicySettings {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        verify_bundle(p.document.as_bytes(), Some(&p.signature), Some(&key.public.to_base64()), now, None)
            .unwrap_or_else(|e| panic!("{e}\n{}", p.document))
            .policy
    }

    #[tokio::test]
    async fn every_shape_of_upload_is_published_as_a_bundle_laptops_apply() {
        let (db, key) = (db().await, key());
        for (i, upload) in [
            "[policy]\ndeny = [\"mcp__gh__delete*\"]\n",
            "policy = { deny = [\"mcp__gh__delete*\"] }\n",
            "policy.deny = [\"mcp__gh__delete*\"]\n",
            "# IT's note\npolicy.deny = [\"mcp__gh__delete*\"]\npolicy.defaults.write = \"deny\"\n",
            "policy = { deny = [\"mcp__gh__delete*\"], defaults = { write = \"deny\" } }\n",
            "[policy]\ndeny = [\"mcp__gh__delete*\"]\n[policy.defaults]\nwrite = \"deny\" # kept\n",
            "[policy.defaults]\nwrite = \"deny\"\n[policy]\ndeny = [\"mcp__gh__delete*\"]\n",
        ]
        .into_iter()
        .enumerate()
        {
            let p = publish(&db, Some(&key), upload, DAY).await.unwrap_or_else(|e| panic!("{upload}: {e}"));
            assert_eq!(p.version, i as i64 + 1);
            let policy = delivered(&key, &p);
            assert_eq!(policy.deny, vec!["mcp__gh__delete*"], "{upload}\n{}", p.document);
            let want: Upload = toml::from_str(upload).unwrap();
            assert_eq!(policy, want.policy, "{upload}\n{}", p.document);
        }
        let last = latest(&db).await.unwrap().unwrap();
        assert!(
            last.document.contains("[policy]\n") && last.document.contains("[policy.defaults]"),
            "{}",
            last.document
        );
    }

    #[tokio::test]
    async fn an_upload_a_laptop_would_refuse_is_refused_and_nothing_is_published() {
        let (db, key) = (db().await, key());
        publish(&db, Some(&key), "[policy]\ndeny = [\"mcp__a__b\"]\n", DAY).await.unwrap();
        for (upload, why) in [
            ("[policy]\ndeny = [\"rm\"]\n", "bundle: policy.deny[0]"),
            ("policy = { deny = [\"rm\"] }\n", "must start with `mcp__`"),
            ("bundle = { version = 99 }\npolicy.deny = []\n", "unknown field `bundle`"),
            ("policy = 3\n", "invalid type"),
            ("[policy]\nallow = [\"request:sampling/*\"]\n", "policy.allow[0]"),
        ] {
            let err = publish(&db, Some(&key), upload, DAY).await.unwrap_err();
            assert!(matches!(err, PublishError::Invalid(_)), "{upload}: {err}");
            assert!(err.to_string().contains(why), "{upload}: {err}");
        }
        assert_eq!(latest(&db).await.unwrap().unwrap().version, 1, "the last good version stays published");
    }

    #[test]
    fn the_laptop_check_refuses_what_a_laptop_refuses() {
        let key = key();
        let doc = "[bundle]\nversion = 1\nexpires = \"2099-01-01T00:00:00Z\"\npolicy = { deny = [\"mcp__a__b\"] }\n";
        let sig = minisign::sign(Some(&key.public), &key.secret, std::io::Cursor::new(doc.as_bytes()), None, None)
            .unwrap()
            .into_string();
        let err = as_a_laptop_will(doc, &sig, &key.public.to_base64(), 0, None).unwrap_err().to_string();
        assert!(err.contains("a laptop would refuse this bundle: the bundle is not valid policy TOML"), "{err}");
    }
}
