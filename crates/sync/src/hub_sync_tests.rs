//! Sync against an in-process hub (a loopback HTTP server that speaks `/v1/enroll` and
//! `/v1/ingest`): pending records go up in gzip batches of at most the batch size, oldest
//! first, with the device's credential; what the hub acknowledges is marked and never sent
//! again; what it does not acknowledge stays and goes again. Enrolling keeps the credential
//! in the real keychain, so these run inside `scripts/keyring-session.sh` (as `make
//! test-rust` does).

use countersign_audit::wire::{Ack, Batch};
use countersign_audit::{Journal, Record, RecordKind};
use countersign_local::home::Home;
use std::io::Read;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the fake hub acknowledges a batch.
#[derive(Clone, Copy, PartialEq)]
enum Acks {
    All,
    Nothing,
}

#[derive(Default)]
struct Hub {
    /// Each ingested batch's record ids, and the bearer it came with.
    batches: Vec<(Vec<String>, String)>,
}

async fn start_hub(acks: Arc<Mutex<Acks>>) -> (String, Arc<Mutex<Hub>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hub: Arc<Mutex<Hub>> = Default::default();
    let seen = hub.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (seen, acks) = (seen.clone(), acks.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(conn);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let (mut length, mut bearer) = (0, String::new());
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).await.unwrap();
                        let h = h.trim_end().to_string();
                        if h.is_empty() {
                            break;
                        }
                        let lower = h.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if lower.starts_with("authorization:") {
                            bearer = h["authorization:".len()..].trim().to_string();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).await.unwrap();
                    let answer = if path == "/v1/enroll" {
                        r#"{"device_id":"dev-PLACEHOLDER","credential":"cred-test-1"}"#
                            .replace("PLACEHOLDER", &uuid::Uuid::now_v7().to_string())
                    } else {
                        let mut json = Vec::new();
                        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut json).unwrap();
                        let batch: Batch = serde_json::from_slice(&json).unwrap();
                        let ids: Vec<String> = batch.records.iter().map(|r| r.id.clone()).collect();
                        seen.lock().unwrap().batches.push((ids.clone(), bearer));
                        let ack = match *acks.lock().unwrap() {
                            Acks::All => Ack {
                                records: ids,
                                outcomes: batch.outcomes.iter().map(|o| o.record_id.clone()).collect(),
                                ..Ack::default()
                            },
                            Acks::Nothing => Ack::default(),
                        };
                        serde_json::to_string(&ack).unwrap()
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    let conn = reader.get_mut();
                    conn.write_all(head.as_bytes()).await.unwrap();
                    conn.write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (url, hub)
}

/// A home whose journal holds `n` call records, enrolled with the hub at `url`.
async fn enrolled_home(dir: &std::path::Path, url: &str, n: usize) -> (Home, Vec<String>) {
    let home = Home::at(dir.join("home")).unwrap();
    let journal = Journal::open(&home.journal_path(), Default::default()).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let record = Record::new(RecordKind::Call, "u", "d", countersign_audit::Decision::Allow);
        ids.push(record.id.to_string());
        journal.commit(record).await.unwrap();
    }
    drop(journal);
    super::enroll(&home, url, "enroll-token", "test device", None).await.expect("enrolled (needs the keychain)");
    (home, ids)
}

#[tokio::test]
async fn records_go_up_in_batches_oldest_first_and_acknowledged_ones_never_again() {
    let (url, hub) = start_hub(Arc::new(Mutex::new(Acks::All))).await;
    let dir = tempfile::tempdir().unwrap();
    let (home, ids) = enrolled_home(dir.path(), &url, 5).await;

    let report = super::sync_once(&home, 2).await.unwrap();
    assert_eq!((report.acknowledged_records, report.pending_records), (5, 0));
    let batches = hub.lock().unwrap().batches.clone();
    let sizes: Vec<usize> = batches.iter().map(|(b, _)| b.len()).collect();
    assert_eq!(sizes, vec![2, 2, 1], "batches of at most 2");
    let sent: Vec<String> = batches.iter().flat_map(|(b, _)| b.clone()).collect();
    assert_eq!(sent, ids, "every record once, oldest first");
    assert!(batches.iter().all(|(_, bearer)| bearer == "Bearer cred-test-1"), "the device's credential");

    let again = super::sync_once(&home, 2).await.unwrap();
    assert_eq!(again.acknowledged_records, 0);
    assert_eq!(hub.lock().unwrap().batches.len(), 3, "nothing acknowledged goes again");
}

#[tokio::test]
async fn what_the_hub_does_not_acknowledge_stays_and_goes_again() {
    let acks = Arc::new(Mutex::new(Acks::Nothing));
    let (url, hub) = start_hub(acks.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (home, ids) = enrolled_home(dir.path(), &url, 3).await;

    let err = super::sync_once(&home, 10).await.expect_err("a hub that acknowledges nothing is an error");
    assert!(err.to_string().contains("acknowledged nothing"), "{err}");
    *acks.lock().unwrap() = Acks::All;
    let report = super::sync_once(&home, 10).await.unwrap();
    assert_eq!((report.acknowledged_records, report.pending_records), (3, 0));
    let batches = hub.lock().unwrap().batches.clone();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].0, ids);
    assert_eq!(batches[1].0, ids, "the unacknowledged records went again, all of them");
}

#[tokio::test]
async fn an_unenrolled_device_says_how_to_enroll() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("home")).unwrap();
    let err = super::sync_once(&home, 10).await.unwrap_err();
    assert!(matches!(err, super::SyncError::NotEnrolled), "{err}");
    assert!(err.to_string().contains("countersign enroll"));
}
