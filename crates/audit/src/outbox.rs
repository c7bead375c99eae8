//! The journal's outbox: which records and outcomes the hub has acknowledged. Records go
//! oldest first; `sent_seq` moves only through an unbroken run of acknowledged records, so
//! nothing is skipped, and anything sent but not acknowledged is sent again (the hub
//! deduplicates by id: delivery is at least once).
//!
//! It uses a connection of its own and tables of its own (`sync_state`, `sent_outcomes`),
//! never the journal's records: the chain is untouched, and a second process (`countersign
//! sync --now` beside a running gateway) can use it safely.

use crate::wire::{Ack, Batch, WireOutcome, WireRecord};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("audit outbox: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("audit outbox: the blocking task failed: {0}")]
    Task(String),
}

/// An outbox for async code: its connection is opened once and every use runs on a
/// blocking thread (SQLite's calls block).
#[derive(Clone)]
pub struct AsyncOutbox(std::sync::Arc<std::sync::Mutex<Outbox>>);

impl AsyncOutbox {
    pub async fn open(journal: std::path::PathBuf) -> Result<Self, OutboxError> {
        let outbox = tokio::task::spawn_blocking(move || Outbox::open(&journal))
            .await
            .map_err(|e| OutboxError::Task(e.to_string()))??;
        Ok(AsyncOutbox(std::sync::Arc::new(std::sync::Mutex::new(outbox))))
    }

    /// Runs `op` on the outbox on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Outbox) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let outbox = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = outbox.lock().unwrap_or_else(|p| p.into_inner());
            op(&mut guard)
        })
        .await
        .map_err(|e| OutboxError::Task(e.to_string()))?
    }
}

pub struct Outbox {
    conn: Connection,
}

/// How much waits to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pending {
    pub records: u64,
    pub outcomes: u64,
}

/// Unsent records with every column the chain may cover ([`crate::chain::RECORD_COLUMNS`]).
static RECORD_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT seq, {}, prev_hash, hash FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        crate::chain::RECORD_COLUMNS.join(", ")
    )
});

impl Outbox {
    pub fn open(journal: &Path) -> Result<Self, OutboxError> {
        let conn = Connection::open(journal)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS sent_outcomes (record_id TEXT PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS chain_anchor (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
                 hash TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, device TEXT NOT NULL,
                 time TEXT NOT NULL, signature TEXT NOT NULL);",
        )?;
        Ok(Outbox { conn })
    }

    fn state(&self, key: &str) -> Result<Option<String>, OutboxError> {
        Ok(self.conn.query_row("SELECT value FROM sync_state WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// The newest record the hub acknowledged (0 when none).
    pub fn sent_seq(&self) -> Result<i64, OutboxError> {
        Ok(self.state("sent_seq")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// The newest checkpoint the hub signed for this journal.
    pub fn latest_checkpoint(&self) -> Result<Option<crate::checkpoint::Checkpoint>, OutboxError> {
        Ok(self
            .conn
            .query_row(
                "SELECT device, seq, hash, time, signature FROM checkpoints ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(crate::checkpoint::Checkpoint {
                        device: r.get(0)?,
                        seq: r.get(1)?,
                        hash: r.get(2)?,
                        time: r.get(3)?,
                        signature: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// The last chain hash the hub said it holds.
    pub fn hub_last_hash(&self) -> Result<Option<String>, OutboxError> {
        self.state("hub_last_hash")
    }

    pub fn pending(&self) -> Result<Pending, OutboxError> {
        let sent = self.sent_seq()?;
        let records: i64 = self.conn.query_row("SELECT count(*) FROM records WHERE seq > ?1", [sent], |r| r.get(0))?;
        let outcomes: i64 = self.conn.query_row(
            "SELECT count(*) FROM outcomes o WHERE NOT EXISTS (SELECT 1 FROM sent_outcomes s WHERE s.record_id = o.record_id)",
            [],
            |r| r.get(0),
        )?;
        Ok(Pending { records: records as u64, outcomes: outcomes as u64 })
    }

    /// Up to `limit` unsent records, oldest first, and the unsent outcomes of records that
    /// are sent or in this batch.
    pub fn next_batch(&self, limit: usize) -> Result<Batch, OutboxError> {
        let sent = self.sent_seq()?;
        let mut stmt = self.conn.prepare_cached(&RECORD_SQL)?;
        let records: Vec<WireRecord> = stmt
            .query_map(params![sent, limit as i64], |r| {
                // By name: the order is the chain's business (chain.rs), not this reader's.
                Ok(WireRecord {
                    seq: r.get("seq")?,
                    id: r.get("id")?,
                    time: r.get("time")?,
                    kind: r.get("kind")?,
                    user: r.get("user")?,
                    device: r.get("device")?,
                    client: r.get("client")?,
                    client_name: r.get("client_name")?,
                    client_version: r.get("client_version")?,
                    session: r.get("session")?,
                    server: r.get("server")?,
                    tool: r.get("tool")?,
                    method: r.get("method")?,
                    arguments: r.get("arguments")?,
                    decision: r.get("decision")?,
                    rule: r.get("rule")?,
                    reason: r.get("reason")?,
                    approval: r.get("approval")?,
                    policy_version: r.get("policy_version")?,
                    class: r.get("class")?,
                    label: r.get("label")?,
                    grant_id: r.get("grant_id")?,
                    grant_length: r.get("grant_length")?,
                    trace_id: r.get("trace_id")?,
                    user_verified: r.get("user_verified")?,
                    os_user: r.get("os_user")?,
                    owner: r.get("owner")?,
                    approver: r.get("approver")?,
                    request_id: r.get("request_id")?,
                    prev_hash: r.get("prev_hash")?,
                    hash: r.get("hash")?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let through = records.last().map_or(sent, |r| r.seq);
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.record_id, o.time, o.outcome, o.duration_ms, o.detail, o.hash FROM outcomes o \
             JOIN records r ON r.id = o.record_id \
             WHERE r.seq <= ?1 AND NOT EXISTS (SELECT 1 FROM sent_outcomes s WHERE s.record_id = o.record_id) \
             ORDER BY r.seq LIMIT ?2",
        )?;
        let outcomes = stmt
            .query_map(params![through, limit as i64], |r| {
                Ok(WireOutcome {
                    record_id: r.get(0)?,
                    time: r.get(1)?,
                    outcome: r.get(2)?,
                    duration_ms: r.get(3)?,
                    detail: r.get(4)?,
                    hash: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Batch { records, outcomes, grant_columns: true })
    }

    /// Marks what the hub acknowledged as sent; returns how many records and outcomes.
    pub fn acknowledge(&mut self, batch: &Batch, ack: &Ack) -> Result<Pending, OutboxError> {
        let acked: HashSet<&str> = ack.records.iter().map(String::as_str).collect();
        let mut through = None;
        for r in &batch.records {
            if !acked.contains(r.id.as_str()) {
                break;
            }
            through = Some(r.seq);
        }
        let acked_outcomes: HashSet<&str> = ack.outcomes.iter().map(String::as_str).collect();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut outcomes = 0;
        for o in &batch.outcomes {
            if acked_outcomes.contains(o.record_id.as_str()) {
                outcomes +=
                    tx.execute("INSERT OR IGNORE INTO sent_outcomes (record_id) VALUES (?1)", [&o.record_id])?;
            }
        }
        if let Some(seq) = through {
            tx.execute(
                "INSERT INTO sync_state (key, value) VALUES ('sent_seq', ?1) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE CAST(value AS INTEGER) < ?1",
                [seq],
            )?;
        }
        if let Some(h) = &ack.last_hash {
            tx.execute(
                "INSERT INTO sync_state (key, value) VALUES ('hub_last_hash', ?1) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [h],
            )?;
        }
        if let Some(cp) = &ack.checkpoint {
            // Kept as given; `audit verify` checks its signature and that the record at its
            // place still has its hash. A checkpoint is never replaced by another for the
            // same place.
            tx.execute(
                "INSERT OR IGNORE INTO checkpoints (seq, hash, device, time, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![cp.seq, cp.hash, cp.device, cp.time, cp.signature],
            )?;
        }
        tx.commit()?;
        let records = batch.records.iter().take_while(|r| acked.contains(r.id.as_str())).count();
        Ok(Pending { records: records as u64, outcomes: outcomes as u64 })
    }
}

/// What [`Outbox::prune`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Acknowledged records removed (older than the retention, or to make room).
    pub removed_sent: u64,
    /// Unacknowledged records dropped to make room (only when dropping is allowed), as
    /// (count, first seq, last seq).
    pub dropped_unsent: Option<(u64, i64, i64)>,
    /// Records the hub has not acknowledged, after pruning.
    pub unsent: u64,
    /// Whether the journal is full of unacknowledged records (the caller fails closed).
    pub full: bool,
}

impl Outbox {
    /// Keeps the journal within `max_records`: acknowledged records older than `cutoff`
    /// (RFC 3339) go, then the oldest acknowledged ones while there are too many. When only
    /// unacknowledged records are left and there are still too many, they are dropped
    /// oldest first if `drop_unsent`, else the journal is reported full. Whatever goes
    /// before the chain's first remaining record is summed up in the chain's anchor, so
    /// the chain still verifies.
    pub fn prune(&mut self, max_records: u64, cutoff: Option<&str>, drop_unsent: bool) -> Result<Pruned, OutboxError> {
        let sent = self.sent_seq()?;
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut report = Pruned::default();
        if let Some(cutoff) = cutoff {
            let old: Option<i64> = tx.query_row(
                "SELECT MAX(seq) FROM records WHERE seq <= ?1 AND time < ?2",
                params![sent, cutoff],
                |r| r.get(0),
            )?;
            if let Some(through) = old {
                report.removed_sent += delete_through(&tx, through)?;
            }
        }
        let count = |tx: &rusqlite::Transaction| -> rusqlite::Result<u64> {
            tx.query_row("SELECT count(*) FROM records", [], |r| r.get::<_, i64>(0)).map(|n| n as u64)
        };
        let total = count(&tx)?;
        if total > max_records {
            let excess = total - max_records;
            let through: Option<i64> = tx
                .query_row(
                    "SELECT seq FROM records WHERE seq <= ?1 ORDER BY seq LIMIT 1 OFFSET ?2",
                    params![sent, excess as i64 - 1],
                    |r| r.get(0),
                )
                .optional()?
                .or(tx.query_row("SELECT MAX(seq) FROM records WHERE seq <= ?1", [sent], |r| r.get(0))?);
            if let Some(through) = through {
                report.removed_sent += delete_through(&tx, through)?;
            }
        }
        let total = count(&tx)?;
        if total > max_records && drop_unsent {
            let excess = total - max_records;
            let (first, last): (Option<i64>, Option<i64>) = tx.query_row(
                "SELECT MIN(seq), MAX(seq) FROM (SELECT seq FROM records ORDER BY seq LIMIT ?1)",
                [excess as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if let (Some(first), Some(last)) = (first, last) {
                let n = delete_through(&tx, last)?;
                // Dropped records count as sent: they will never be.
                tx.execute(
                    "INSERT INTO sync_state (key, value) VALUES ('sent_seq', ?1) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE CAST(value AS INTEGER) < ?1",
                    [last],
                )?;
                report.dropped_unsent = Some((n, first, last));
            }
        }
        let sent_now: i64 = tx
            .query_row("SELECT value FROM sync_state WHERE key = 'sent_seq'", [], |r| r.get::<_, String>(0))
            .optional()?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        report.unsent =
            tx.query_row("SELECT count(*) FROM records WHERE seq > ?1", [sent_now], |r| r.get::<_, i64>(0))? as u64;
        report.full = report.unsent >= max_records;
        tx.commit()?;
        Ok(report)
    }
}

/// Deletes every record through `seq` (and their outcomes), moving the chain's anchor to
/// the last one deleted; returns how many were deleted.
fn delete_through(tx: &rusqlite::Transaction, seq: i64) -> rusqlite::Result<u64> {
    let anchor: Option<(i64, Option<String>)> = tx
        .query_row("SELECT seq, hash FROM records WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1", [seq], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((anchor_seq, Some(anchor_hash))) = anchor else { return Ok(0) };
    tx.execute("DELETE FROM sent_outcomes WHERE record_id IN (SELECT id FROM records WHERE seq <= ?1)", [anchor_seq])?;
    tx.execute("DELETE FROM outcomes WHERE record_id IN (SELECT id FROM records WHERE seq <= ?1)", [anchor_seq])?;
    let n = tx.execute("DELETE FROM records WHERE seq <= ?1", [anchor_seq])?;
    tx.execute(
        "INSERT INTO chain_anchor (id, seq, hash) VALUES (1, ?1, ?2) \
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        params![anchor_seq, anchor_hash],
    )?;
    // Checkpoints before the anchor name records that are gone; the anchor's own stays.
    tx.execute("DELETE FROM checkpoints WHERE seq < ?1", [anchor_seq])?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Journal, JournalOptions, Record, RecordKind};

    async fn journal_with(n: usize) -> (tempfile::TempDir, std::path::PathBuf, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
        for _ in 0..n {
            journal.commit(Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow)).await.unwrap();
        }
        (dir, path, journal)
    }

    fn ack_first(outbox: &mut Outbox, n: usize) {
        let batch = outbox.next_batch(n).unwrap();
        let ack = Ack { records: batch.records.iter().map(|r| r.id.clone()).collect(), ..Default::default() };
        outbox.acknowledge(&batch, &ack).unwrap();
    }

    #[tokio::test]
    async fn pruning_keeps_the_bound_sent_records_first_and_the_chain_verifiable() {
        let (_dir, path, journal) = journal_with(10).await;
        let mut outbox = Outbox::open(&path).unwrap();
        ack_first(&mut outbox, 6);
        let report = outbox.prune(8, None, false).unwrap();
        assert_eq!((report.removed_sent, report.unsent, report.full), (2, 4, false));
        assert_eq!(journal.reader().verify().await.unwrap().records, 8, "anchored after pruning");

        // Only unsent records would have to go: fail closed.
        let report = outbox.prune(3, None, false).unwrap();
        assert_eq!((report.removed_sent, report.dropped_unsent, report.unsent, report.full), (4, None, 4, true));
        journal.set_full(true);
        assert!(matches!(
            journal.commit(Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow)).await,
            Err(crate::JournalError::Full)
        ));
        journal.commit(Record::new(RecordKind::Policy, "ana", "dev1", crate::Decision::Deny)).await.unwrap();
        journal.set_full(false);

        // Or, when allowed, drop the oldest unsent ones and say which.
        let report = outbox.prune(3, None, true).unwrap();
        assert_eq!(report.dropped_unsent, Some((2, 7, 8)));
        assert_eq!(report.unsent, 3);
        let verified = journal.reader().verify().await.unwrap();
        assert_eq!(verified.records, 3);
        assert_eq!(outbox.pending().unwrap().records, 3);
    }

    /// Case 24: a tail cut after the hub acknowledged it is found locally too.
    #[tokio::test]
    async fn sec_24_a_cut_tail_the_hub_acknowledged_fails_verification() {
        let (_dir, path, journal) = journal_with(5).await;
        let mut outbox = Outbox::open(&path).unwrap();
        ack_first(&mut outbox, 5);
        assert_eq!(journal.reader().verify().await.unwrap().records, 5);
        outbox.conn.execute("DELETE FROM records WHERE seq >= 4", []).unwrap();
        match journal.reader().verify().await {
            Err(crate::JournalError::Broken { seq: 3, why, .. }) => assert!(why.contains("tail was cut"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn sent_records_past_their_retention_go() {
        let (_dir, path, journal) = journal_with(5).await;
        let mut outbox = Outbox::open(&path).unwrap();
        ack_first(&mut outbox, 3);
        let report = outbox.prune(1000, Some("2100-01-01T00:00:00Z"), false).unwrap();
        assert_eq!((report.removed_sent, report.unsent), (3, 2));
        let report = outbox.prune(1000, Some("2000-01-01T00:00:00Z"), false).unwrap();
        assert_eq!(report.removed_sent, 0, "nothing that old");
        assert_eq!(journal.reader().verify().await.unwrap().records, 2);
    }
}
