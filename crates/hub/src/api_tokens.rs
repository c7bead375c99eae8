//! API tokens for automation: each carries one role, an optional expiry, and can be
//! revoked. The hub stores a SHA-256 digest; the plaintext is shown once, when it is made.
//! It never logs a token, never stores one in plain text, and never answers with a digest.

use crate::auth;
use crate::db::{Db, DbError};
use crate::roles::Role;
use serde::Serialize;
use std::time::Duration;

/// An API token as the hub keeps it (no secret in it).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    #[serde(skip)]
    expires_unix: Option<i64>,
}

/// What a presented token turned out to be.
#[derive(Debug)]
pub enum Lookup {
    Valid(ApiToken),
    Expired(ApiToken),
    Revoked(ApiToken),
    Unknown,
}

/// The longest an API token may live.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 86_400);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("an API token lives at most 366 days; asked for {0}")]
    TooLong(String),
    #[error("an API token's name is empty")]
    EmptyName,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        TokenError::Db(DbError::Query(e))
    }
}

/// Parses a lifetime as people write one: `30d`, `12h`, `90min`, `2w`.
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a lifetime ({e}); write e.g. 30d, 12h, 90min"))?;
    if d.is_zero() {
        return Err(format!("`{text}` is no time at all"));
    }
    Ok(d)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

type Row = (String, String, String, String, String, Option<String>, Option<i64>, Option<String>);
const COLUMNS: &str = "id, name, role, created_at, created_by, expires_at, expires_unix, revoked_at";

fn from_row((id, name, role, created_at, created_by, expires_at, expires_unix, revoked_at): Row) -> ApiToken {
    // A role the code no longer knows grants nothing: it reads as the narrowest.
    let role = role.parse().unwrap_or(Role::Viewer);
    ApiToken { id, name, role, created_at, created_by, expires_at, revoked_at, expires_unix }
}

/// Makes a token with `role`, valid for `lifetime` (none: until revoked); returns it and
/// its plaintext, which is never seen again.
pub async fn create(
    db: &Db,
    role: Role,
    name: &str,
    lifetime: Option<Duration>,
    created_by: &str,
) -> Result<(ApiToken, String), TokenError> {
    let name: String = name.chars().filter(|c| !c.is_control()).take(128).collect();
    if name.trim().is_empty() {
        return Err(TokenError::EmptyName);
    }
    if let Some(l) = lifetime.filter(|l| *l > MAX_LIFETIME) {
        return Err(TokenError::TooLong(humantime::format_duration(l).to_string()));
    }
    let token = auth::new_token("csk_");
    let now = time::OffsetDateTime::now_utc();
    let expires = lifetime.map(|l| now + l);
    let made = ApiToken {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        role,
        created_at: rfc3339(now),
        created_by: created_by.to_string(),
        expires_at: expires.map(rfc3339),
        revoked_at: None,
        expires_unix: expires.map(|t| t.unix_timestamp()),
    };
    sqlx::query(&format!(
        "INSERT INTO api_tokens ({COLUMNS}, token_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&made.id)
    .bind(&made.name)
    .bind(role.as_str())
    .bind(&made.created_at)
    .bind(&made.created_by)
    .bind(&made.expires_at)
    .bind(made.expires_unix)
    .bind(None::<String>)
    .bind(auth::digest(&token))
    .execute(&db.pool)
    .await?;
    Ok((made, token))
}

/// What `token` is: valid, expired, revoked or unknown.
pub async fn lookup(db: &Db, token: &str) -> Result<Lookup, DbError> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens WHERE token_sha256 = $1"))
        .bind(auth::digest(token))
        .fetch_optional(&db.pool)
        .await?;
    let Some(found) = row.map(from_row) else { return Ok(Lookup::Unknown) };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(if found.revoked_at.is_some() {
        Lookup::Revoked(found)
    } else if found.expires_unix.is_some_and(|at| at <= now) {
        Lookup::Expired(found)
    } else {
        Lookup::Valid(found)
    })
}

/// Every token, newest first.
pub async fn list(db: &Db) -> Result<Vec<ApiToken>, DbError> {
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, id DESC"))
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Revokes the token `id`; `None` when there is no such token, else the token as it now is
/// (already revoked tokens keep their first revocation time).
pub async fn revoke(db: &Db, id: &str) -> Result<Option<ApiToken>, DbError> {
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(rfc3339(time::OffsetDateTime::now_utc()))
        .bind(id)
        .execute(&db.pool)
        .await?;
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(from_row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_valid_until_it_expires_or_is_revoked_and_only_its_digest_is_kept() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let (made, plain) =
            create(&db, Role::Auditor, "siem export", Some(parse_lifetime("30d").unwrap()), "test").await.unwrap();
        assert!(plain.starts_with("csk_") && plain.len() > 60);
        let stored: Vec<(String,)> =
            sqlx::query_as("SELECT token_sha256 FROM api_tokens").fetch_all(&db.pool).await.unwrap();
        assert_eq!(stored, [(auth::digest(&plain),)], "the digest, never the token");
        assert!(matches!(lookup(&db, &plain).await.unwrap(), Lookup::Valid(t) if t.role == Role::Auditor));
        assert!(matches!(lookup(&db, "csk_nope").await.unwrap(), Lookup::Unknown));

        let (_, short) = create(&db, Role::Admin, "short", Some(Duration::from_secs(1)), "test").await.unwrap();
        sqlx::query("UPDATE api_tokens SET expires_unix = 1 WHERE name = 'short'").execute(&db.pool).await.unwrap();
        assert!(matches!(lookup(&db, &short).await.unwrap(), Lookup::Expired(_)));

        let revoked = revoke(&db, &made.id).await.unwrap().unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(matches!(lookup(&db, &plain).await.unwrap(), Lookup::Revoked(_)));
        assert!(revoke(&db, "no-such-id").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn lifetimes_are_read_as_people_write_them_and_bounded() {
        assert_eq!(parse_lifetime("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_lifetime("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert!(parse_lifetime("soon").unwrap_err().contains("30d"));
        assert!(parse_lifetime("0s").is_err());
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let e = create(&db, Role::Viewer, "x", Some(parse_lifetime("400d").unwrap()), "t").await.unwrap_err();
        assert!(e.to_string().contains("366 days"), "{e}");
        assert!(matches!(create(&db, Role::Viewer, " ", None, "t").await, Err(TokenError::EmptyName)));
    }
}
