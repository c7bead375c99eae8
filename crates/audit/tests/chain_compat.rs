//! The chain across versions: a journal written before records could name a grant, and
//! one written before they carried a trace id (each fixture was written by that version,
//! through its outbox), still verifies and can be appended to, old and new records mixed;
//! and the hash the writer stores is the hash the hub recomputes from the wire format, on
//! a record with every column set.

use countersign_audit::outbox::Outbox;
use countersign_audit::wire::{Batch, WireRecord};
use countersign_audit::{
    Approval, Decision, GrantLength, Journal, JournalOptions, Outcome, OutcomeRecord, Record, RecordGrant, RecordKind,
    ToolClass,
};

fn fixture() -> Batch {
    serde_json::from_str(include_str!("fixtures/journal-before-grant.json")).unwrap()
}

/// Written by the version before `trace_id`: an issued grant, the grant used, and a
/// stateless call whose trace was kept in `session` (`stateless trace=…`).
fn fixture_before_trace() -> Batch {
    serde_json::from_str(include_str!("fixtures/journal-before-trace.json")).unwrap()
}

/// Writes the fixture's rows into `path`'s tables exactly as the older writer stored them
/// (the columns of its time; the grant's are NULL in a journal from before them).
fn insert_old_rows(path: &std::path::Path, batch: &Batch) {
    let conn = rusqlite::Connection::open(path).unwrap();
    for r in &batch.records {
        assert!(r.trace_id.is_none(), "the fixtures predate the trace column");
        conn.execute(
            "INSERT INTO records (seq, id, time, kind, user, device, client, client_name, client_version, session, \
             server, tool, method, arguments, decision, rule, reason, approval, policy_version, class, label, \
             prev_hash, hash, grant_id, grant_length) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
             ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
            rusqlite::params![
                r.seq,
                r.id,
                r.time,
                r.kind,
                r.user,
                r.device,
                r.client,
                r.client_name,
                r.client_version,
                r.session,
                r.server,
                r.tool,
                r.method,
                r.arguments,
                r.decision,
                r.rule,
                r.reason,
                r.approval,
                r.policy_version,
                r.class,
                r.label,
                r.prev_hash,
                r.hash,
                r.grant_id,
                r.grant_length
            ],
        )
        .unwrap();
    }
    for o in &batch.outcomes {
        conn.execute(
            "INSERT INTO outcomes (record_id, time, outcome, duration_ms, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![o.record_id, o.time, o.outcome, o.duration_ms, o.detail, o.hash],
        )
        .unwrap();
    }
}

#[test]
fn records_sent_before_the_grant_columns_still_hash_as_sent() {
    let batch = fixture();
    assert_eq!(batch.records.len(), 3);
    for r in &batch.records {
        assert!(r.hash_holds(), "record {} no longer hashes as it did", r.seq);
    }
    // And a changed one does not (the check can fail).
    let mut changed = batch.records[1].clone();
    changed.decision = "ask".into();
    assert!(!changed.hash_holds());
}

#[tokio::test]
async fn a_journal_written_before_grants_verifies_and_is_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let batch = fixture();
    let head = batch.records.last().unwrap().hash.clone().unwrap();
    {
        // Migrated to the current schema, then filled as the old version filled it.
        let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
        drop(journal);
    }
    insert_old_rows(&path, &batch);
    let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
    let report = journal.reader().verify().await.unwrap();
    assert_eq!((report.records, report.outcomes, report.unchained), (3, 2, 0));
    assert_eq!(report.head.as_deref(), Some(head.as_str()));

    // A new record naming a grant links to the old head and the whole chain holds.
    let batch_has_no_grant = batch.records.iter().all(|r| r.grant_id.is_none() && r.grant_length.is_none());
    assert!(batch_has_no_grant, "the fixture predates the grant columns");
    let mut rec = Record::new(RecordKind::Call, "ana", "dev1", Decision::Allow);
    rec.grant = Some(RecordGrant::Issued { id: "g-0192f0a00000".into(), length: GrantLength::Hour1 });
    journal.commit(rec).await.unwrap();
    let report = journal.reader().verify().await.unwrap();
    assert_eq!(report.records, 4);
    let sent = Outbox::open(&path).unwrap().next_batch(10).unwrap();
    assert_eq!(sent.records[3].prev_hash.as_deref(), Some(head.as_str()));
    assert_eq!(sent.records[3].grant_id.as_deref(), Some("g-0192f0a00000"));
    assert_eq!(sent.records[3].grant_length.as_deref(), Some("1h"));

    // Dropping the grant from the new record breaks the chain there.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE records SET grant_id = NULL, grant_length = NULL WHERE seq = 4", []).unwrap();
    let err = journal.reader().verify().await.unwrap_err().to_string();
    assert!(err.contains("record 4") && err.contains("changed"), "{err}");
}

#[test]
fn records_sent_before_the_trace_column_still_hash_as_sent() {
    let batch = fixture_before_trace();
    assert_eq!(batch.records.len(), 3);
    assert!(batch.records[0].grant_length.is_some() && batch.records[1].grant_id.is_some());
    for r in &batch.records {
        assert!(r.hash_holds(), "record {} no longer hashes as it did", r.seq);
        // The hub reads a batch from that version as it was sent: no trace id.
        let sent = serde_json::to_string(r).unwrap();
        assert!(!sent.contains("trace_id"), "{sent}");
    }
    let mut traced = batch.records[2].clone();
    traced.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    assert!(!traced.hash_holds(), "a trace id added afterwards breaks the hash");
}

/// `audit verify` over a journal holding the records the version before `trace_id` wrote,
/// followed by new ones with and without a trace, with and without a grant.
#[tokio::test]
async fn a_journal_mixing_records_before_and_after_trace_ids_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let batch = fixture_before_trace();
    let head = batch.records.last().unwrap().hash.clone().unwrap();
    drop(Journal::open(&path, JournalOptions::default()).await.unwrap());
    insert_old_rows(&path, &batch);
    let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
    let report = journal.reader().verify().await.unwrap();
    assert_eq!((report.records, report.outcomes), (3, 3));
    assert_eq!(report.head.as_deref(), Some(head.as_str()));

    let trace = "0af7651916cd43dd8448eb211c80319c";
    let mut traced = Record::new(RecordKind::Call, "ana", "dev1", Decision::Allow);
    traced.session = Some("stateless".into());
    traced.trace_id = Some(trace.into());
    let mut both = Record::new(RecordKind::Call, "ana", "dev1", Decision::Ask);
    both.session = Some("s-8".into());
    both.grant = Some(RecordGrant::Issued { id: "g-2".into(), length: GrantLength::Session });
    both.trace_id = Some(trace.into());
    let mut neither = Record::new(RecordKind::Call, "ana", "dev1", Decision::Deny);
    neither.session = Some("s-8".into());
    let mut grant_only = Record::new(RecordKind::Call, "ana", "dev1", Decision::Allow);
    grant_only.grant = Some(RecordGrant::Used { id: "g-2".into() });
    for rec in [traced, both, neither, grant_only] {
        journal.commit(rec).await.unwrap();
    }
    let report = journal.reader().verify().await.unwrap();
    assert_eq!(report.records, 7, "old and new records verify as one chain");

    let sent = Outbox::open(&path).unwrap().next_batch(10).unwrap();
    assert_eq!(sent.records[3].prev_hash.as_deref(), Some(head.as_str()), "the first new record follows the old");
    let traces: Vec<Option<&str>> = sent.records.iter().map(|r| r.trace_id.as_deref()).collect();
    assert_eq!(traces, [None, None, None, Some(trace), Some(trace), None, None]);
    assert!(sent.records.iter().all(WireRecord::hash_holds), "the hub recomputes every hash, old and new");
    let exported = journal.reader().records().await.unwrap();
    assert_eq!(exported[3]["trace_id"], trace);
    assert_eq!(exported[3]["session"], "stateless");
    assert_eq!(exported[2]["trace_id"], serde_json::Value::Null);
    assert_eq!(exported[2]["session"], "stateless trace=4bf92f3577b34da6a3ce929d0e0e4736", "old records as written");

    // Dropping a trace id, or adding one to an old record, breaks the chain there.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE records SET trace_id = NULL WHERE seq = 5", []).unwrap();
    let err = journal.reader().verify().await.unwrap_err().to_string();
    assert!(err.contains("record 5") && err.contains("changed"), "{err}");
    conn.execute(&format!("UPDATE records SET trace_id = '{trace}' WHERE seq = 5"), []).unwrap();
    assert_eq!(journal.reader().verify().await.unwrap().records, 7);
    conn.execute(&format!("UPDATE records SET trace_id = '{trace}' WHERE seq = 2"), []).unwrap();
    let err = journal.reader().verify().await.unwrap_err().to_string();
    assert!(err.contains("record 2") && err.contains("changed"), "{err}");
}

#[tokio::test]
async fn the_writers_hash_is_the_hubs_recomputation_with_every_field_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
    let mut rec = Record::new(RecordKind::Call, "ana", "dev1", Decision::Ask);
    rec.client = Some("cursor".into());
    rec.client_name = Some("Cur\0sor".into());
    rec.client_version = Some("1.2".into());
    rec.session = Some("s-1".into());
    rec.server = Some("fs".into());
    rec.tool = Some("write_file".into());
    rec.method = Some("tools/call".into());
    rec.arguments = Some(serde_json::json!({"path": "/tmp/x"}));
    rec.rule = Some("default:write".into());
    rec.reason = Some("a write tool needs approval".into());
    rec.approval = Some(Approval::Approved);
    rec.policy_version = Some("1-abc".into());
    rec.class = Some(ToolClass::Write);
    rec.label = Some("internal".into());
    rec.grant = Some(RecordGrant::Issued { id: "g-1234".into(), length: GrantLength::Session });
    rec.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    let id = rec.id;
    journal.commit(rec).await.unwrap();
    journal
        .commit_outcome(OutcomeRecord {
            record_id: id,
            time: countersign_audit::now_rfc3339(),
            outcome: Outcome::Ok,
            duration_ms: Some(3.25),
            detail: None,
        })
        .await
        .unwrap();
    let batch = Outbox::open(&path).unwrap().next_batch(10).unwrap();
    // Through JSON, as the hub receives it.
    let sent: Batch = serde_json::from_str(&serde_json::to_string(&batch).unwrap()).unwrap();
    let r: &WireRecord = &sent.records[0];
    let every = r.text().columns();
    assert!(every.iter().all(Option::is_some), "every column is set: {every:?}");
    assert_eq!(r.chain_fields().len(), every.len(), "and every one is hashed");
    assert_eq!((r.decision.as_str(), r.class.as_deref()), ("ask", Some("write")));
    assert!(r.hash_holds(), "the hub's recomputation differs from the writer's hash");
    let stored: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT hash FROM records WHERE seq = 1", [], |row| row.get(0))
        .unwrap();
    assert_eq!(r.hash.as_deref(), Some(stored.as_str()));
    assert_eq!(journal.reader().verify().await.unwrap().records, 1);
}
