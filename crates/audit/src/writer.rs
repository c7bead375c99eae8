//! The journal's one write connection (SQLite's C API through rusqlite, cached
//! statements): inserts of records and outcomes, batches in one transaction, the writer
//! thread's group commits, WAL checkpoints, and the hash chain's head, which moves only
//! once a commit succeeded. Never reads on behalf of callers.

use crate::record::{OutcomeRecord, Record};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// How hard SQLite syncs a commit. `Normal` (the default) survives a crash of the process,
/// `Full` also a power cut, at the price of an fsync per commit group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

pub(crate) type Ack = oneshot::Sender<Result<(), String>>;

pub(crate) enum Op {
    Record(Box<Record>, Option<Ack>),
    Outcome(OutcomeRecord, Option<Ack>),
    /// Move the WAL's pages into the database file (kept off the commit path).
    Checkpoint,
}

/// The one write connection and the chain's head (the newest record's hash), which only
/// moves once a commit has succeeded.
pub(crate) struct Writer {
    pub(crate) conn: rusqlite::Connection,
    pub(crate) head: String,
    /// The hashes of the records committed last, by id: an outcome (which follows its
    /// record within moments) chains to its record's hash without reading it back.
    pub(crate) recent: RecentHashes,
    /// The journal's lock file, held (locked) for as long as this writer lives.
    pub(crate) _lock: std::fs::File,
}

pub(crate) fn open_writer(path: &Path, sync: Synchronous) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        },
    )?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// The insert of a record: its columns ([`crate::chain::RECORD_COLUMNS`]), then
/// `prev_hash` and `hash`.
static INSERT_RECORD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns = crate::chain::RECORD_COLUMNS;
    let places: Vec<String> = (1..=columns.len() + 2).map(|i| format!("?{i}")).collect();
    format!("INSERT INTO records ({}, prev_hash, hash) VALUES ({})", columns.join(", "), places.join(", "))
});
/// An outcome is written once. A second one for the same record (a call closed as
/// `unknown` by a gateway that wrongly thought it held the journal) is dropped with a
/// warning rather than failing, and poisoning, every commit it would ride along with.
const INSERT_OUTCOME: &str = "INSERT INTO outcomes (record_id, time, outcome, duration_ms, detail, hash) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(record_id) DO NOTHING";

pub(crate) fn write_loop(conn: Arc<Mutex<Writer>>, mut rx: mpsc::Receiver<Op>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let result = {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            write_batch(&mut conn, &batch).map_err(|e| e.to_string())
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, records = batch.len(), "audit journal commit failed");
        }
        for op in batch.drain(..) {
            let ack = match op {
                Op::Record(_, ack) | Op::Outcome(_, ack) => ack,
                Op::Checkpoint => None,
            };
            if let Some(ack) = ack {
                let _ = ack.send(result.clone());
            }
        }
    }
}

/// Record hashes by id, the newest [`RecentHashes::KEPT`].
#[derive(Default)]
pub(crate) struct RecentHashes {
    by_id: std::collections::HashMap<String, String>,
    order: std::collections::VecDeque<String>,
}

impl RecentHashes {
    const KEPT: usize = 4096;

    fn get(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }

    fn add(&mut self, written: Vec<(String, String)>) {
        for (id, hash) in written {
            self.order.push_back(id.clone());
            self.by_id.insert(id, hash);
        }
        while self.order.len() > Self::KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// What one batch wrote, for the outcomes after it: record ids and hashes.
struct Written<'a> {
    now: Vec<(String, String)>,
    before: &'a RecentHashes,
}

/// Commits the batch in one transaction (a single statement commits by itself). The
/// chain's head advances only when the commit succeeds.
pub(crate) fn write_batch(writer: &mut Writer, batch: &[Op]) -> rusqlite::Result<()> {
    let checkpoint = batch.iter().any(|op| matches!(op, Op::Checkpoint));
    let writes: Vec<&Op> = batch.iter().filter(|op| !matches!(op, Op::Checkpoint)).collect();
    let mut head = writer.head.clone();
    let mut written = Written { now: Vec::new(), before: &writer.recent };
    match writes.as_slice() {
        [] => {}
        [single] => write_op(&writer.conn, single, &mut head, &mut written)?,
        many => {
            // Immediate: the write lock is taken at BEGIN, where the busy timeout applies. A
            // deferred transaction that reads first (an outcome looks up its record's hash)
            // would have to upgrade, and SQLite refuses that at once ("database is locked")
            // when another connection (the outbox's upkeep) wrote meanwhile. BEGIN and
            // COMMIT are cached statements: parsing them again costs more than the insert.
            let conn = &writer.conn;
            conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            let done = many
                .iter()
                .try_for_each(|op| write_op(conn, op, &mut head, &mut written))
                .and_then(|()| conn.prepare_cached("COMMIT")?.execute([]).map(drop));
            if let Err(e) = done {
                if !conn.is_autocommit() {
                    let _ = conn.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
                }
                return Err(e);
            }
        }
    }
    let now = written.now;
    writer.recent.add(now);
    writer.head = head;
    if checkpoint {
        // Outside any transaction; a checkpoint that cannot finish now finishes next time.
        if let Err(e) = writer.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!("WAL checkpoint deferred: {e}");
        }
    }
    Ok(())
}

/// Text as the journal stores (and hashes) it: a NUL, which a client may put in the name
/// it declares and which no PostgreSQL text column can hold (the hub would refuse every
/// later batch), becomes U+FFFD.
fn storable(text: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    text.map(|t| if t.contains('\0') { t.replace('\0', "\u{fffd}").into() } else { t.into() })
}

fn write_op(
    conn: &rusqlite::Connection,
    op: &Op,
    head: &mut String,
    written: &mut Written<'_>,
) -> rusqlite::Result<()> {
    match op {
        Op::Checkpoint => {}
        Op::Record(r, _) => {
            let arguments = r.arguments.as_ref().map(Value::to_string);
            let id = r.id.to_string();
            let text = crate::chain::RecordText {
                id: &id,
                time: &r.time,
                kind: r.kind.as_str(),
                user: &r.user,
                device: &r.device,
                client: r.client.as_deref(),
                client_name: r.client_name.as_deref(),
                client_version: r.client_version.as_deref(),
                session: r.session.as_deref(),
                server: r.server.as_deref(),
                tool: r.tool.as_deref(),
                method: r.method.as_deref(),
                arguments: arguments.as_deref(),
                decision: r.decision.as_str(),
                rule: r.rule.as_deref(),
                reason: r.reason.as_deref(),
                approval: r.approval.map(crate::Approval::as_str),
                policy_version: r.policy_version.as_deref(),
                class: r.class.map(crate::ToolClass::as_str),
                label: r.label.as_deref(),
                grant_id: r.grant.as_ref().map(crate::RecordGrant::id),
                grant_length: r.grant.as_ref().and_then(crate::RecordGrant::length).map(crate::GrantLength::as_str),
                trace_id: r.trace_id.as_deref(),
                user_verified: crate::chain::verified_text(r.user_verified),
                os_user: r.os_user.as_deref(),
                owner: r.owner.as_deref(),
                approver: r.approver.as_deref(),
                request_id: r.request_id.as_deref(),
            };
            let stored = text.columns().map(storable);
            let fields = crate::chain::ChainFields::of_columns(stored.each_ref().map(|t| t.as_deref()));
            let hash = fields.hash(head);
            let mut params: Vec<Option<&str>> = fields.columns().to_vec();
            params.push(Some(head.as_str()));
            params.push(Some(hash.as_str()));
            conn.prepare_cached(&INSERT_RECORD)?.execute(rusqlite::params_from_iter(params))?;
            written.now.push((id, hash.clone()));
            *head = hash;
        }
        Op::Outcome(o, _) => {
            let id = o.record_id.to_string();
            let known = written.now.iter().rev().find(|(w, _)| *w == id).map(|(_, h)| h.as_str());
            let record_hash: Option<String> = match known.or_else(|| written.before.get(&id)) {
                Some(hash) => Some(hash.to_string()),
                None => conn
                    .prepare_cached("SELECT hash FROM records WHERE id = ?1")?
                    .query_row([id.as_str()], |r| r.get(0))
                    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?,
            };
            let detail = storable(o.detail.as_deref());
            let duration = crate::chain::duration_text(o.duration_ms);
            let hash = crate::chain::outcome_hash(
                record_hash.as_deref().unwrap_or(crate::chain::GENESIS),
                &[
                    Some(id.as_str()),
                    Some(o.time.as_str()),
                    Some(o.outcome.as_str()),
                    duration.as_deref(),
                    detail.as_deref(),
                ],
            );
            let written = conn.prepare_cached(INSERT_OUTCOME)?.execute(rusqlite::params![
                id,
                o.time,
                o.outcome.as_str(),
                o.duration_ms,
                detail.as_deref(),
                hash,
            ])?;
            if written == 0 {
                tracing::warn!(record = %id, outcome = o.outcome.as_str(), "the record already has an outcome; this one is dropped");
            }
        }
    }
    Ok(())
}
