//! Verifying the journal's hash chain (see `chain`): every record against its columns and
//! the record before it, every outcome against its record, the first remaining record
//! against the anchor left by pruning, and the journal's end against what the hub
//! acknowledged. Reads only.

use crate::journal::{ChainReport, JournalError, JournalReader, RECORD_COLUMNS};
use sqlx::Row;

impl JournalReader {
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
}

#[cfg(test)]
mod tests {
    use crate::journal::{Journal, JournalError, JournalOptions};
    use crate::{Outcome, OutcomeRecord, Record, RecordKind};
    use std::path::{Path, PathBuf};

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
                    journal.commit(rec).await.unwrap();
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
        // Everything into the main file before copying it: the writer's connection may
        // still be closing (on a busy machine) with records in the WAL.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        drop(conn);

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
}
