//! Verifying the journal's hash chain (see `chain`): every record against its columns and
//! the record before it, every outcome against its record, the first remaining record
//! against the anchor left by pruning, the journal's end against what the hub
//! acknowledged, and the hub's signed checkpoints against the records at their places.
//! Nothing may be missing silently: a hashless record is accepted only among the few
//! from before the chain, a hashless outcome only for such a record, and a record
//! before the gateway's last start must have its outcome. Reads only.

use crate::chain::{ChainFields, RECORD_COLUMNS};
use crate::journal::{ChainReport, JournalError, JournalReader};
use sqlx::Row;

/// The error for a pruning anchor past the newest checkpoint the hub signed.
fn pruned_past(checkpoint: i64, anchor: i64) -> JournalError {
    JournalError::Broken {
        seq: anchor,
        id: "(pruned)".into(),
        why: format!(
            "the journal says records up to {anchor} were pruned, past the hub's newest checkpoint (record \
             {checkpoint}): only acknowledged records are pruned, so acknowledged history was removed or renumbered"
        ),
    }
}

impl JournalReader {
    /// Checks the whole chain, oldest record first: each record's hash against its
    /// columns and the previous record's hash, each outcome's against its columns and its
    /// record's hash. The first break is named by its sequence number and id.
    pub async fn verify(&self) -> Result<ChainReport, JournalError> {
        self.verify_with(None).await
    }

    /// [`JournalReader::verify`], and each checkpoint's signature checked against
    /// `hub_key` (the hub's minisign public key, base64) when one is given.
    pub async fn verify_with(&self, hub_key: Option<&str>) -> Result<ChainReport, JournalError> {
        let mut report = self.verify_chain().await?;
        self.check_outcomes_present(&mut report).await?;
        self.check_checkpoints(&mut report, hub_key).await?;
        self.check_tail().await?;
        Ok(report)
    }

    async fn table_exists(&self, name: &str) -> Result<bool, JournalError> {
        let found: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    async fn verify_chain(&self) -> Result<ChainReport, JournalError> {
        use futures::TryStreamExt;
        // Only the records that predate the chain may lack a hash; how many there were was
        // fixed when the journal was migrated. No such note (an old journal never opened
        // by this version, or the note removed) means none may.
        let legacy: (i64, Option<i64>) = if self.table_exists("chain_legacy").await? {
            sqlx::query_as("SELECT records, last_seq FROM chain_legacy WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or((0, None))
        } else {
            (0, None)
        };
        let sql = format!("SELECT seq, {}, prev_hash, hash FROM records ORDER BY seq", RECORD_COLUMNS.join(", "));
        let mut rows = sqlx::query(&sql).fetch(&self.pool);
        let mut report = ChainReport {
            records: 0,
            outcomes: 0,
            unchained: 0,
            open: 0,
            checkpoints: 0,
            signatures_checked: false,
            head: None,
        };
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
                if report.unchained as i64 >= legacy.0 || legacy.1.is_none_or(|last| seq > last) {
                    return Err(broken(
                        "a record without a hash that is not one of those from before the chain (it was inserted)",
                    ));
                }
                report.unchained += 1;
                continue;
            };
            let expected_prev = prev.clone().unwrap_or_else(|| crate::chain::GENESIS.to_string());
            if stored_prev.as_deref() != Some(expected_prev.as_str()) {
                return Err(broken("its previous hash is not the hash of the record before it (a record was removed, inserted or reordered)"));
            }
            let mut values: [Option<String>; RECORD_COLUMNS.len()] = Default::default();
            for (value, column) in values.iter_mut().zip(RECORD_COLUMNS) {
                *value = row.try_get(column)?;
            }
            if ChainFields::of_columns(values.each_ref().map(|v| v.as_deref())).hash(&expected_prev) != stored {
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
            let seq: Option<i64> = row.try_get("seq")?;
            let id: String = row.try_get("record_id")?;
            let broken =
                |why: &str| JournalError::Broken { seq: seq.unwrap_or(-1), id: id.clone(), why: why.to_string() };
            let record_hash: Option<String> = row.try_get("record_hash")?;
            if seq.is_none() {
                return Err(broken("an outcome whose record is missing"));
            }
            let Some(stored) = row.try_get::<Option<String>, _>("hash")? else {
                // Only an outcome of a record from before the chain may lack a hash.
                if record_hash.is_some() {
                    return Err(broken("its outcome has no hash (it was changed or inserted)"));
                }
                continue;
            };
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
        Ok(report)
    }

    /// Every chained record before the gateway's last start has an outcome: that start
    /// closed whatever a stop had cut short (as `unknown`), so one missing now was removed.
    /// Records after it may still be open (in flight); they are counted.
    async fn check_outcomes_present(&self, report: &mut ChainReport) -> Result<(), JournalError> {
        let (start,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(seq) FROM records WHERE kind = 'policy' AND rule = ? AND hash IS NOT NULL")
                .bind(crate::journal::START_RULE)
                .fetch_one(&self.pool)
                .await?;
        let start = start.unwrap_or(i64::MIN);
        let missing: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, id FROM records r WHERE r.hash IS NOT NULL AND r.seq < ? \
             AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.record_id = r.id) ORDER BY r.seq LIMIT 1",
        )
        .bind(start)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((seq, id)) = missing {
            return Err(JournalError::Broken {
                seq,
                id,
                why: "it has no outcome, though the gateway started again after it and closed every open call: \
                      its outcome was removed"
                    .into(),
            });
        }
        let (open,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM records r WHERE r.hash IS NOT NULL AND r.seq > ? \
             AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.record_id = r.id)",
        )
        .bind(start)
        .fetch_one(&self.pool)
        .await?;
        report.open = open as u64;
        Ok(())
    }

    /// Each checkpoint the hub signed names a record's place and hash: the record there
    /// (or the pruning anchor, when that is the place) must still have that hash, and with
    /// the hub's key the signature must hold. A checkpoint past the journal's end means
    /// its tail was cut.
    async fn check_checkpoints(&self, report: &mut ChainReport, hub_key: Option<&str>) -> Result<(), JournalError> {
        report.signatures_checked = hub_key.is_some();
        if !self.table_exists("checkpoints").await? {
            return Ok(());
        }
        let rows: Vec<(String, i64, String, String, String)> =
            sqlx::query_as("SELECT device, seq, hash, time, signature FROM checkpoints ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        let anchor = self.anchor().await?;
        let newest = rows.last().map(|r| r.1);
        for (device, seq, hash, time, signature) in rows {
            let checkpoint = crate::checkpoint::Checkpoint { device, seq, hash, time, signature };
            self.check_checkpoint(&checkpoint, anchor.as_ref(), hub_key).await?;
            report.checkpoints += 1;
        }
        if let (Some(newest), Some((anchor_seq, _))) = (newest, &anchor) {
            if newest < *anchor_seq {
                return Err(pruned_past(newest, *anchor_seq));
            }
        }
        Ok(())
    }

    /// Where pruning left the chain's front: the last removed record's place and hash.
    async fn anchor(&self) -> Result<Option<(i64, String)>, JournalError> {
        if !self.table_exists("chain_anchor").await? {
            return Ok(None);
        }
        Ok(sqlx::query_as("SELECT seq, hash FROM chain_anchor WHERE id = 1").fetch_optional(&self.pool).await?)
    }

    /// Checks one checkpoint (kept here, or fetched from the hub) against the journal:
    /// the record at its place (or the pruning anchor) must have its hash, and with the
    /// hub's key its signature must hold.
    pub async fn check_against(
        &self,
        checkpoint: &crate::checkpoint::Checkpoint,
        hub_key: Option<&str>,
    ) -> Result<(), JournalError> {
        let anchor = self.anchor().await?;
        // The hub's newest checkpoint is at the newest record it acknowledged, and only
        // acknowledged records are pruned: an anchor past it was made up.
        if let Some((anchor_seq, _)) = &anchor {
            if checkpoint.seq < *anchor_seq {
                return Err(pruned_past(checkpoint.seq, *anchor_seq));
            }
        }
        self.check_checkpoint(checkpoint, anchor.as_ref(), hub_key).await
    }

    async fn check_checkpoint(
        &self,
        checkpoint: &crate::checkpoint::Checkpoint,
        anchor: Option<&(i64, String)>,
        hub_key: Option<&str>,
    ) -> Result<(), JournalError> {
        let seq = checkpoint.seq;
        let at: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT id, hash FROM records WHERE seq = ?").bind(seq).fetch_optional(&self.pool).await?;
        let broken = |id: &str, why: String| JournalError::Broken { seq, id: id.to_string(), why };
        if let Some(key) = hub_key {
            checkpoint.verify(key).map_err(|e| broken("(checkpoint)", e.to_string()))?;
        }
        match (at, anchor) {
            (Some((id, stored)), _) => {
                if stored.as_deref() != Some(checkpoint.hash.as_str()) {
                    return Err(broken(
                        &id,
                        "it differs from the record the hub acknowledged and signed a checkpoint for \
                         (acknowledged history was rewritten)"
                            .into(),
                    ));
                }
            }
            (None, Some((anchor_seq, anchor_hash))) if seq <= *anchor_seq => {
                if seq == *anchor_seq && *anchor_hash != checkpoint.hash {
                    return Err(broken(
                        "(pruned)",
                        "the pruning anchor differs from the hub's checkpoint (acknowledged history was rewritten)"
                            .into(),
                    ));
                }
            }
            (None, _) => {
                return Err(broken(
                    "(missing)",
                    "the hub signed a checkpoint for this record, but the journal has no record there \
                     (acknowledged history was removed)"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// A cut-off tail leaves no break in the chain, but the outbox remembers how far the
    /// hub acknowledged: a journal that ends before that lost its tail.
    async fn check_tail(&self) -> Result<(), JournalError> {
        let sent: Option<(String,)> = if self.table_exists("sync_state").await? {
            sqlx::query_as("SELECT value FROM sync_state WHERE key = 'sent_seq'").fetch_optional(&self.pool).await?
        } else {
            None
        };
        let sent: i64 = sent.and_then(|(v,)| v.parse().ok()).unwrap_or(0);
        let (last_seq, last_id): (Option<i64>, Option<String>) =
            sqlx::query_as("SELECT seq, id FROM records ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or((None, None));
        let anchored: Option<(i64,)> = self.anchor().await?.map(|(seq, _)| (seq,));
        if let Some((anchor_seq,)) = anchored {
            if anchor_seq > sent {
                return Err(JournalError::Broken {
                    seq: anchor_seq,
                    id: "(pruned)".into(),
                    why: format!(
                        "the journal says records up to {anchor_seq} were pruned, but only acknowledged records are \
                         pruned and the hub acknowledged records up to {sent}: the anchor was made up"
                    ),
                });
            }
        }
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
    use crate::chain::{ChainFields, RECORD_COLUMNS};
    use crate::journal::{Journal, JournalError, JournalOptions};
    use crate::{Outcome, OutcomeRecord, Record, RecordKind};
    use std::path::{Path, PathBuf};

    /// A copy of the journal at `path`, named `name`, with everything in its main file
    /// first: the writer's connection may still be closing (on a busy machine) with
    /// records in the WAL.
    fn copy_of(path: &Path, name: &str) -> PathBuf {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        drop(conn);
        let copy = path.with_file_name(name);
        std::fs::copy(path, &copy).unwrap();
        copy
    }

    async fn verify(path: PathBuf) -> Result<crate::ChainReport, JournalError> {
        Journal::open_read_only(&path).await.unwrap().verify().await
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
                let mut rec = Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow);
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
        journal.commit(Record::new(RecordKind::Policy, "ana", "dev1", crate::Decision::Allow)).await.unwrap();
        let report = journal.reader().verify().await.unwrap();
        assert_eq!((report.records, report.outcomes, report.unchained), (7, 1, 0));
        drop(journal);
        let copy = |name: &str| copy_of(&path, name);

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

        // Reordered: two rows exchange places, every column of each kept.
        let reordered = copy("reordered.db");
        for sql in [
            "UPDATE records SET seq = -1 WHERE seq = 3",
            "UPDATE records SET seq = 3 WHERE seq = 4",
            "UPDATE records SET seq = 4 WHERE seq = -1",
        ] {
            tamper(&reordered, sql);
        }
        match verify(reordered).await {
            Err(JournalError::Broken { seq: 3, id, why }) => {
                assert_eq!(id, ids[3].to_string(), "the record now in place 3 is named");
                assert!(why.contains("reordered"), "{why}");
            }
            other => panic!("{other:?}"),
        }

        let arguments = copy("arguments.db");
        tamper(&arguments, "UPDATE records SET arguments = '{\"n\":99}' WHERE seq = 1");
        assert!(matches!(verify(arguments).await, Err(JournalError::Broken { seq: 1, .. })));
    }

    /// Issue 15, item 1: a hashless record slipped in before the first one, an outcome
    /// whose hash was blanked, and a call whose outcome was deleted are all refused; a
    /// call a crash cut short is closed as `unknown` at the next start.
    #[tokio::test]
    async fn holes_in_the_chain_are_refused_and_cut_calls_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let mut ids = Vec::new();
        {
            let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
            for i in 0..4 {
                let mut rec = Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Allow);
                rec.tool = Some(format!("t{i}"));
                ids.push(rec.id);
                journal.commit(rec).await.unwrap();
                if i < 3 {
                    let outcome = OutcomeRecord {
                        record_id: ids[i],
                        time: crate::now_rfc3339(),
                        outcome: Outcome::Ok,
                        duration_ms: Some(1.0),
                        detail: None,
                    };
                    journal.commit_outcome(outcome).await.unwrap();
                }
            }
            // The last call is in flight: open, and that is fine while the gateway runs.
            let report = journal.reader().verify().await.unwrap();
            assert_eq!((report.records, report.open), (4, 1));
        }
        // The gateway crashed; the next start closes the cut call and marks itself.
        let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
        let closed =
            journal.mark_start(Record::new(RecordKind::Policy, "ana", "dev1", crate::Decision::Allow)).await.unwrap();
        assert_eq!(closed, 1);
        let records = journal.reader().records().await.unwrap();
        assert_eq!(records[3]["outcome"], "unknown");
        assert!(records[3]["detail"].as_str().unwrap().contains("gateway stopped"));
        assert_eq!(records[4]["rule"], crate::START_RULE);
        let report = journal.reader().verify().await.unwrap();
        assert_eq!((report.records, report.outcomes, report.open), (5, 5, 0));
        // A second gateway cannot take the same journal while this one holds it.
        assert!(matches!(Journal::open(&path, JournalOptions::default()).await, Err(JournalError::InUse { .. })));
        drop(journal);
        let copy = |name: &str| copy_of(&path, name);

        let inserted = copy("inserted.db");
        tamper(
            &inserted,
            "INSERT INTO records (seq, id, time, kind, user, device, decision) \
             VALUES (0, 'forged', '2026-01-01T00:00:00Z', 'call', 'ana', 'dev1', 'allow')",
        );
        match verify(inserted).await {
            Err(JournalError::Broken { seq: 0, why, .. }) => assert!(why.contains("inserted"), "{why}"),
            other => panic!("{other:?}"),
        }

        let blanked = copy("blanked.db");
        tamper(
            &blanked,
            &format!("UPDATE outcomes SET hash = NULL, outcome = 'denied' WHERE record_id = '{}'", ids[1]),
        );
        match verify(blanked).await {
            Err(JournalError::Broken { seq: 2, why, .. }) => assert!(why.contains("no hash"), "{why}"),
            other => panic!("{other:?}"),
        }

        let deleted = copy("deleted.db");
        tamper(&deleted, &format!("DELETE FROM outcomes WHERE record_id = '{}'", ids[2]));
        match verify(deleted).await {
            Err(JournalError::Broken { seq: 3, why, .. }) => assert!(why.contains("outcome was removed"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// Issue 15, item 2: history the hub acknowledged and signed a checkpoint for cannot
    /// be rewritten on the laptop, even with the whole chain recomputed after it.
    #[tokio::test]
    async fn a_rewritten_acknowledged_record_breaks_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
        for _ in 0..3 {
            journal.commit(Record::new(RecordKind::Call, "ana", "dev1", crate::Decision::Deny)).await.unwrap();
        }
        let mut outbox = crate::outbox::Outbox::open(&path).unwrap();
        let batch = outbox.next_batch(10).unwrap();
        let head = batch.records.last().unwrap().hash.clone().unwrap();
        let (key, checkpoint, pair) = crate::checkpoint::tests::signed(3, &head);
        let ack = crate::wire::Ack {
            records: batch.records.iter().map(|r| r.id.clone()).collect(),
            checkpoint: Some(checkpoint),
            ..Default::default()
        };
        outbox.acknowledge(&batch, &ack).unwrap();
        let report = journal.reader().verify_with(Some(&key)).await.unwrap();
        assert_eq!((report.checkpoints, report.signatures_checked), (1, true));
        drop(journal);

        // Rewrite record 2 and recompute the chain from there, as anyone with the disk can.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE records SET decision = 'allow' WHERE seq = 2", []).unwrap();
        let mut prev: String = conn.query_row("SELECT hash FROM records WHERE seq = 1", [], |r| r.get(0)).unwrap();
        for seq in 2..=3 {
            let fields: Vec<Option<String>> = conn
                .query_row(&format!("SELECT {} FROM records WHERE seq = ?1", RECORD_COLUMNS.join(", ")), [seq], |r| {
                    (0..RECORD_COLUMNS.len()).map(|i| r.get(i)).collect()
                })
                .unwrap();
            let refs: [Option<&str>; RECORD_COLUMNS.len()] = std::array::from_fn(|i| fields[i].as_deref());
            let hash = ChainFields::of_columns(refs).hash(&prev);
            conn.execute(
                "UPDATE records SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
                rusqlite::params![prev, hash, seq],
            )
            .unwrap();
            prev = hash;
        }
        let reader = Journal::open_read_only(&path).await.unwrap();
        match reader.verify().await {
            Err(JournalError::Broken { seq: 3, why, .. }) => assert!(why.contains("rewritten"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Moving the checkpoint along with the forgery needs the hub's key.
        conn.execute("UPDATE checkpoints SET hash = ?1 WHERE seq = 3", [&prev]).unwrap();
        assert!(reader.verify().await.is_ok(), "without the key, only the hashes can be compared");
        match reader.verify_with(Some(&key)).await {
            Err(JournalError::Broken { seq: 3, why, .. }) => assert!(why.contains("not signed by the hub"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Renumbered past a made-up pruning anchor, the checkpoint's place looks pruned:
        // an anchor past the newest checkpoint (or what the hub acknowledged) is refused.
        conn.execute("UPDATE checkpoints SET hash = ?1 WHERE seq = 3", [&head]).unwrap();
        conn.execute("UPDATE records SET seq = seq + 100", []).unwrap();
        conn.execute("INSERT INTO chain_anchor (id, seq, hash) VALUES (1, 100, ?1)", [crate::chain::GENESIS]).unwrap();
        match reader.verify().await {
            Err(JournalError::Broken { seq: 100, why, .. }) => assert!(why.contains("pruned"), "{why}"),
            other => panic!("{other:?}"),
        }
        conn.execute("UPDATE records SET seq = seq - 100", []).unwrap();
        conn.execute("DELETE FROM chain_anchor", []).unwrap();
        conn.execute("UPDATE checkpoints SET hash = ?1 WHERE seq = 3", [&prev]).unwrap();
        // A checkpoint signed for the forged head by another key fails the same way.
        let other = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let forged = crate::checkpoint::tests::sign_with(&other, 3, &prev);
        conn.execute("UPDATE checkpoints SET signature = ?1 WHERE seq = 3", [&forged.signature]).unwrap();
        assert!(reader.verify_with(Some(&key)).await.is_err());
        let _ = pair;
    }
}
