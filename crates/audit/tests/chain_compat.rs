//! The chain across versions: a journal written before records could name a grant, one
//! written before they carried a trace id, and one written before their identity columns
//! (`user_verified`, `os_user`, `owner`) (each fixture was written by that version,
//! through its outbox), still verifies and can be appended to, old and new records mixed;
//! and the hash the writer stores is the hash the hub recomputes from the wire format, on
//! a record with every column set.

use countersign_audit::chain::RECORD_COLUMNS;
use countersign_audit::outbox::Outbox;
use countersign_audit::wire::{Batch, WireRecord};
use countersign_audit::{
    Approval, Decision, GrantLength, Journal, JournalOptions, Outcome, OutcomeRecord, Record, RecordGrant, RecordKind,
    ToolClass,
};
use rusqlite::types::Value;

fn fixture() -> Batch {
    serde_json::from_str(include_str!("fixtures/journal-before-grant.json")).unwrap()
}

/// Written by the version before `trace_id`: an issued grant, the grant used, and a
/// stateless call whose trace was kept in `session` (`stateless trace=…`).
fn fixture_before_trace() -> Batch {
    serde_json::from_str(include_str!("fixtures/journal-before-trace.json")).unwrap()
}

/// Written by the version before the identity columns: an issued grant with a trace id,
/// the grant used, a traced stateless call, and a denied call with neither.
fn fixture_before_identity() -> Batch {
    serde_json::from_str(include_str!("fixtures/journal-before-identity.json")).unwrap()
}

/// Writes the fixture's rows into `path`'s tables exactly as the older writer stored them
/// (the columns of its time; those added after it are NULL in a journal from before them).
fn insert_old_rows(path: &std::path::Path, batch: &Batch) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let places: Vec<String> = (1..=RECORD_COLUMNS.len() + 3).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO records (seq, {}, prev_hash, hash) VALUES ({})",
        RECORD_COLUMNS.join(", "),
        places.join(", ")
    );
    for r in &batch.records {
        let identity = [&r.user_verified, &r.os_user, &r.owner];
        assert!(identity.iter().all(|c| c.is_none()), "the fixtures predate the identity columns");
        let text = |t: Option<&str>| t.map_or(Value::Null, |t| Value::Text(t.to_string()));
        let mut values = vec![Value::Integer(r.seq)];
        values.extend(r.text().columns().map(text));
        values.extend([text(r.prev_hash.as_deref()), text(r.hash.as_deref())]);
        conn.execute(&sql, rusqlite::params_from_iter(values)).unwrap();
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
    rec.user_verified = Some(false);
    rec.os_user = Some("ana".into());
    rec.owner = Some("bo@example.com".into());
    rec.approver = Some("nora@example.com".into());
    rec.request_id = Some("01a2352ffc4376649a894474ff5e4c7a".into());
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
    assert_eq!(r.user_verified.as_deref(), Some("false"), "stored and sent as its text");
    assert!(r.hash_holds(), "the hub's recomputation differs from the writer's hash");
    let stored: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT hash FROM records WHERE seq = 1", [], |row| row.get(0))
        .unwrap();
    assert_eq!(r.hash.as_deref(), Some(stored.as_str()));
    assert_eq!(journal.reader().verify().await.unwrap().records, 1);
}

#[test]
fn records_sent_before_the_identity_columns_still_hash_as_sent() {
    let batch = fixture_before_identity();
    assert_eq!(batch.records.len(), 4);
    assert!(batch.records[0].grant_length.is_some() && batch.records[0].trace_id.is_some());
    assert!(batch.records[1].grant_id.is_some() && batch.records[2].trace_id.is_some());
    for r in &batch.records {
        assert!(r.hash_holds(), "record {} no longer hashes as it did", r.seq);
        // The hub reads a batch from that version as it was sent: no identity columns.
        let sent = serde_json::to_string(r).unwrap();
        for column in ["user_verified", "os_user", "owner"] {
            assert!(!sent.contains(column), "{sent}");
        }
    }
    // Any identity column added afterwards breaks the hash, on a record with a trace or not.
    for seq in [3, 4] {
        let old = &batch.records[seq - 1];
        let with_os_user = WireRecord { os_user: Some("ana".into()), ..old.clone() };
        assert!(!with_os_user.hash_holds(), "an OS account added to record {seq} afterwards");
        let unverified = WireRecord { user_verified: Some("false".into()), ..old.clone() };
        assert!(!unverified.hash_holds(), "user_verified added to record {seq} afterwards");
    }
}

/// `audit verify` over a journal holding the records the version before the identity
/// columns wrote, followed by new ones with and without them (a signed-in person, an
/// agent with its owner, an OS account, a record that sets none, as an older gateway
/// writes), then the outbox and the export; changing an OS account breaks the chain there.
#[tokio::test]
async fn a_journal_written_before_identity_columns_verifies_and_is_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let batch = fixture_before_identity();
    let head = batch.records.last().unwrap().hash.clone().unwrap();
    drop(Journal::open(&path, JournalOptions::default()).await.unwrap());
    insert_old_rows(&path, &batch);
    let journal = Journal::open(&path, JournalOptions::default()).await.unwrap();
    let report = journal.reader().verify().await.unwrap();
    assert_eq!((report.records, report.outcomes, report.unchained), (4, 3, 0));
    assert_eq!(report.head.as_deref(), Some(head.as_str()));

    let mut person = Record::new(RecordKind::Call, "ana@example.com", "ana-laptop", Decision::Allow);
    person.user_verified = Some(true);
    person.os_user = Some("ana".into());
    person.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
    let mut agent = Record::new(RecordKind::Call, "agent:release-bot", "ana-laptop", Decision::Ask);
    agent.user_verified = Some(true);
    agent.os_user = Some("ana".into());
    agent.owner = Some("ana@example.com".into());
    agent.grant = Some(RecordGrant::Issued { id: "g-9".into(), length: GrantLength::Hour1 });
    let mut account = Record::new(RecordKind::Call, "ana", "ana-laptop", Decision::Deny);
    account.user_verified = Some(false);
    account.os_user = Some("ana".into());
    let none = Record::new(RecordKind::Call, "ana", "ana-laptop", Decision::Allow);
    for rec in [person, agent, account, none] {
        journal.commit(rec).await.unwrap();
    }
    let report = journal.reader().verify().await.unwrap();
    assert_eq!(report.records, 8, "old and new records verify as one chain");

    let sent = Outbox::open(&path).unwrap().next_batch(10).unwrap();
    assert_eq!(sent.records[4].prev_hash.as_deref(), Some(head.as_str()), "the first new record follows the old");
    let identity: Vec<(Option<&str>, Option<&str>, Option<&str>)> =
        sent.records.iter().map(|r| (r.user_verified.as_deref(), r.os_user.as_deref(), r.owner.as_deref())).collect();
    let ana = Some("ana");
    assert_eq!(
        identity,
        [
            (None, None, None),
            (None, None, None),
            (None, None, None),
            (None, None, None),
            (Some("true"), ana, None),
            (Some("true"), ana, Some("ana@example.com")),
            (Some("false"), ana, None),
            (None, None, None),
        ]
    );
    // Through JSON, as the hub receives it: every hash recomputes, old and new.
    let received: Batch = serde_json::from_str(&serde_json::to_string(&sent).unwrap()).unwrap();
    assert_eq!(received, sent);
    assert!(received.records.iter().all(WireRecord::hash_holds), "the hub recomputes every hash, old and new");
    let plain = serde_json::to_string(&sent.records[7]).unwrap();
    assert!(!plain.contains("os_user") && !plain.contains("user_verified"), "absent when unset: {plain}");

    let exported = journal.reader().records().await.unwrap();
    assert_eq!(exported[4]["user"], "ana@example.com");
    assert_eq!(exported[4]["user_verified"], true, "a JSON boolean");
    assert_eq!(exported[4]["os_user"], "ana");
    assert_eq!(exported[4]["owner"], serde_json::Value::Null);
    assert_eq!(exported[5]["user"], "agent:release-bot");
    assert_eq!(exported[5]["owner"], "ana@example.com");
    assert_eq!(exported[6]["user_verified"], false);
    for old in [&exported[0], &exported[3], &exported[7]] {
        for column in ["user_verified", "os_user", "owner"] {
            assert_eq!(old[column], serde_json::Value::Null, "{column} of {old}");
        }
    }
    assert_eq!(exported[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "old records as written");

    // Dropping or changing an OS account breaks the chain there, as does adding one to an
    // old record; changing whether the user was verified does too.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let broken = |sql: &str, seq: i64| {
        conn.execute(sql, []).unwrap();
        let journal = &journal;
        async move {
            let err = journal.reader().verify().await.unwrap_err().to_string();
            assert!(err.contains(&format!("record {seq}")) && err.contains("changed"), "{err}");
        }
    };
    broken("UPDATE records SET os_user = NULL WHERE seq = 7", 7).await;
    broken("UPDATE records SET os_user = 'root' WHERE seq = 7", 7).await;
    conn.execute("UPDATE records SET os_user = 'ana' WHERE seq = 7", []).unwrap();
    assert_eq!(journal.reader().verify().await.unwrap().records, 8, "restored, the chain holds again");
    broken("UPDATE records SET user_verified = 'true' WHERE seq = 7", 7).await;
    conn.execute("UPDATE records SET user_verified = 'false' WHERE seq = 7", []).unwrap();
    broken("UPDATE records SET owner = NULL WHERE seq = 6", 6).await;
    conn.execute("UPDATE records SET owner = 'ana@example.com' WHERE seq = 6", []).unwrap();
    assert_eq!(journal.reader().verify().await.unwrap().records, 8);
    broken("UPDATE records SET os_user = 'ana' WHERE seq = 4", 4).await;
}
