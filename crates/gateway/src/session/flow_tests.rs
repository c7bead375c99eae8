//! The byte-bounded flow: what it holds is counted in bytes, a sender learns when the
//! reader is gone, and items come out in the order they went in.

use super::{flow, strict, Refused};

#[tokio::test]
async fn items_come_out_in_order_and_a_closed_reader_is_seen_by_the_sender() {
    let (tx, mut rx) = flow::<String>();
    for i in 0..100 {
        assert!(tx.send(format!("m{i}")).is_ok());
    }
    for i in 0..100 {
        assert_eq!(rx.recv().await.as_deref(), Some(format!("m{i}").as_str()));
    }
    assert!(!tx.is_closed());
    drop(rx);
    assert!(tx.is_closed());
    match tx.send("late".to_string()) {
        Err(Refused::Closed(item)) => assert_eq!(item, "late", "the refused item is given back"),
        other => panic!("a send to a closed flow: {other:?}"),
    }
}

#[tokio::test]
async fn one_item_over_the_limit_is_refused_and_given_back() {
    let (tx, _rx) = flow::<String>();
    let huge = "x".repeat(super::LIMIT + 1);
    match tx.send(huge) {
        Err(Refused::Behind(item)) => assert_eq!(item.len(), super::LIMIT + 1),
        other => panic!(
            "an item over the whole limit was not refused as behind: {:?}",
            other.map_err(|r| r.into_inner().len())
        ),
    }
}

#[tokio::test]
async fn a_strict_flow_whose_reader_falls_behind_ends_for_the_reader() {
    let (tx, mut rx) = strict::<String>();
    tx.send("first".into()).unwrap();
    let chunk = "x".repeat(super::LIMIT / 2);
    tx.send(chunk.clone()).unwrap();
    assert!(matches!(tx.send(chunk.clone()), Err(Refused::Behind(_))), "over the limit");
    assert_eq!(rx.recv().await, None, "a cut flow ends at once, queued items and all");
    assert!(rx.try_recv().is_none());
    // An ordinary flow in the same state keeps its queue for the reader.
    let (tx, mut rx) = flow::<String>();
    tx.send(chunk.clone()).unwrap();
    tx.send(chunk.clone()).unwrap();
    assert!(tx.send(chunk).is_err());
    assert_eq!(rx.recv().await.map(|s| s.len()), Some(super::LIMIT / 2));
}

#[tokio::test]
async fn a_sender_learns_when_the_reader_is_gone() {
    let (tx, rx) = flow::<String>();
    let closed = tx.clone().closed();
    drop(rx);
    tokio::time::timeout(std::time::Duration::from_secs(5), closed).await.expect("closed resolves");
}
