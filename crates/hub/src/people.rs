//! The people and groups the company's IdP provisions to the hub (SCIM, [`crate::scim`]),
//! and what deprovisioning a person does at once: every device bound to them is revoked
//! (its credential opens nothing; the gateway falls back to local policy and drops its
//! grants), their staff sign-ins end, and the agents they own are suspended until an admin
//! transfers them. The caller writes the admin log.
//!
//! It never deletes a device, a record or an agent: deprovisioning revokes and suspends,
//! so the audit trail keeps who did what.

use crate::db::{Db, DbError};

/// What deactivating a person did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deprovisioned {
    pub devices_revoked: Vec<String>,
    pub sessions_ended: u64,
    pub agents_suspended: Vec<String>,
}

impl Deprovisioned {
    pub fn said(&self, email: &str) -> String {
        format!(
            "{email} deactivated: devices revoked [{}], {} sign-in(s) ended, agents suspended [{}]",
            self.devices_revoked.join(", "),
            self.sessions_ended,
            self.agents_suspended.join(", ")
        )
    }
}

/// Whether the IdP deactivated `email` (a person the IdP never provisioned is not).
pub async fn is_deactivated(db: &Db, email: &str) -> Result<bool, DbError> {
    // A person the IdP deleted keeps their row (deleted_at) and is as gone as one it
    // deactivated; one it provisioned again since has an active row of their own.
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as("SELECT active, deleted_at FROM people WHERE email = $1")
        .bind(email.to_lowercase())
        .fetch_all(&db.pool)
        .await?;
    let live = rows.iter().any(|(active, deleted)| *active != 0 && deleted.is_none());
    Ok(!rows.is_empty() && !live)
}

/// Revokes `email`'s devices and ends their sign-ins, at once (the caller suspends their
/// agents: [`crate::agents::suspend_owned_by`]).
pub async fn deprovision(db: &Db, email: &str) -> Result<Deprovisioned, DbError> {
    let email = email.to_lowercase();
    let now = countersign_audit::now_rfc3339();
    let mut tx = db.pool.begin().await?;
    let devices: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM devices WHERE person_email = $1 AND revoked_at IS NULL")
            .bind(&email)
            .fetch_all(&mut *tx)
            .await?;
    sqlx::query("UPDATE devices SET revoked_at = $1, revoked_why = $2 WHERE person_email = $3 AND revoked_at IS NULL")
        .bind(&now)
        .bind(format!("{email} was deactivated in the identity provider"))
        .bind(&email)
        .execute(&mut *tx)
        .await?;
    let sessions = sqlx::query("UPDATE staff_sessions SET revoked_at = $1 WHERE email = $2 AND revoked_at IS NULL")
        .bind(&now)
        .bind(&email)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Deprovisioned {
        devices_revoked: devices.into_iter().map(|(d,)| d).collect(),
        sessions_ended: sessions,
        agents_suspended: Vec::new(),
    })
}
