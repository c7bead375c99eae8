//! The SQLite journal: one write connection, committed to in two ways.
//!
//! Migrations and reads go through sqlx. Writes, which every forwarded call waits for,
//! use SQLite's C API (rusqlite, cached insert statements) on one connection, because an
//! sqlx round trip alone costs several times the insert:
//! - a decision record is committed inline when the connection is free (with
//!   `synchronous = normal` that is a WAL append, no fsync), together with any outcomes
//!   waiting to ride along;
//! - when the connection is busy, or with `synchronous = full`, the record goes to the
//!   writer thread, which takes every record waiting at that moment and commits them in
//!   one transaction (group commit), then answers each caller.
//!
//! A caller that must not go on before its record is durable (the gateway, before
//! forwarding) awaits [`Journal::commit`]. Nothing is dropped silently: a failed commit
//! is reported to every caller it concerns, and the gateway denies those calls; outcomes
//! that fail to commit are kept for the next try.

use crate::record::{OutcomeRecord, Record};
use serde_json::{Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection, SqlitePool};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("audit journal {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("audit journal {path}: migration failed: {source}")]
    Migrate { path: PathBuf, source: sqlx::migrate::MigrateError },
    #[error("audit journal write failed: {0}")]
    Write(String),
    #[error("audit journal writer has stopped")]
    Closed,
    #[error("audit journal {path}: {message}")]
    Writer { path: PathBuf, message: String },
    #[error("audit journal read failed: {0}")]
    Read(#[from] sqlx::Error),
    #[error("records cannot be filtered by `{0}` (client, server, tool or decision)")]
    Filter(String),
    #[error("audit export: {0}")]
    Io(#[from] std::io::Error),
    #[error("the audit journal is full of records the hub has not acknowledged, so calls are refused until it is reachable again")]
    Full,
    #[error("the audit chain is broken at record {seq} ({id}): {why}")]
    Broken { seq: i64, id: String, why: String },
}

/// What [`JournalReader::verify`] found in a journal whose chain holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    /// Records checked against the chain.
    pub records: u64,
    /// Outcomes checked against their records.
    pub outcomes: u64,
    /// Records from before the journal was chained (older versions), not checked.
    pub unchained: u64,
    /// The newest record's hash.
    pub head: Option<String>,
}

/// How hard SQLite syncs a commit. `Normal` (the default) survives a crash of the process,
/// `Full` also a power cut, at the price of an fsync per commit group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

#[derive(Debug, Clone)]
pub struct JournalOptions {
    pub synchronous: Synchronous,
    /// Most records committed in one transaction.
    pub max_batch: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { synchronous: Synchronous::Normal, max_batch: 512 }
    }
}

type Ack = oneshot::Sender<Result<(), String>>;

enum Op {
    Record(Box<Record>, Option<Ack>),
    Outcome(OutcomeRecord, Option<Ack>),
    /// Move the WAL's pages into the database file (kept off the commit path).
    Checkpoint,
}

/// How often the writer thread checkpoints the WAL. SQLite's automatic checkpoint runs
/// inside whichever commit crosses the threshold, fsync included; here no caller waits
/// for one.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The one write connection and the chain's head (the newest record's hash), which only
/// moves once a commit has succeeded.
struct Writer {
    conn: rusqlite::Connection,
    head: String,
}

/// A handle to the journal. Clones share one writer.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Op>,
    reader: SqlitePool,
    /// The one write connection, shared by the writer thread and inline commits.
    conn: Arc<Mutex<Writer>>,
    /// Whether a decision record may be committed inline (see [`Journal::commit`]).
    inline: bool,
    /// Outcomes waiting to ride along with the next commit (see [`Journal::queue_outcome`]).
    outcomes: Arc<Mutex<Vec<OutcomeRecord>>>,
    flush_scheduled: Arc<std::sync::atomic::AtomicBool>,
    /// Set while the journal is full of records the hub has not acknowledged and the
    /// managed policy says to fail closed: only policy records are committed.
    full: Arc<std::sync::atomic::AtomicBool>,
}

/// The longest an outcome waits for a decision commit to ride along with.
const OUTCOME_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Journal {
    /// Opens (creating if needed) the journal at `path`, applies migrations and starts the writer.
    pub async fn open(path: &Path, options: JournalOptions) -> Result<Self, JournalError> {
        let sync = match options.synchronous {
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Full => SqliteSynchronous::Full,
        };
        let connect = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(std::time::Duration::from_secs(5))
            // Formatting every statement for the log costs more than the insert itself.
            .log_statements(tracing::log::LevelFilter::Off)
            .log_slow_statements(tracing::log::LevelFilter::Warn, std::time::Duration::from_millis(250));
        let mut migrator_conn = SqliteConnection::connect_with(&connect)
            .await
            .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
        MIGRATOR
            .run(&mut migrator_conn)
            .await
            .map_err(|source| JournalError::Migrate { path: path.to_path_buf(), source })?;
        let _ = migrator_conn.close().await;
        let reader = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(connect.read_only(true))
            .await
            .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
        let writer = open_writer(path, options.synchronous)
            .map_err(|e| JournalError::Writer { path: path.to_path_buf(), message: e.to_string() })?;
        let head: Option<String> = writer
            .query_row("SELECT hash FROM records WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(|e| JournalError::Writer { path: path.to_path_buf(), message: e.to_string() })?;
        let writer = Writer { conn: writer, head: head.unwrap_or_else(|| crate::chain::GENESIS.to_string()) };
        let (tx, rx) = mpsc::channel(8192);
        let max_batch = options.max_batch.max(1);
        let conn = Arc::new(Mutex::new(writer));
        let ticker = tx.downgrade();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(tx) = ticker.upgrade() else { return };
                let _ = tx.try_send(Op::Checkpoint);
            }
        });
        let shared = conn.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(shared, rx, max_batch))
            .map_err(|e| JournalError::Writer { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(Journal {
            tx,
            reader,
            conn,
            inline: options.synchronous == Synchronous::Normal,
            outcomes: Arc::default(),
            flush_scheduled: Arc::default(),
            full: Arc::default(),
        })
    }

    /// Opens an existing journal for reading only (export, status). Starts no writer.
    pub async fn open_read_only(path: &Path) -> Result<JournalReader, JournalError> {
        let connect = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?
            .filename(path)
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect)
            .await
            .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
        Ok(JournalReader { pool })
    }

    /// Commits `record`; returns once it is in the journal.
    ///
    /// With `synchronous = normal` a commit is an append to the WAL without an fsync
    /// (about 10 µs). When the connection is free the record is committed right here:
    /// handing it to the writer thread and back costs more than the write. When it is
    /// busy (other calls are committing) the record joins the writer thread's next group
    /// commit instead of waiting for the lock, so a burst never blocks the runtime's
    /// threads. With `full`, every commit pays an fsync, so records always go grouped.
    pub async fn commit(&self, record: Record) -> Result<(), JournalError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) && record.kind != crate::RecordKind::Policy {
            return Err(JournalError::Full);
        }
        if self.inline {
            if let Ok(mut conn) = self.conn.try_lock() {
                let mut batch = self.take_outcomes();
                batch.push(Op::Record(Box::new(record), None));
                let result = write_batch(&mut conn, &batch).map_err(|e| JournalError::Write(e.to_string()));
                if result.is_err() {
                    // The record failed; the outcomes that rode along must not be lost with it.
                    self.requeue(batch);
                }
                return result;
            }
        }
        self.commit_grouped(record).await
    }

    fn take_outcomes(&self) -> Vec<Op> {
        let taken = std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|p| p.into_inner()));
        taken.into_iter().map(|o| Op::Outcome(o, None)).collect()
    }

    fn requeue(&self, batch: Vec<Op>) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        for op in batch {
            if let Op::Outcome(o, None) = op {
                outcomes.push(o);
            }
        }
    }

    /// Commits every outcome still waiting (the gateway calls this as it stops). Never
    /// waits for the connection: when the writer thread holds it, the outcomes join its
    /// queue instead.
    pub fn flush_outcomes(&self) {
        self.flush_scheduled.store(false, std::sync::atomic::Ordering::SeqCst);
        let batch = self.take_outcomes();
        if batch.is_empty() {
            return;
        }
        match self.conn.try_lock() {
            Ok(mut conn) => {
                if let Err(e) = write_batch(&mut conn, &batch) {
                    tracing::error!(error = %e, "audit outcomes could not be committed; kept for the next try");
                    drop(conn);
                    self.requeue(batch);
                }
            }
            Err(_) => {
                for op in batch {
                    self.send_to_writer(op);
                }
            }
        }
    }

    /// Hands an op to the writer thread without waiting; when its queue is full, a task
    /// waits for room rather than dropping the op.
    fn send_to_writer(&self, op: Op) {
        match self.tx.try_send(op) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit journal writer has stopped; an outcome was not recorded");
            }
            Err(mpsc::error::TrySendError::Full(op)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    if tx.send(op).await.is_err() {
                        tracing::error!("audit journal closed before an outcome could be queued");
                    }
                });
            }
        }
    }

    /// Queues `record` for the writer thread and waits for its group commit.
    pub async fn commit_grouped(&self, record: Record) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Op::Record(Box::new(record), Some(ack))).await.map_err(|_| JournalError::Closed)?;
        done.await.map_err(|_| JournalError::Closed)?.map_err(JournalError::Write)
    }

    /// Queues an outcome from synchronous code. When the queue is full the outcome waits
    /// on a task of its own rather than being dropped.
    ///
    /// With `synchronous = normal` the outcome rides along with the next decision's
    /// commit, or is committed on its own within [`OUTCOME_DELAY`]: one transaction per
    /// call instead of two. (The decision, which must be durable before forwarding, never
    /// waits for this.)
    pub fn queue_outcome(&self, outcome: OutcomeRecord) -> Result<(), JournalError> {
        if self.inline {
            self.outcomes.lock().unwrap_or_else(|p| p.into_inner()).push(outcome);
            if !self.flush_scheduled.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(OUTCOME_DELAY).await;
                    me.flush_outcomes();
                });
            }
            return Ok(());
        }
        self.send_to_writer(Op::Outcome(outcome, None));
        Ok(())
    }

    /// Queues an outcome and waits until it is committed.
    pub async fn commit_outcome(&self, outcome: OutcomeRecord) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Op::Outcome(outcome, Some(ack))).await.map_err(|_| JournalError::Closed)?;
        done.await.map_err(|_| JournalError::Closed)?.map_err(JournalError::Write)
    }

    /// Marks the journal full (or no longer): while full, only policy records are committed.
    pub fn set_full(&self, full: bool) {
        self.full.store(full, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_full(&self) -> bool {
        self.full.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn reader(&self) -> JournalReader {
        JournalReader { pool: self.reader.clone() }
    }
}

fn open_writer(path: &Path, sync: Synchronous) -> rusqlite::Result<rusqlite::Connection> {
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

/// The record columns the chain covers, in order; `prev_hash` and `hash` follow them.
const RECORD_COLUMNS: &str = "id, time, kind, user, device, client, client_name, client_version, session, server, \
    tool, method, arguments, decision, rule, reason, approval, policy_version, class, label";
const INSERT_RECORD: &str = "INSERT INTO records (id, time, kind, user, device, client, client_name, \
    client_version, session, server, tool, method, arguments, decision, rule, reason, approval, policy_version, \
    class, label, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
    ?17, ?18, ?19, ?20, ?21, ?22)";
const INSERT_OUTCOME: &str =
    "INSERT INTO outcomes (record_id, time, outcome, duration_ms, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

fn write_loop(conn: Arc<Mutex<Writer>>, mut rx: mpsc::Receiver<Op>, max_batch: usize) {
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

/// Commits the batch in one transaction (a single statement commits by itself). The
/// chain's head advances only when the commit succeeds.
fn write_batch(writer: &mut Writer, batch: &[Op]) -> rusqlite::Result<()> {
    let checkpoint = batch.iter().any(|op| matches!(op, Op::Checkpoint));
    let writes: Vec<&Op> = batch.iter().filter(|op| !matches!(op, Op::Checkpoint)).collect();
    let mut head = writer.head.clone();
    match writes.as_slice() {
        [] => {}
        [single] => write_op(&writer.conn, single, &mut head)?,
        many => {
            let tx = writer.conn.transaction()?;
            for op in many {
                write_op(&tx, op, &mut head)?;
            }
            tx.commit()?;
        }
    }
    writer.head = head;
    if checkpoint {
        // Outside any transaction; a checkpoint that cannot finish now finishes next time.
        if let Err(e) = writer.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!("WAL checkpoint deferred: {e}");
        }
    }
    Ok(())
}

fn write_op(conn: &rusqlite::Connection, op: &Op, head: &mut String) -> rusqlite::Result<()> {
    match op {
        Op::Checkpoint => {}
        Op::Record(r, _) => {
            let kind = match r.kind {
                crate::RecordKind::Call => "call",
                crate::RecordKind::Rejected => "rejected",
                crate::RecordKind::Policy => "policy",
            };
            let approval = r.approval.map(|a| match a {
                crate::Approval::Approved => "approved",
                crate::Approval::Denied => "denied",
                crate::Approval::Timeout => "timeout",
            });
            let arguments = r.arguments.as_ref().map(Value::to_string);
            let id = r.id.to_string();
            let fields = [
                Some(id.as_str()),
                Some(r.time.as_str()),
                Some(kind),
                Some(r.user.as_str()),
                Some(r.device.as_str()),
                r.client.as_deref(),
                r.client_name.as_deref(),
                r.client_version.as_deref(),
                r.session.as_deref(),
                r.server.as_deref(),
                r.tool.as_deref(),
                r.method.as_deref(),
                arguments.as_deref(),
                Some(r.decision.as_str()),
                r.rule.as_deref(),
                r.reason.as_deref(),
                approval,
                r.policy_version.as_deref(),
                r.class.as_deref(),
                r.label.as_deref(),
            ];
            let hash = crate::chain::record_hash(head, &fields);
            let mut params: Vec<Option<&str>> = fields.to_vec();
            params.push(Some(head.as_str()));
            params.push(Some(hash.as_str()));
            conn.prepare_cached(INSERT_RECORD)?.execute(rusqlite::params_from_iter(params))?;
            *head = hash;
        }
        Op::Outcome(o, _) => {
            let record_hash: Option<String> = conn
                .prepare_cached("SELECT hash FROM records WHERE id = ?1")?
                .query_row([o.record_id.to_string()], |r| r.get(0))
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
            let id = o.record_id.to_string();
            let duration = crate::chain::duration_text(o.duration_ms);
            let hash = crate::chain::outcome_hash(
                record_hash.as_deref().unwrap_or(crate::chain::GENESIS),
                &[
                    Some(id.as_str()),
                    Some(o.time.as_str()),
                    Some(o.outcome.as_str()),
                    duration.as_deref(),
                    o.detail.as_deref(),
                ],
            );
            conn.prepare_cached(INSERT_OUTCOME)?.execute(rusqlite::params![
                id,
                o.time,
                o.outcome.as_str(),
                o.duration_ms,
                o.detail,
                hash,
            ])?;
        }
    }
    Ok(())
}

/// Read access to the journal, for export and queries.
#[derive(Clone)]
pub struct JournalReader {
    pool: SqlitePool,
}

/// The fields of an exported record, in order (`countersign audit export`; the hub's
/// `GET /v1/audit` answers with the same names).
pub const EXPORT_FIELDS: [&str; 25] = [
    "id",
    "time",
    "kind",
    "user",
    "device",
    "client",
    "client_name",
    "client_version",
    "session",
    "server",
    "tool",
    "arguments",
    "method",
    "decision",
    "rule",
    "reason",
    "approval",
    "policy_version",
    "outcome",
    "class",
    "label",
    "prev_hash",
    "hash",
    "duration_ms",
    "detail",
];

impl JournalReader {
    /// Every record with its outcome, oldest first, as JSON objects with the export field names.
    pub async fn records(&self) -> Result<Vec<Value>, JournalError> {
        let rows = sqlx::query(
            "SELECT r.*, o.outcome, o.duration_ms, o.detail FROM records r \
             LEFT JOIN outcomes o ON o.record_id = r.id ORDER BY r.seq",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(row_to_json).collect())
    }

    /// The newest records first, at most `limit`, each filter a case-insensitive substring
    /// of its column (`client`, `server`, `tool`, `decision`); filters on other columns
    /// are refused. The query does the filtering, so a window showing recent activity does
    /// not read the whole journal.
    pub async fn recent(&self, limit: u32, filters: &[(&str, &str)]) -> Result<Vec<Value>, JournalError> {
        let mut sql = String::from(
            "SELECT r.*, o.outcome, o.duration_ms, o.detail FROM records r LEFT JOIN outcomes o ON o.record_id = r.id WHERE 1=1",
        );
        for (column, _) in filters {
            if !matches!(*column, "client" | "server" | "tool" | "decision") {
                return Err(JournalError::Filter(column.to_string()));
            }
            sql.push_str(&format!(" AND lower(coalesce(r.{column}, '')) LIKE ?"));
        }
        sql.push_str(" ORDER BY r.seq DESC LIMIT ?");
        let mut query = sqlx::query(&sql);
        for (_, value) in filters {
            // `_` matches any one character: close enough for a filter a person types.
            query = query.bind(format!("%{}%", value.to_lowercase().replace('%', "")));
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(row_to_json).collect())
    }

    /// Checks the whole chain, oldest record first: each record's hash against its
    /// columns and the previous record's hash, each outcome's against its columns and its
    /// record's hash. The first break is named by its sequence number and id.
    pub async fn verify(&self) -> Result<ChainReport, JournalError> {
        use futures::TryStreamExt;
        let sql = format!("SELECT seq, {RECORD_COLUMNS}, prev_hash, hash FROM records ORDER BY seq");
        let mut rows = sqlx::query(&sql).fetch(&self.pool);
        let mut report = ChainReport { records: 0, outcomes: 0, unchained: 0, head: None };
        // Records pruned from the front are summed up by the anchor: the hash of the last
        // one removed, which the first remaining record must follow.
        let anchored: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'chain_anchor'")
                .fetch_optional(&self.pool)
                .await?;
        let mut prev: Option<String> = match anchored {
            Some(_) => sqlx::query_as::<_, (String,)>("SELECT hash FROM chain_anchor WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .map(|(h,)| h),
            None => None,
        };
        while let Some(row) = rows.try_next().await? {
            let seq: i64 = row.try_get("seq")?;
            let id: String = row.try_get("id")?;
            let stored: Option<String> = row.try_get("hash")?;
            let stored_prev: Option<String> = row.try_get("prev_hash")?;
            let broken = |why: &str| JournalError::Broken { seq, id: id.clone(), why: why.to_string() };
            let Some(stored) = stored else {
                if prev.is_some() {
                    return Err(broken("a record without a hash follows chained records"));
                }
                report.unchained += 1;
                continue;
            };
            let expected_prev = prev.clone().unwrap_or_else(|| crate::chain::GENESIS.to_string());
            if stored_prev.as_deref() != Some(expected_prev.as_str()) {
                return Err(broken("its previous hash is not the hash of the record before it (a record was removed, inserted or reordered)"));
            }
            let mut fields: Vec<Option<String>> = Vec::with_capacity(20);
            for column in RECORD_COLUMNS.split(',').map(str::trim) {
                fields.push(row.try_get(column)?);
            }
            let refs: Vec<Option<&str>> = fields.iter().map(|f| f.as_deref()).collect();
            if crate::chain::record_hash(&expected_prev, &refs) != stored {
                return Err(broken("its contents do not match its hash (it was changed)"));
            }
            report.records += 1;
            prev = Some(stored);
        }
        drop(rows);
        let mut outcomes = sqlx::query(
            "SELECT r.seq, o.record_id, o.time, o.outcome, o.duration_ms, o.detail, o.hash, r.hash AS record_hash \
             FROM outcomes o LEFT JOIN records r ON r.id = o.record_id ORDER BY r.seq",
        )
        .fetch(&self.pool);
        while let Some(row) = outcomes.try_next().await? {
            let Some(stored) = row.try_get::<Option<String>, _>("hash")? else { continue };
            let seq: Option<i64> = row.try_get("seq")?;
            let id: String = row.try_get("record_id")?;
            let broken =
                |why: &str| JournalError::Broken { seq: seq.unwrap_or(-1), id: id.clone(), why: why.to_string() };
            let record_hash: Option<String> = row.try_get("record_hash")?;
            if seq.is_none() {
                return Err(broken("an outcome whose record is missing"));
            }
            // A record from before chaining gets outcomes bound to the genesis hash.
            let record_hash = record_hash.unwrap_or_else(|| crate::chain::GENESIS.to_string());
            let duration = crate::chain::duration_text(row.try_get("duration_ms")?);
            let time: String = row.try_get("time")?;
            let outcome: String = row.try_get("outcome")?;
            let detail: Option<String> = row.try_get("detail")?;
            let expected = crate::chain::outcome_hash(
                &record_hash,
                &[
                    Some(id.as_str()),
                    Some(time.as_str()),
                    Some(outcome.as_str()),
                    duration.as_deref(),
                    detail.as_deref(),
                ],
            );
            if expected != stored {
                return Err(broken("its outcome does not match the outcome's hash (it was changed)"));
            }
            report.outcomes += 1;
        }
        report.head = prev;
        self.check_tail().await?;
        Ok(report)
    }

    /// A cut-off tail leaves no break in the chain, but the outbox remembers how far the
    /// hub acknowledged: a journal that ends before that lost its tail.
    async fn check_tail(&self) -> Result<(), JournalError> {
        let synced: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sync_state'")
                .fetch_optional(&self.pool)
                .await?;
        if synced.is_none() {
            return Ok(());
        }
        let sent: Option<(String,)> =
            sqlx::query_as("SELECT value FROM sync_state WHERE key = 'sent_seq'").fetch_optional(&self.pool).await?;
        let sent: i64 = sent.and_then(|(v,)| v.parse().ok()).unwrap_or(0);
        let (last_seq, last_id): (Option<i64>, Option<String>) =
            sqlx::query_as("SELECT seq, id FROM records ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or((None, None));
        let anchored: Option<(i64,)> = sqlx::query_as("SELECT seq FROM chain_anchor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .unwrap_or(None);
        let end = last_seq.or(anchored.map(|(s,)| s)).unwrap_or(0);
        if sent > end {
            return Err(JournalError::Broken {
                seq: end,
                id: last_id.unwrap_or_else(|| "(none)".into()),
                why: format!(
                    "the journal ends at record {end}, but the hub acknowledged records up to {sent}: its tail was cut off"
                ),
            });
        }
        Ok(())
    }

    /// Writes every record as one JSON object a line.
    pub async fn export_jsonl(&self, out: &mut impl Write) -> Result<usize, JournalError> {
        let records = self.records().await?;
        for record in &records {
            serde_json::to_writer(&mut *out, record).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        Ok(records.len())
    }
}

fn row_to_json(row: &SqliteRow) -> Value {
    let mut map = Map::new();
    for field in EXPORT_FIELDS {
        let value = match field {
            // Stored as JSON text; exported as JSON.
            "arguments" => row
                .try_get::<Option<String>, _>("arguments")
                .unwrap_or(None)
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(Value::Null),
            "duration_ms" => {
                row.try_get::<Option<f64>, _>("duration_ms").unwrap_or(None).map_or(Value::Null, Value::from)
            }
            column => row.try_get::<Option<String>, _>(column).unwrap_or(None).map_or(Value::Null, Value::String),
        };
        map.insert(field.to_string(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, RecordKind};

    #[tokio::test]
    async fn recent_records_come_newest_first_filtered_in_the_query() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db"), JournalOptions::default()).await.unwrap();
        for (i, tool) in ["read_file", "write_file", "write_file", "delete"].iter().enumerate() {
            let mut rec = Record::new(RecordKind::Call, "ana", "dev1", if i == 3 { "deny" } else { "allow" });
            rec.tool = Some(tool.to_string());
            rec.client = Some("Cursor".into());
            j.commit(rec).await.unwrap();
        }
        let r = j.reader();
        let newest = r.recent(2, &[]).await.unwrap();
        assert_eq!(newest.iter().map(|v| v["tool"].as_str().unwrap()).collect::<Vec<_>>(), ["delete", "write_file"]);
        let writes = r.recent(10, &[("tool", "WRITE"), ("client", "cursor")]).await.unwrap();
        assert_eq!(writes.len(), 2);
        assert_eq!(r.recent(10, &[("decision", "deny")]).await.unwrap().len(), 1);
        assert!(matches!(r.recent(10, &[("arguments", "x")]).await, Err(JournalError::Filter(_))));
    }

    #[tokio::test]
    async fn committed_records_export_with_their_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("audit.db"), JournalOptions::default()).await.unwrap();
        let mut rec = Record::new(RecordKind::Call, "ana", "dev1", "allow");
        rec.server = Some("fs".into());
        rec.tool = Some("read_file".into());
        rec.arguments = Some(serde_json::json!({"path": "/tmp/x"}));
        let id = rec.id;
        journal.commit(rec).await.unwrap();
        journal
            .commit_outcome(OutcomeRecord {
                record_id: id,
                time: crate::now_rfc3339(),
                outcome: Outcome::Ok,
                duration_ms: Some(1.5),
                detail: None,
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(journal.reader().export_jsonl(&mut out).await.unwrap(), 1);
        let line: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["id"], id.to_string());
        assert_eq!(line["outcome"], "ok");
        assert_eq!(line["arguments"]["path"], "/tmp/x");
        assert_eq!(line["duration_ms"], 1.5);
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert_eq!(keys, EXPORT_FIELDS.iter().collect::<Vec<_>>(), "the export's fields, in order");
        for field in [
            "id",
            "time",
            "user",
            "device",
            "client",
            "session",
            "server",
            "tool",
            "arguments",
            "decision",
            "rule",
            "policy_version",
            "outcome",
            "duration_ms",
        ] {
            assert!(keys.iter().any(|k| *k == field), "export lacks {field}");
        }
    }

    #[tokio::test]
    async fn queued_outcomes_ride_along_with_the_next_commit_or_flush_on_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("audit.db"), JournalOptions::default()).await.unwrap();
        let outcome_of = |id| OutcomeRecord {
            record_id: id,
            time: crate::now_rfc3339(),
            outcome: Outcome::Ok,
            duration_ms: Some(1.0),
            detail: None,
        };
        let first = Record::new(RecordKind::Call, "ana", "dev1", "allow");
        let first_id = first.id;
        journal.commit(first).await.unwrap();
        journal.queue_outcome(outcome_of(first_id)).unwrap();
        // The next decision's commit carries the waiting outcome: it is there at once.
        let second = Record::new(RecordKind::Call, "ana", "dev1", "allow");
        let second_id = second.id;
        journal.commit(second).await.unwrap();
        let records = journal.reader().records().await.unwrap();
        assert_eq!(records[0]["outcome"], "ok", "{records:?}");
        assert_eq!(records[1]["outcome"], Value::Null);
        // With no decision to ride along with, the outcome is committed on its own.
        journal.queue_outcome(outcome_of(second_id)).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let records = journal.reader().records().await.unwrap();
            if records[1]["outcome"] == "ok" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the outcome was never committed");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn concurrent_commits_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("audit.db"), JournalOptions::default()).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let j = journal.clone();
            tasks.push(tokio::spawn(async move {
                let mut rec = Record::new(RecordKind::Call, "ana", "dev1", "allow");
                rec.tool = Some(format!("t{i}"));
                j.commit(rec).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(journal.reader().records().await.unwrap().len(), 200);
    }

    fn tamper(path: &Path, sql: &str) {
        let conn = rusqlite::Connection::open(path).unwrap();
        assert_eq!(conn.execute(sql, []).unwrap(), 1, "{sql}");
    }

    /// Case 24: any change to a committed record or outcome, or a record removed, is found
    /// and named; a reopened journal continues the chain.
    #[tokio::test]
    async fn sec_24_the_chain_finds_changed_and_removed_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let mut ids = Vec::new();
        {
            let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
            for i in 0..6 {
                let mut rec = Record::new(RecordKind::Call, "ana", "dev1", "allow");
                rec.tool = Some(format!("t{i}"));
                rec.arguments = Some(serde_json::json!({"n": i}));
                ids.push(rec.id);
                if i % 2 == 0 {
                    journal.commit(rec).await.unwrap()
                } else {
                    journal.commit_grouped(rec).await.unwrap()
                }
            }
            let outcome = OutcomeRecord {
                record_id: ids[1],
                time: crate::now_rfc3339(),
                outcome: Outcome::Error,
                duration_ms: Some(2.25),
                detail: Some("upstream failed".into()),
            };
            journal.commit_outcome(outcome).await.unwrap();
        }
        // Reopened: the chain goes on from the stored head.
        let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
        journal.commit(Record::new(RecordKind::Policy, "ana", "dev1", "allow")).await.unwrap();
        let report = journal.reader().verify().await.unwrap();
        assert_eq!((report.records, report.outcomes, report.unchained), (7, 1, 0));
        drop(journal);

        let copy = |name: &str| {
            let p = dir.path().join(name);
            std::fs::copy(&path, &p).unwrap();
            p
        };
        let verify = |p: PathBuf| async move { Journal::open_read_only(&p).await.unwrap().verify().await };

        let changed = copy("changed.db");
        tamper(&changed, "UPDATE records SET decision = 'deny' WHERE seq = 3");
        match verify(changed).await {
            Err(JournalError::Broken { seq: 3, id, why }) => {
                assert_eq!(id, ids[2].to_string());
                assert!(why.contains("changed"), "{why}");
            }
            other => panic!("{other:?}"),
        }

        let removed = copy("removed.db");
        tamper(&removed, "DELETE FROM records WHERE seq = 4");
        match verify(removed).await {
            Err(JournalError::Broken { seq: 5, why, .. }) => assert!(why.contains("removed"), "{why}"),
            other => panic!("{other:?}"),
        }

        let outcome = copy("outcome.db");
        tamper(&outcome, "UPDATE outcomes SET outcome = 'ok'");
        match verify(outcome).await {
            Err(JournalError::Broken { seq: 2, why, .. }) => assert!(why.contains("outcome"), "{why}"),
            other => panic!("{other:?}"),
        }

        let arguments = copy("arguments.db");
        tamper(&arguments, "UPDATE records SET arguments = '{\"n\":99}' WHERE seq = 1");
        assert!(matches!(verify(arguments).await, Err(JournalError::Broken { seq: 1, .. })));
    }

    #[tokio::test]
    async fn a_failed_commit_is_reported_not_swallowed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("audit.db"), JournalOptions::default()).await.unwrap();
        let rec = Record::new(RecordKind::Call, "ana", "dev1", "allow");
        journal.commit(rec.clone()).await.unwrap();
        // The same id twice violates the UNIQUE constraint: the caller must hear of it.
        let err = journal.commit(rec).await.unwrap_err();
        assert!(matches!(err, JournalError::Write(_)), "{err}");
        // The failed record never moved the chain's head: the next one links to the first.
        journal.commit(Record::new(RecordKind::Call, "ana", "dev1", "allow")).await.unwrap();
        assert_eq!(journal.reader().verify().await.unwrap().records, 2);
    }
}
