//! Ingestion against a real database (SQLite in memory): a chained batch is stored once
//! and acknowledged again on a replay; contents that do not match their hash, a replay
//! with other contents and a record out of its chain raise alerts without replacing what
//! the hub holds; a batch that cannot be taken (a NUL, a seq below 1) is refused whole.
//! A record's trace id and identity columns (`user_verified`, `os_user`, `owner`) are
//! stored and read back (SQLite, and PostgreSQL when `COUNTERSIGN_TEST_POSTGRES` is set);
//! an identity column changed after hashing is a `hash` alert.

use super::{ingest, Ingested};
use crate::db::Db;
use countersign_audit::chain::GENESIS;
use countersign_audit::wire::{Batch, WireRecord};

fn record(seq: i64, prev: &str, tool: &str) -> WireRecord {
    let mut r = WireRecord {
        seq,
        id: format!("rec-{seq}"),
        time: format!("2026-12-01T10:00:{seq:02}Z"),
        kind: "call".into(),
        user: "ana".into(),
        device: "ana-laptop".into(),
        client: Some("cursor".into()),
        client_name: None,
        client_version: None,
        session: Some("s-1".into()),
        server: Some("fs".into()),
        tool: Some(tool.into()),
        method: Some("tools/call".into()),
        arguments: None,
        decision: "allow".into(),
        rule: Some("default:read".into()),
        reason: None,
        approval: None,
        policy_version: None,
        class: Some("read".into()),
        label: None,
        grant_id: None,
        grant_length: None,
        trace_id: None,
        user_verified: None,
        os_user: None,
        owner: None,
        approver: None,
        request_id: None,
        prev_hash: Some(prev.into()),
        hash: None,
    };
    r.hash = Some(r.chain_fields().hash(prev));
    r
}

/// Records 1..=n chained from the genesis.
fn chain(n: i64) -> Vec<WireRecord> {
    let mut out: Vec<WireRecord> = Vec::new();
    for seq in 1..=n {
        let prev = out.last().and_then(|r| r.hash.clone()).unwrap_or_else(|| GENESIS.to_string());
        out.push(record(seq, &prev, "read_file"));
    }
    out
}

fn batch(records: Vec<WireRecord>) -> Batch {
    Batch { records, outcomes: vec![], grant_columns: true }
}

async fn hub() -> Db {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    add_device(&db).await;
    db
}

async fn add_device(db: &Db) {
    sqlx::query("INSERT INTO devices (id, name, credential_sha256, enrolled_at) VALUES ('d1', 'd1', 'x', '2026-12-01T09:00:00Z')")
        .execute(&db.pool)
        .await
        .unwrap();
}

async fn alerts(db: &Db) -> Vec<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT kind FROM alerts ORDER BY time").fetch_all(&db.pool).await.unwrap();
    rows.into_iter().map(|(k,)| k).collect()
}

async fn held(db: &Db) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT seq, tool FROM records ORDER BY seq").fetch_all(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_chained_batch_is_stored_once_and_a_replay_is_acknowledged_again() {
    let db = hub().await;
    let records = chain(3);
    let Ingested::Stored { ack, new } = ingest(&db, None, "d1", &batch(records.clone())).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!(new.len(), 3);
    assert_eq!(ack.records, ["rec-1", "rec-2", "rec-3"]);
    assert_eq!((ack.last_seq, ack.last_hash.as_deref()), (Some(3), records[2].hash.as_deref()));
    let Ingested::Stored { ack, new } = ingest(&db, None, "d1", &batch(records)).await.unwrap() else {
        panic!("a replay was refused")
    };
    assert!(new.is_empty(), "nothing new in a replay");
    assert_eq!(ack.records.len(), 3, "a replay is acknowledged again");
    assert_eq!(held(&db).await.len(), 3);
    assert_eq!(alerts(&db).await, Vec::<String>::new());
}

#[tokio::test]
async fn contents_changed_after_hashing_raise_a_hash_alert() {
    let db = hub().await;
    let mut records = chain(2);
    records[1].tool = Some("delete_file".into()); // the hash still says read_file
    assert!(matches!(ingest(&db, None, "d1", &batch(records)).await.unwrap(), Ingested::Stored { .. }));
    assert!(alerts(&db).await.contains(&"hash".to_string()), "{:?}", alerts(&db).await);
}

#[tokio::test]
async fn a_replay_with_other_contents_never_replaces_the_first_copy() {
    let db = hub().await;
    let records = chain(2);
    ingest(&db, None, "d1", &batch(records.clone())).await.unwrap();
    let mut changed = records.clone();
    changed[1].tool = Some("delete_file".into());
    ingest(&db, None, "d1", &batch(changed)).await.unwrap();
    assert_eq!(held(&db).await, [(1, "read_file".to_string()), (2, "read_file".to_string())]);
    assert!(alerts(&db).await.contains(&"hash".to_string()), "{:?}", alerts(&db).await);
}

#[tokio::test]
async fn a_record_that_does_not_continue_the_chain_is_flagged() {
    let db = hub().await;
    let records = chain(3);
    // Record 2 never arrives: 3 names a previous hash the hub does not hold.
    ingest(&db, None, "d1", &batch(vec![records[0].clone(), records[2].clone()])).await.unwrap();
    assert!(!alerts(&db).await.is_empty(), "a gap in the chain raises an alert");
    assert_eq!(held(&db).await.len(), 2, "stored all the same");
}

#[tokio::test]
async fn a_batch_it_cannot_take_is_refused_whole() {
    let db = hub().await;
    let mut nul = chain(2);
    nul[1].tool = Some("read\0file".into());
    assert!(matches!(ingest(&db, None, "d1", &batch(nul)).await.unwrap(), Ingested::Refused(_)));
    let mut zero = chain(1);
    zero[0].seq = 0;
    assert!(matches!(ingest(&db, None, "d1", &batch(zero)).await.unwrap(), Ingested::Refused(_)));
    assert!(held(&db).await.is_empty(), "nothing of a refused batch is stored");
    assert!(!alerts(&db).await.is_empty(), "a refusal is an alert");
}

/// Records with and without a trace id through ingestion: stored as sent (their hashes,
/// which cover the trace id, hold), returned by `GET /v1/audit`'s query under the export's
/// field name, in CSV, and found by it.
async fn trace_ids_are_stored_and_returned(db: &Db) {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut records = chain(1);
    let mut traced = record(2, records[0].hash.as_deref().unwrap(), "write_file");
    traced.trace_id = Some(TRACE.into());
    traced.hash = Some(traced.chain_fields().hash(records[0].hash.as_deref().unwrap()));
    records.push(traced);
    // Through JSON, as a device sends it.
    let sent: Batch = serde_json::from_str(&serde_json::to_string(&batch(records)).unwrap()).unwrap();
    assert!(matches!(ingest(db, None, "d1", &sent).await.unwrap(), Ingested::Stored { .. }));
    assert_eq!(alerts(db).await, Vec::<String>::new(), "the hashes hold with the trace id");

    let all = crate::query::records(db, &crate::query::AuditQuery::default()).await.unwrap();
    let traces: Vec<&serde_json::Value> = all.iter().map(|r| &r["trace_id"]).collect();
    assert_eq!(traces, [&serde_json::Value::Null, &serde_json::json!(TRACE)]);
    let q = crate::query::AuditQuery { trace_id: Some(TRACE.into()), ..Default::default() };
    let found = crate::query::records(db, &q).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0]["seq"].as_i64(), found[0]["tool"].as_str()), (Some(2), Some("write_file")));
    let csv = crate::query::to_csv(&found).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == "trace_id").expect("a trace_id column");
    assert_eq!(row[at], TRACE);
}

#[tokio::test]
async fn trace_ids_are_stored_and_returned_sqlite() {
    trace_ids_are_stored_and_returned(&hub().await).await;
}

/// The same on PostgreSQL, when `COUNTERSIGN_TEST_POSTGRES` names a role that may create
/// databases (`scripts/postgres.sh`). The database is dropped after.
#[tokio::test]
async fn trace_ids_are_stored_and_returned_postgres() {
    let Some(test_db) = crate::db::fresh_postgres("ingest_trace").await else { return };
    let db = &test_db.db;
    add_device(db).await;
    trace_ids_are_stored_and_returned(db).await;
    test_db.drop_database().await;
}

/// Records 1..=n chained from the genesis, each changed by `set` before it is hashed.
fn chain_with(n: i64, set: impl Fn(i64, &mut WireRecord)) -> Vec<WireRecord> {
    let mut out: Vec<WireRecord> = Vec::new();
    for seq in 1..=n {
        let prev = out.last().and_then(|r| r.hash.clone()).unwrap_or_else(|| GENESIS.to_string());
        let mut r = record(seq, &prev, "read_file");
        set(seq, &mut r);
        r.hash = Some(r.chain_fields().hash(&prev));
        out.push(r);
    }
    out
}

/// A record from before the identity columns, an agent's verified one (the device is the
/// agent's host) and one not verified (the OS account, with the agent's owner) through
/// ingestion as a device sends them: stored as sent (their hashes, which
/// cover the identity columns, hold), returned by `GET /v1/audit`'s query
/// (`user_verified` a boolean), in CSV, and found by the `user_verified` and `owner`
/// filters.
async fn identity_fields_are_stored_and_returned(db: &Db) {
    // A device that is no agent's may not name an owner: the batch is refused whole.
    let mut owned = record(1, GENESIS, "read_file");
    owned.owner = Some("bo@example.com".into());
    owned.hash = Some(owned.chain_fields().hash(GENESIS));
    let refused = ingest(db, None, "d1", &batch(vec![owned])).await.unwrap();
    assert!(matches!(refused, Ingested::Refused(why) if why.contains("no agent's")));
    // The agent `ci`'s host: its verified records name `agent:ci`.
    sqlx::query("UPDATE devices SET agent = 'ci' WHERE id = 'd1'").execute(&db.pool).await.unwrap();
    let records = chain_with(3, |seq, r| match seq {
        2 => {
            r.user = "agent:ci".into();
            r.user_verified = Some("true".into());
            r.os_user = Some("ana".into());
        }
        3 => {
            r.user_verified = Some("false".into());
            r.os_user = Some("ana".into());
            r.owner = Some("bo@example.com".into());
        }
        _ => {}
    });
    let sent: Batch = serde_json::from_str(&serde_json::to_string(&batch(records)).unwrap()).unwrap();
    assert!(matches!(ingest(db, None, "d1", &sent).await.unwrap(), Ingested::Stored { .. }));
    let raised = alerts(db).await;
    assert!(!raised.iter().any(|k| k == "hash" || k == "gap" || k == "diverged"), "the hashes hold: {raised:?}");
    let stored: Vec<(Option<String>, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT user_verified, os_user, owner FROM records ORDER BY seq")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        stored,
        [(None, None, None), (some("true"), some("ana"), None), (some("false"), some("ana"), some("bo@example.com"))],
        "stored as sent"
    );

    use serde_json::{json, Value};
    let all = crate::query::records(db, &crate::query::AuditQuery::default()).await.unwrap();
    let identity: Vec<[&Value; 3]> = all.iter().map(|r| [&r["user_verified"], &r["os_user"], &r["owner"]]).collect();
    assert_eq!(
        identity,
        [
            [&Value::Null, &Value::Null, &Value::Null],
            [&json!(true), &json!("ana"), &Value::Null],
            [&json!(false), &json!("ana"), &json!("bo@example.com")],
        ]
    );
    let seqs = |found: &[serde_json::Map<String, Value>]| found.iter().map(|r| r["seq"].as_i64()).collect::<Vec<_>>();
    let q = |user_verified, owner: Option<&str>| crate::query::AuditQuery {
        user_verified,
        owner: owner.map(str::to_string),
        ..Default::default()
    };
    assert_eq!(seqs(&crate::query::records(db, &q(Some(true), None)).await.unwrap()), [Some(2)]);
    assert_eq!(seqs(&crate::query::records(db, &q(Some(false), None)).await.unwrap()), [Some(3)]);
    let owned = crate::query::records(db, &q(None, Some("bo@example.com"))).await.unwrap();
    assert_eq!(seqs(&owned), [Some(3)]);
    assert!(crate::query::records(db, &q(Some(true), Some("bo@example.com"))).await.unwrap().is_empty());

    let csv = crate::query::to_csv(&all).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("a {name} column"));
    let cells: Vec<[&str; 3]> =
        rows.iter().map(|row| [row[at("user_verified")], row[at("os_user")], row[at("owner")]]).collect();
    assert_eq!(cells, [["", "", ""], ["true", "ana", ""], ["false", "ana", "bo@example.com"]]);
}

#[tokio::test]
async fn identity_fields_are_stored_and_returned_sqlite() {
    identity_fields_are_stored_and_returned(&hub().await).await;
}

/// The same on PostgreSQL, when `COUNTERSIGN_TEST_POSTGRES` is set.
#[tokio::test]
async fn identity_fields_are_stored_and_returned_postgres() {
    let Some(test_db) = crate::db::fresh_postgres("ingest_identity").await else { return };
    let db = &test_db.db;
    add_device(db).await;
    identity_fields_are_stored_and_returned(db).await;
    test_db.drop_database().await;
}

/// The identity columns are hashed: a record whose OS account was changed, or dropped,
/// after hashing is a `hash` alert (stored all the same, as sent).
#[tokio::test]
async fn an_os_user_changed_after_hashing_raises_a_hash_alert() {
    let set = |_: i64, r: &mut WireRecord| {
        r.user_verified = Some("false".into());
        r.os_user = Some("ana".into());
    };
    let db = hub().await;
    let mut records = chain_with(2, set);
    records[1].os_user = Some("root".into()); // the hash still says ana
    assert!(matches!(ingest(&db, None, "d1", &batch(records)).await.unwrap(), Ingested::Stored { .. }));
    assert!(alerts(&db).await.contains(&"hash".to_string()), "{:?}", alerts(&db).await);
    let (os_user,): (Option<String>,) =
        sqlx::query_as("SELECT os_user FROM records WHERE seq = 2").fetch_one(&db.pool).await.unwrap();
    assert_eq!(os_user.as_deref(), Some("root"), "stored as sent, flagged");

    let db = hub().await;
    let mut records = chain_with(2, set);
    records[0].os_user = None;
    ingest(&db, None, "d1", &batch(records)).await.unwrap();
    assert!(alerts(&db).await.contains(&"hash".to_string()), "a dropped OS account: {:?}", alerts(&db).await);
}
