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
pub use crate::writer::Synchronous;
use crate::writer::{open_writer, write_batch, write_loop, Op, Writer};
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
    #[error(
        "audit journal {path} is in use by another Countersign gateway (the lock on {lock} is held); stop it first"
    )]
    InUse { path: PathBuf, lock: PathBuf },
}

/// The rule of the record the gateway commits each time it starts on the journal (kind
/// `policy`): every call record before it has an outcome, so verification refuses one
/// whose outcome is missing.
pub const START_RULE: &str = "gateway-start";

/// What [`JournalReader::verify`] found in a journal whose chain holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    /// Records checked against the chain.
    pub records: u64,
    /// Outcomes checked against their records.
    pub outcomes: u64,
    /// Records from before the journal was chained (older versions), not checked.
    pub unchained: u64,
    /// Records after the gateway's last start with no outcome yet (calls in flight, or
    /// cut by a stop: the next start closes them as `unknown`).
    pub open: u64,
    /// Checkpoints the hub signed, each checked against the record at its place.
    pub checkpoints: u64,
    /// Whether the checkpoints' signatures were checked (a hub key was given).
    pub signatures_checked: bool,
    /// The newest record's hash.
    pub head: Option<String>,
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

/// How often the writer thread checkpoints the WAL. SQLite's automatic checkpoint runs
/// inside whichever commit crosses the threshold, fsync included; here no caller waits
/// for one.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Proof that one record was committed to the journal. Only [`Journal::commit`] makes
/// one (its field is private, it is neither `Clone` nor `Default`), so a function that
/// takes it cannot run before its record is durable.
#[derive(Debug)]
pub struct Committed {
    record_id: uuid::Uuid,
}

impl Committed {
    /// The id of the committed record (outcomes refer to it).
    pub fn record_id(&self) -> uuid::Uuid {
        self.record_id
    }
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
        let lock = crate::journal_lock::lock_journal(path).await.map_err(|e| match e {
            crate::journal_lock::LockError::InUse { lock } => JournalError::InUse { path: path.to_path_buf(), lock },
            crate::journal_lock::LockError::Failed(message) => {
                JournalError::Writer { path: path.to_path_buf(), message }
            }
        })?;
        let sync = match options.synchronous {
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Full => SqliteSynchronous::Full,
        };
        crate::file_mode::make_private(path).map_err(|e| JournalError::Writer {
            path: path.to_path_buf(),
            message: format!("cannot make the journal's files owner-only: {e}"),
        })?;
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
        let writer = Writer {
            conn: writer,
            head: head.unwrap_or_else(|| crate::chain::GENESIS.to_string()),
            recent: Default::default(),
            _lock: lock,
        };
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
    ///
    /// The [`Committed`] it returns is the only proof that a record is in the journal:
    /// nothing else can make one, so code that needs a committed record first (the
    /// gateway's forwarding) can ask for it by type.
    pub async fn commit(&self, record: Record) -> Result<Committed, JournalError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) && record.kind != crate::RecordKind::Policy {
            return Err(JournalError::Full);
        }
        let id = record.id;
        if self.inline {
            if let Ok(mut conn) = self.conn.try_lock() {
                let mut batch = self.take_outcomes();
                batch.push(Op::Record(Box::new(record), None));
                let result = write_batch(&mut conn, &batch).map_err(|e| JournalError::Write(e.to_string()));
                if result.is_err() {
                    // The record failed; the outcomes that rode along must not be lost with it.
                    self.requeue(batch);
                }
                return result.map(|()| Committed { record_id: id });
            }
        }
        self.commit_grouped(record).await.map(|()| Committed { record_id: id })
    }

    /// What a gateway does once it starts serving on this journal: every call a stop cut
    /// short (a record with no outcome) gets the outcome `unknown`, and `marker` (the
    /// gateway's start, committed with rule [`START_RULE`]) follows them, all in one
    /// transaction. Returns how many calls were closed. Only the journal's one writer (the
    /// lock [`Journal::open`] holds) may do this, so no running gateway's calls are closed.
    pub async fn mark_start(&self, mut marker: Record) -> Result<u64, JournalError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = conn.lock().unwrap_or_else(|p| p.into_inner());
            let open: Vec<String> = {
                let mut stmt = writer.conn.prepare(
                    "SELECT r.id FROM records r WHERE r.hash IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.record_id = r.id) ORDER BY r.seq",
                )?;
                let ids = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
                ids
            };
            let now = crate::now_rfc3339();
            let mut batch = Vec::with_capacity(open.len() + 2);
            for id in &open {
                let Ok(record_id) = uuid::Uuid::parse_str(id) else {
                    tracing::warn!(id, "a record with a malformed id has no outcome; `audit verify` will name it");
                    continue;
                };
                batch.push(Op::Outcome(
                    OutcomeRecord {
                        record_id,
                        time: now.clone(),
                        outcome: crate::Outcome::Unknown,
                        duration_ms: None,
                        detail: Some("gateway stopped before the call finished; whether it ran is not known".into()),
                    },
                    None,
                ));
            }
            let closed = batch.len() as u64;
            marker.rule = Some(START_RULE.to_string());
            if marker.reason.is_none() {
                marker.reason =
                    Some(format!("the gateway started; {closed} call(s) cut short by its last stop closed as unknown"));
            }
            let marker_id = marker.id;
            batch.push(Op::Record(Box::new(marker), None));
            batch.push(Op::Outcome(
                OutcomeRecord {
                    record_id: marker_id,
                    time: now,
                    outcome: crate::Outcome::Ok,
                    duration_ms: None,
                    detail: None,
                },
                None,
            ));
            write_batch(&mut writer, &batch).map(|()| closed)
        })
        .await
        .map_err(|e| JournalError::Write(e.to_string()))?
        .map_err(|e| JournalError::Write(e.to_string()))
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

/// Read access to the journal, for export and queries.
#[derive(Clone)]
pub struct JournalReader {
    pub(crate) pool: SqlitePool,
}

/// The fields of an exported record, in order (`countersign audit export`; the hub's
/// `GET /v1/audit` answers with the same names).
pub const EXPORT_FIELDS: [&str; 33] = [
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
    "grant_id",
    "grant_length",
    "trace_id",
    "user_verified",
    "os_user",
    "owner",
    "approver",
    "request_id",
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
            // Stored as `true` or `false`; exported as a JSON boolean.
            "user_verified" => {
                let text = row.try_get::<Option<String>, _>("user_verified").unwrap_or(None);
                crate::chain::verified_value(text.as_deref()).map_or(Value::Null, Value::Bool)
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
            let mut rec = Record::new(
                RecordKind::Call,
                "ana",
                "dev1",
                if i == 3 { crate::Decision::Deny } else { crate::Decision::Allow },
            );
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
        let mut rec = Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow);
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
        let first = Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow);
        let first_id = first.id;
        journal.commit(first).await.unwrap();
        journal.queue_outcome(outcome_of(first_id)).unwrap();
        // The next decision's commit carries the waiting outcome: it is there at once.
        let second = Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow);
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
                let mut rec = Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow);
                rec.tool = Some(format!("t{i}"));
                j.commit(rec).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(journal.reader().records().await.unwrap().len(), 200);
    }

    #[tokio::test]
    async fn a_failed_commit_is_reported_not_swallowed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("audit.db"), JournalOptions::default()).await.unwrap();
        let rec = Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow);
        journal.commit(rec.clone()).await.unwrap();
        // The same id twice violates the UNIQUE constraint: the caller must hear of it.
        let err = journal.commit(rec).await.unwrap_err();
        assert!(matches!(err, JournalError::Write(_)), "{err}");
        // The failed record never moved the chain's head: the next one links to the first.
        journal.commit(Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow)).await.unwrap();
        assert_eq!(journal.reader().verify().await.unwrap().records, 2);
    }
}
