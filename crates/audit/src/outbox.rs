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
#[error("audit outbox: {0}")]
pub struct OutboxError(#[from] rusqlite::Error);

pub struct Outbox {
    conn: Connection,
}

/// How much waits to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pending {
    pub records: u64,
    pub outcomes: u64,
}

const RECORD_SQL: &str = "SELECT seq, id, time, kind, user, device, client, client_name, client_version, session, \
    server, tool, method, arguments, decision, rule, reason, approval, policy_version, class, label, prev_hash, hash \
    FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2";

impl Outbox {
    pub fn open(journal: &Path) -> Result<Self, OutboxError> {
        let conn = Connection::open(journal)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS sent_outcomes (record_id TEXT PRIMARY KEY) WITHOUT ROWID;",
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
        let mut stmt = self.conn.prepare_cached(RECORD_SQL)?;
        let records: Vec<WireRecord> = stmt
            .query_map(params![sent, limit as i64], |r| {
                Ok(WireRecord {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    time: r.get(2)?,
                    kind: r.get(3)?,
                    user: r.get(4)?,
                    device: r.get(5)?,
                    client: r.get(6)?,
                    client_name: r.get(7)?,
                    client_version: r.get(8)?,
                    session: r.get(9)?,
                    server: r.get(10)?,
                    tool: r.get(11)?,
                    method: r.get(12)?,
                    arguments: r.get(13)?,
                    decision: r.get(14)?,
                    rule: r.get(15)?,
                    reason: r.get(16)?,
                    approval: r.get(17)?,
                    policy_version: r.get(18)?,
                    class: r.get(19)?,
                    label: r.get(20)?,
                    prev_hash: r.get(21)?,
                    hash: r.get(22)?,
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
        Ok(Batch { records, outcomes })
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
        let tx = self.conn.transaction()?;
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
        tx.commit()?;
        let records = batch.records.iter().take_while(|r| acked.contains(r.id.as_str())).count();
        Ok(Pending { records: records as u64, outcomes: outcomes as u64 })
    }
}
