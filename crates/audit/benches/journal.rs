//! Criterion: the cost of committing one audit record (what every forwarded call waits
//! for), alone and with 16 committers sharing group commits.

use countersign_audit::{Journal, JournalOptions, Record, RecordKind};
use criterion::{criterion_group, criterion_main, Criterion};

fn record() -> Record {
    let mut r = Record::new(RecordKind::Call, "bench", "device", countersign_audit::Decision::Allow);
    r.server = Some("fast".into());
    r.tool = Some("echo".into());
    r.arguments = Some(serde_json::json!({"text": "hi"}));
    r.rule = Some("default:read-only".into());
    r
}

fn commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = rt.block_on(Journal::open(&dir.path().join("a.db"), JournalOptions::default())).unwrap();
    c.bench_function("commit one record", |b| {
        b.to_async(&rt).iter(|| async { journal.commit(record()).await.unwrap() })
    });
    c.bench_function("commit 16 records concurrently", |b| {
        b.to_async(&rt).iter(|| async {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let j = journal.clone();
                    tokio::spawn(async move { j.commit(record()).await.unwrap() })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
}

criterion_group!(benches, commit);
criterion_main!(benches);
