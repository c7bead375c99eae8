//! The hub's database: SQLite (a file in the data directory, no setup) or PostgreSQL, one
//! schema and one set of queries for both through sqlx's `Any` driver. Queries use `$N`
//! parameters, which both understand. Holds no state of its own, so several hub
//! instances can share one PostgreSQL.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database `{url}`: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
    #[error("signing a checkpoint: {0}")]
    Sign(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub dialect: Dialect,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The URL without its password, for messages.
pub fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Db {
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let err = |source| DbError::Connect { url: shown(url), source };
        let dialect = if url.starts_with("postgres") { Dialect::Postgres } else { Dialect::Sqlite };
        let options = AnyConnectOptions::from_str(url).map_err(err)?;
        let max = if dialect == Dialect::Sqlite { 1 } else { 16 };
        let pool = AnyPoolOptions::new().max_connections(max).connect_with(options).await.map_err(err)?;
        if dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
            sqlx::query("PRAGMA busy_timeout = 5000").execute(&pool).await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Db { pool, dialect })
    }

    /// `FOR UPDATE` where the database has it (PostgreSQL; SQLite locks the whole file).
    pub fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }
}

/// For tests: a fresh PostgreSQL database of the test's own (`label` and the process id
/// name it), migrated, on the server `COUNTERSIGN_TEST_POSTGRES` names (a role that may
/// create databases). `None`, saying so, when that is not set: the PostgreSQL run of the
/// test is skipped. [`TestDatabase::drop_database`] removes it at the end.
#[cfg(test)]
pub(crate) async fn fresh_postgres(label: &str) -> Option<TestDatabase> {
    let Ok(admin) = std::env::var("COUNTERSIGN_TEST_POSTGRES") else {
        eprintln!("COUNTERSIGN_TEST_POSTGRES is not set: the PostgreSQL run is skipped");
        return None;
    };
    let name = format!("countersign_{label}_{}", std::process::id());
    sqlx::any::install_default_drivers();
    let admin_pool = sqlx::AnyPool::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&admin_pool).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin_pool).await.unwrap();
    let url = format!("{}/{name}", &admin[..admin.rfind('/').unwrap()]);
    let db = Db::connect(&url).await.unwrap();
    Some(TestDatabase { db, admin_pool, name })
}

/// A test's own PostgreSQL database ([`fresh_postgres`]).
#[cfg(test)]
pub(crate) struct TestDatabase {
    pub db: Db,
    admin_pool: sqlx::AnyPool,
    name: String,
}

#[cfg(test)]
impl TestDatabase {
    pub async fn drop_database(self) {
        self.db.pool.close().await;
        // A backend whose client just left may still be ending: FORCE ends it (PostgreSQL 13+).
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        sqlx::query(&drop).execute(&self.admin_pool).await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_show_in_messages() {
        assert_eq!(super::shown("postgres://hub:s3cret@db:5432/hub"), "postgres://hub@db:5432/hub");
        assert_eq!(super::shown("sqlite:///var/lib/hub.db"), "sqlite:///var/lib/hub.db");
    }
}
