//! Taking a device's batch: each record stored once (by id; a replay or a duplicate is
//! absorbed and acknowledged again), its hash checked against its contents, and the
//! device's chain followed: a record whose previous hash is not the last one the hub holds
//! for that device is a gap or a break, stored all the same and flagged as an alert.
//! Outcomes fill in their record. The answer acknowledges by id, says the newest chain
//! hash held and, when the hub has a signing key, carries a checkpoint: that head signed,
//! which the laptop keeps so acknowledged history cannot be rewritten there. All in one
//! transaction.
//!
//! Who a record is from comes from the credential, never from the record: it is stored
//! with its device's user and local device id (fixed by the enrollment token or the
//! device's first record), and a record naming another OS account raises an alert. A
//! batch with a record that names a verified person other than the one who signed in
//! for this device, or another enrolled device's id, is refused whole. A
//! device whose chain has begun may not send a record without a hash. A record sent again
//! with another hash, or a new record at a place the hub already holds, is a diverged
//! chain and raises an alert; one sent again with its hash but other contents raises a
//! `hash` alert. Either way the copy the hub holds is never overwritten.

use crate::db::{Db, DbError};
use crate::publish::SigningKey;
use countersign_audit::chain::GENESIS;
use countersign_audit::checkpoint::{statement, Checkpoint};
use countersign_audit::wire::{Ack, Batch, WireRecord};

/// What became of a batch.
pub enum Ingested {
    /// Stored: the acknowledgement, and the records that were new.
    Stored { ack: Ack, new: Vec<WireRecord> },
    /// Refused whole, nothing stored (an alert says why).
    Refused(String),
}

/// Who a device answers for, as the hub knows it.
struct Identity {
    /// The person IT enrolled the device for.
    user: Option<String>,
    /// The account and device id its records name (fixed by its first record).
    local_user: Option<String>,
    local_device: Option<String>,
}

/// A device's row as ingestion reads it: its chain's last place and hash, the user IT
/// enrolled it for, and the account and device id its records name.
/// and who it verifiably is, if anyone: the person who signed in for it, or `agent:NAME`.
type DeviceState =
    (Option<i64>, Option<String>, Option<String>, Option<String>, Option<String>, Option<i64>, Option<String>);

/// A batch with a record that claims another's identity, refused whole before anything is
/// stored: a verified person other than the one the hub bound this device to (none bound:
/// any), or a device id another enrolled device's records carry.
async fn claims_refused(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    device: &str,
    person: Option<&str>,
    batch: &Batch,
) -> Result<Option<(&'static str, String)>, DbError> {
    let mut checked: Vec<&str> = Vec::new();
    for r in &batch.records {
        if r.user_verified.as_deref() == Some("true") && person != Some(r.user.as_str()) {
            let bound = person.map_or("no one (no person has signed in for it)".to_string(), |p| format!("`{p}`"));
            let why = format!(
                "record {} (seq {}) names `{}` as its verified person, but this device is bound to {bound}: \
                 refused, nothing stored",
                r.id, r.seq, r.user
            );
            return Ok(Some(("identity", why)));
        }
        // `owner` is an agent's: only an agent's host names one.
        if r.owner.is_some() && !person.is_some_and(|p| p.starts_with("agent:")) {
            let why = format!(
                "record {} (seq {}) names `{}` as its owner, but this device is no agent's: refused, nothing stored",
                r.id,
                r.seq,
                r.owner.as_deref().unwrap_or_default()
            );
            return Ok(Some(("identity", why)));
        }
        if checked.contains(&r.device.as_str()) {
            continue;
        }
        checked.push(&r.device);
        let (taken,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM devices WHERE local_device = $1 AND id <> $2 AND revoked_at IS NULL")
                .bind(&r.device)
                .bind(device)
                .fetch_one(&mut **tx)
                .await?;
        if taken > 0 {
            let why = format!(
                "record {} (seq {}) claims device `{}`, which is another enrolled device's: refused, nothing stored",
                r.id, r.seq, r.device
            );
            return Ok(Some(("identity", why)));
        }
    }
    Ok(None)
}

/// Why a batch is refused whole, before anything is stored: a place that is not a place
/// (seq below 1), text no database column can hold (NUL), or a record without a hash
/// from a device whose chain has begun (before this batch, or earlier in it).
fn refusal(batch: &Batch, chained: bool) -> Option<(&'static str, String)> {
    if let Some(r) = batch.records.iter().find(|r| r.seq < 1) {
        return Some(("bad-record", format!("record {} has place {}: places start at 1; refused", r.id, r.seq)));
    }
    let nul = |t: &Option<String>| t.as_deref().is_some_and(|t| t.contains('\0'));
    for r in &batch.records {
        let columns = r.text().columns();
        let hashes = [&r.prev_hash, &r.hash];
        if columns.iter().flatten().any(|t| t.contains('\0')) || hashes.iter().any(|t| nul(t)) {
            return Some(("bad-record", format!("record {} (seq {}) holds a NUL character; refused", r.id, r.seq)));
        }
    }
    let outcome_nul = |o: &countersign_audit::wire::WireOutcome| {
        [&o.record_id, &o.time, &o.outcome].iter().any(|t| t.contains('\0')) || nul(&o.detail) || nul(&o.hash)
    };
    if let Some(o) = batch.outcomes.iter().find(|o| outcome_nul(o)) {
        return Some(("bad-record", format!("the outcome of {} holds a NUL character; refused", o.record_id)));
    }
    let mut sorted: Vec<_> = batch.records.iter().collect();
    sorted.sort_by_key(|r| r.seq);
    let mut chained = chained;
    for r in sorted {
        if r.hash.is_none() && chained {
            return Some((
                "unhashed",
                format!(
                    "record {} (seq {}) has no hash, but this device's chain has begun: refused, nothing stored",
                    r.id, r.seq
                ),
            ));
        }
        chained |= r.hash.is_some();
    }
    None
}

/// Stores `batch` from `device`.
pub async fn ingest(db: &Db, key: Option<&SigningKey>, device: &str, batch: &Batch) -> Result<Ingested, DbError> {
    let now = countersign_audit::now_rfc3339();
    let mut tx = db.pool.begin().await?;
    let sql = format!(
        "SELECT last_seq, last_hash, user_name, local_user, local_device, diverged_seq, \
         COALESCE(person_email, 'agent:' || agent) FROM devices WHERE id = $1{}",
        db.for_update()
    );
    let row: DeviceState = sqlx::query_as(&sql).bind(device).fetch_one(&mut *tx).await?;
    let (mut last_seq, mut last_hash, user, local_user, local_device, mut diverged, person) = row;
    let refused = match refusal(batch, last_hash.is_some()) {
        Some(r) => Some(r),
        None => claims_refused(&mut tx, device, person.as_deref(), batch).await?,
    };
    if let Some((kind, why)) = refused {
        drop(tx);
        let mut tx = db.pool.begin().await?;
        alert(&mut tx, device, kind, why.clone()).await?;
        tx.commit().await?;
        return Ok(Ingested::Refused(why));
    }
    let mut identity = Identity { user, local_user, local_device };
    let mut broke = false;
    let mut ack = Ack::default();
    let mut new = Vec::new();
    let mut records: Vec<_> = batch.records.iter().collect();
    records.sort_by_key(|r| r.seq);
    for r in records {
        // The first record a device sends fixes the account and device id it names; its
        // device id only if no other enrolled device names that one.
        if identity.local_user.is_none() || identity.local_device.is_none() {
            identity.local_user.get_or_insert_with(|| r.os_user.clone().unwrap_or_else(|| r.user.clone()));
            if identity.local_device.is_none() {
                let (taken,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM devices WHERE local_device = $1 AND id <> $2 AND revoked_at IS NULL",
                )
                .bind(&r.device)
                .bind(device)
                .fetch_one(&mut *tx)
                .await?;
                if taken == 0 {
                    identity.local_device = Some(r.device.clone());
                }
            }
            sqlx::query("UPDATE devices SET local_user = $1, local_device = $2 WHERE id = $3")
                .bind(&identity.local_user)
                .bind(&identity.local_device)
                .bind(device)
                .execute(&mut *tx)
                .await?;
        }
        let local_user = identity.local_user.clone().unwrap_or_default();
        // A verified person was checked against the device's binding above; otherwise the
        // record is stored as the person IT enrolled the device for, else as the account it
        // named first (unverified either way, as the record says).
        let verified = r.user_verified.as_deref() == Some("true");
        // An unverified record of a device bound to a person is filed under them (it says
        // unverified, as sent): a device cannot shed its person by not naming them.
        let user = match (verified, &person) {
            (true, _) => r.user.clone(),
            (false, Some(p)) => p.clone(),
            (false, None) => identity.user.clone().unwrap_or_else(|| local_user.clone()),
        };
        // A device whose claimed id belongs to no enrolled device is filed under its hub id.
        let local = identity.local_device.clone().unwrap_or_else(|| device.to_string());
        let os_account = r.os_user.as_deref().unwrap_or(if verified { local_user.as_str() } else { r.user.as_str() });
        let claimed_user = (os_account != local_user).then(|| os_account.to_string());
        let claimed_device = (r.device != local).then(|| r.device.clone());
        let inserted = sqlx::query(
            "INSERT INTO records (id, device_id, seq, time, kind, user_name, device, client, client_name, \
             client_version, session, server, tool, method, arguments, decision, rule, reason, approval, \
             policy_version, class, label, prev_hash, hash, received_at, claimed_user, claimed_device, grant_id, \
             grant_length, grant_columns, trace_id, user_verified, os_user, owner, approver, request_id) VALUES ($1, \
             $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, \
             $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&r.id)
        .bind(device)
        .bind(r.seq)
        .bind(&r.time)
        .bind(&r.kind)
        .bind(&user)
        .bind(&local)
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
        .bind(&claimed_user)
        .bind(&claimed_device)
        .bind(&r.grant_id)
        .bind(&r.grant_length)
        .bind(i64::from(batch.grant_columns))
        .bind(&r.trace_id)
        .bind(&r.user_verified)
        .bind(&r.os_user)
        .bind(&r.owner)
        .bind(&r.approver)
        .bind(&r.request_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            // Held already: the same record again is a replay; anything else is not.
            let held: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT device_id, hash FROM records WHERE id = $1")
                    .bind(&r.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match held {
                Some((owner, _)) if owner != device => {
                    alert(
                        &mut tx,
                        device,
                        "identity",
                        format!("sent record {}, which another device sent first", r.id),
                    )
                    .await?;
                    continue;
                }
                Some((_, hash)) if hash != r.hash => {
                    let what = format!(
                        "record {} (seq {}) was sent again with other contents: the device's chain diverges from \
                         what the hub acknowledged",
                        r.id, r.seq
                    );
                    alert(&mut tx, device, "diverged", what).await?;
                    broke = true;
                    continue;
                }
                // The hash the hub holds, on other contents: changed after it was hashed.
                Some(_) if r.hash.is_some() && !r.hash_holds() => {
                    let what = format!(
                        "record {} (seq {}) was sent again with contents that do not match its hash: changed on \
                         the device; the copy the hub holds stays",
                        r.id, r.seq
                    );
                    alert(&mut tx, device, "hash", what).await?;
                }
                _ => {}
            }
            ack.records.push(r.id.clone());
            continue;
        }
        ack.records.push(r.id.clone());
        new.push(WireRecord { user: user.clone(), device: local.clone(), ..r.clone() });
        if claimed_user.is_some() || claimed_device.is_some() {
            let what = format!(
                "record {} (seq {}) claims OS account `{os_account}` on device `{}`; this device's records name \
                 `{local_user}` on `{local}` and it answers for `{user}`: the record is stored as theirs",
                r.id, r.seq, r.device
            );
            alert(&mut tx, device, "identity", what).await?;
        }
        if r.rule.as_deref() == Some(countersign_audit::wire::REQUIRE_ROUTING_RULE) && r.decision == "deny" {
            let what = r.reason.clone().unwrap_or_else(|| "servers configured around Countersign".into());
            alert(&mut tx, device, "shadow-servers", what).await?;
        }
        if r.rule.as_deref() == Some(countersign_policy::EXPIRED_RULE) && r.decision == "deny" {
            let what = r.reason.clone().unwrap_or_else(|| "the managed policy bundle in force expired".into());
            alert(&mut tx, device, "policy-expired", what).await?;
        }
        if r.hash.is_none() {
            continue;
        }
        if !r.hash_holds() {
            alert(&mut tx, device, "hash", format!("record {} (seq {}) does not match its hash", r.id, r.seq)).await?;
        }
        let expected = last_hash.as_deref().unwrap_or(GENESIS);
        if last_seq.is_some_and(|s| r.seq <= s) {
            // A new record at a place the hub already holds another for: the chain forked.
            let (others,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM records WHERE device_id = $1 AND seq = $2 AND id <> $3")
                    .bind(device)
                    .bind(r.seq)
                    .bind(&r.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if others > 0 {
                let what = format!(
                    "record {} claims seq {}, where the hub already holds another record of this device: the \
                     device's chain diverges from what the hub acknowledged",
                    r.id, r.seq
                );
                alert(&mut tx, device, "diverged", what).await?;
                broke = true;
            } else {
                // Sync sends records in order: one arriving for a place behind the head
                // is stored, but flagged; the head stays.
                let what = format!(
                    "record {} arrived for seq {}, behind the chain's head (seq {}): stored, not part of the chain",
                    r.id,
                    r.seq,
                    last_seq.unwrap_or(0)
                );
                alert(&mut tx, device, "late", what).await?;
            }
            continue;
        }
        if r.prev_hash.as_deref() != Some(expected) && last_seq.is_some_and(|s| r.seq == s + 1) {
            // Nothing is missing in between, so a record the hub holds was changed there.
            let what = format!(
                "record {} (seq {}) does not continue the chain the hub acknowledged, and no record is missing \
                 before it: a record the hub holds was changed on the device; checkpoints stop here",
                r.id, r.seq
            );
            alert(&mut tx, device, "diverged", what).await?;
            broke = true;
        } else if r.prev_hash.as_deref() != Some(expected) {
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
        let held: Option<(Option<String>, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT outcome, outcome_hash, hash FROM records WHERE id = $1 AND device_id = $2")
                .bind(&o.record_id)
                .bind(device)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((held_outcome, held_hash, record_hash)) = held else { continue };
        if held_outcome.is_some() {
            // An outcome is written once: the same one again is a replay, another is not.
            if held_hash == o.hash {
                ack.outcomes.push(o.record_id.clone());
            } else {
                let what = format!(
                    "the outcome of record {} was sent again as `{}` with other contents: the device's history \
                     diverges from what the hub acknowledged; the first one stays",
                    o.record_id, o.outcome
                );
                alert(&mut tx, device, "diverged", what).await?;
                broke = true;
            }
            continue;
        }
        if record_hash.is_some() && o.hash.is_none() {
            let what = format!("the outcome of record {} has no hash, but its record is chained: refused", o.record_id);
            alert(&mut tx, device, "unhashed", what).await?;
            continue;
        }
        if let Some(record_hash) = &record_hash {
            let duration = countersign_audit::chain::duration_text(o.duration_ms);
            let expected = countersign_audit::chain::outcome_hash(
                record_hash,
                &[Some(&o.record_id), Some(&o.time), Some(&o.outcome), duration.as_deref(), o.detail.as_deref()],
            );
            if o.hash.as_deref() != Some(expected.as_str()) {
                alert(
                    &mut tx,
                    device,
                    "hash",
                    format!("the outcome of record {} does not match its hash", o.record_id),
                )
                .await?;
            }
        }
        // A missing duration is written as a literal NULL: sqlx's Any driver sends a NULL
        // float to PostgreSQL in a form it refuses ("incorrect binary data format").
        let update = match o.duration_ms {
            Some(d) => sqlx::query(
                "UPDATE records SET outcome = $1, outcome_time = $2, detail = $3, outcome_hash = $4, \
                 duration_ms = $7 WHERE id = $5 AND device_id = $6",
            )
            .bind(&o.outcome)
            .bind(&o.time)
            .bind(&o.detail)
            .bind(&o.hash)
            .bind(&o.record_id)
            .bind(device)
            .bind(d),
            None => sqlx::query(
                "UPDATE records SET outcome = $1, outcome_time = $2, detail = $3, outcome_hash = $4, \
                 duration_ms = NULL WHERE id = $5 AND device_id = $6",
            )
            .bind(&o.outcome)
            .bind(&o.time)
            .bind(&o.detail)
            .bind(&o.hash)
            .bind(&o.record_id)
            .bind(device),
        };
        let updated = update.execute(&mut *tx).await?.rows_affected();
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
    if broke && diverged.is_none() {
        diverged = last_seq;
        sqlx::query("UPDATE devices SET diverged_seq = $1 WHERE id = $2")
            .bind(last_seq)
            .bind(device)
            .execute(&mut *tx)
            .await?;
    }
    // A diverged chain gets no new checkpoint: the last good one stays the newest.
    if let (Some(key), Some(seq), Some(hash), None) = (key, last_seq, &last_hash, diverged) {
        ack.checkpoint = Some(checkpoint(&mut tx, key, device, seq, hash, &now).await?);
    }
    tx.commit().await?;
    ack.last_seq = last_seq;
    ack.last_hash = last_hash;
    Ok(Ingested::Stored { ack, new })
}

/// The checkpoint for `device`'s head: the one already signed for that place, or a new
/// one, signed and kept.
async fn checkpoint(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &SigningKey,
    device: &str,
    seq: i64,
    hash: &str,
    now: &str,
) -> Result<Checkpoint, DbError> {
    let held: Option<(String, String, String)> =
        sqlx::query_as("SELECT hash, time, signature FROM checkpoints WHERE device_id = $1 AND seq = $2")
            .bind(device)
            .bind(seq)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some((hash, time, signature)) = held {
        return Ok(Checkpoint { device: device.to_string(), seq, hash, time, signature });
    }
    let signature = key
        .sign_text(&statement(device, seq, hash, now), &format!("countersign audit checkpoint {device} {seq}"))
        .map_err(|e| DbError::Sign(e.to_string()))?;
    sqlx::query("INSERT INTO checkpoints (device_id, seq, hash, time, signature) VALUES ($1, $2, $3, $4, $5)")
        .bind(device)
        .bind(seq)
        .bind(hash)
        .bind(now)
        .bind(&signature)
        .execute(&mut **tx)
        .await?;
    // A checkpoint vouches for the whole chain up to its record: the newest few are enough.
    sqlx::query(
        "DELETE FROM checkpoints WHERE device_id = $1 AND seq < (SELECT MIN(seq) FROM (SELECT seq FROM checkpoints \
         WHERE device_id = $1 ORDER BY seq DESC LIMIT 16) AS newest)",
    )
    .bind(device)
    .execute(&mut **tx)
    .await?;
    Ok(Checkpoint { device: device.to_string(), seq, hash: hash.to_string(), time: now.to_string(), signature })
}

/// The newest checkpoint signed for `device`.
pub async fn latest_checkpoint(db: &Db, device: &str) -> Result<Option<Checkpoint>, DbError> {
    let row: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT seq, hash, time, signature FROM checkpoints WHERE device_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(device)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|(seq, hash, time, signature)| Checkpoint { device: device.to_string(), seq, hash, time, signature }))
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

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
