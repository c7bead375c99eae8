//! Taking a device's batch: each record stored once (by id; a replay or a duplicate is
//! absorbed and acknowledged again), its hash checked against its contents, and the
//! device's chain followed: a record whose previous hash is not the last one the hub holds
//! for that device is a gap or a break, stored all the same and flagged as an alert.
//! Outcomes fill in their record. The answer acknowledges by id and says the newest
//! chain hash held, all in one transaction.

use crate::db::{Db, DbError};
use countersign_audit::chain::GENESIS;
use countersign_audit::wire::{Ack, Batch, WireRecord};

/// Stores `batch` from `device`; returns the acknowledgement and the records that were new.
pub async fn ingest(db: &Db, device: &str, batch: &Batch) -> Result<(Ack, Vec<WireRecord>), DbError> {
    let now = countersign_audit::now_rfc3339();
    let mut tx = db.pool.begin().await?;
    let sql = format!("SELECT last_seq, last_hash FROM devices WHERE id = $1{}", db.for_update());
    let (mut last_seq, mut last_hash): (Option<i64>, Option<String>) =
        sqlx::query_as(&sql).bind(device).fetch_one(&mut *tx).await?;
    let mut ack = Ack::default();
    let mut new = Vec::new();
    let mut records: Vec<_> = batch.records.iter().collect();
    records.sort_by_key(|r| r.seq);
    for r in records {
        let inserted = sqlx::query(
            "INSERT INTO records (id, device_id, seq, time, kind, user_name, device, client, client_name, \
             client_version, session, server, tool, method, arguments, decision, rule, reason, approval, \
             policy_version, class, label, prev_hash, hash, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&r.id)
        .bind(device)
        .bind(r.seq)
        .bind(&r.time)
        .bind(&r.kind)
        .bind(&r.user)
        .bind(&r.device)
        .bind(&r.client)
        .bind(&r.client_name)
        .bind(&r.client_version)
        .bind(&r.session)
        .bind(&r.server)
        .bind(&r.tool)
        .bind(&r.method)
        .bind(&r.arguments)
        .bind(&r.decision)
        .bind(&r.rule)
        .bind(&r.reason)
        .bind(&r.approval)
        .bind(&r.policy_version)
        .bind(&r.class)
        .bind(&r.label)
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        ack.records.push(r.id.clone());
        if inserted {
            new.push(r.clone());
            if r.rule.as_deref() == Some(countersign_audit::wire::REQUIRE_ROUTING_RULE) && r.decision == "deny" {
                let what = r.reason.clone().unwrap_or_else(|| "servers configured around Countersign".into());
                alert(&mut tx, device, "shadow-servers", what).await?;
            }
            if r.rule.as_deref() == Some(countersign_policy::EXPIRED_RULE) && r.decision == "deny" {
                let what = r.reason.clone().unwrap_or_else(|| "the managed policy bundle in force expired".into());
                alert(&mut tx, device, "policy-expired", what).await?;
            }
        }
        if !inserted || r.hash.is_none() {
            continue;
        }
        if !r.hash_holds() {
            alert(&mut tx, device, "hash", format!("record {} (seq {}) does not match its hash", r.id, r.seq)).await?;
        }
        let expected = last_hash.as_deref().unwrap_or(GENESIS);
        if last_seq.is_some_and(|s| r.seq <= s) {
            // An older record arriving late (after a gap was flagged): stored, chain head kept.
            continue;
        }
        if r.prev_hash.as_deref() != Some(expected) {
            let what = if last_hash.is_none() {
                format!(
                    "the first record received (seq {}) does not start the chain: earlier records are missing",
                    r.seq
                )
            } else {
                format!(
                    "records are missing or were changed before seq {} (after seq {}): the chain does not continue",
                    r.seq,
                    last_seq.unwrap_or(0)
                )
            };
            alert(&mut tx, device, "gap", what).await?;
        }
        last_seq = Some(r.seq);
        last_hash = r.hash.clone();
    }
    for o in &batch.outcomes {
        let updated = sqlx::query(
            "UPDATE records SET outcome = $1, outcome_time = $2, duration_ms = $3, detail = $4, outcome_hash = $5 \
             WHERE id = $6 AND device_id = $7",
        )
        .bind(&o.outcome)
        .bind(&o.time)
        .bind(o.duration_ms)
        .bind(&o.detail)
        .bind(&o.hash)
        .bind(&o.record_id)
        .bind(device)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 {
            ack.outcomes.push(o.record_id.clone());
        }
    }
    sqlx::query("UPDATE devices SET last_seq = $1, last_hash = $2, last_seen = $3 WHERE id = $4")
        .bind(last_seq)
        .bind(&last_hash)
        .bind(&now)
        .bind(device)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    ack.last_seq = last_seq;
    ack.last_hash = last_hash;
    Ok((ack, new))
}

async fn alert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    device: &str,
    kind: &str,
    detail: String,
) -> Result<(), DbError> {
    tracing::warn!(device, kind, "{detail}");
    sqlx::query("INSERT INTO alerts (id, time, device_id, kind, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(countersign_audit::now_rfc3339())
        .bind(device)
        .bind(kind)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
