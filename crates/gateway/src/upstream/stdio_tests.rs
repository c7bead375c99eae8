//! The stdio transport against real child processes (`/bin/sh` scripts): lines that are
//! JSON are delivered in order and anything else is skipped; the end of the process is
//! reported with why; a line over the limit ends the process; dropping the link kills
//! the child's whole process group.

use super::super::{EventSink, UpstreamEvent};
use crate::govern::Outbound;
use crate::message::Envelope;
use std::time::Duration;
use tokio::sync::mpsc;

fn sink() -> (EventSink, mpsc::UnboundedReceiver<UpstreamEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (std::sync::Arc::new(move |e| tx.send(e).is_ok()), rx)
}

fn sh(script: &str, max_line: usize, events: EventSink) -> super::UpstreamLink {
    super::spawn("t", "/bin/sh", &["-c".into(), script.into()], &[], None, max_line, events, None).unwrap()
}

async fn next(rx: &mut mpsc::UnboundedReceiver<UpstreamEvent>) -> UpstreamEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an event in time").expect("an event")
}

#[tokio::test]
async fn json_lines_are_delivered_in_order_junk_is_skipped_and_the_exit_is_reported() {
    let (events, mut rx) = sink();
    let _link = sh(r#"echo '{"n":1}'; echo 'not json'; echo; echo '{"n":2}'; exit 3"#, 1024, events);
    for n in [1, 2] {
        match next(&mut rx).await {
            UpstreamEvent::Message(m) => assert_eq!(m, format!(r#"{{"n":{n}}}"#)),
            other => panic!("{other:?}"),
        }
    }
    match next(&mut rx).await {
        UpstreamEvent::Closed(why) => assert!(why.contains("exited") && why.contains('3'), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn what_is_sent_reaches_the_childs_stdin_as_one_line() {
    let (events, mut rx) = sink();
    // The child answers each line it reads by echoing it back.
    let link = sh("while read -r l; do printf '%s\\n' \"$l\"; done", 1024, events);
    let answer = r#"{"jsonrpc":"2.0","id":4,"result":{"ok":true}}"#;
    link.send(Outbound::plain(&Envelope::parse(answer).unwrap()).unwrap()).await.unwrap();
    match next(&mut rx).await {
        UpstreamEvent::Message(m) => {
            let v: serde_json::Value = serde_json::from_str(&m).unwrap();
            assert_eq!(v["id"], 4);
            assert_eq!(v["result"]["ok"], true);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_line_over_the_limit_ends_the_process() {
    let (events, mut rx) = sink();
    let started = std::time::Instant::now();
    let _link = sh("printf '{\"x\":\"%0200d\"}\\n' 0; exec sleep 60", 64, events);
    match next(&mut rx).await {
        UpstreamEvent::Closed(why) => assert!(why.contains("64-byte limit"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30), "the child was killed, not waited out");
}

#[tokio::test]
async fn dropping_the_link_kills_the_childs_process_group() {
    let (events, mut rx) = sink();
    // The child starts a helper (as `npx` starts `node`) and says its pid.
    let link = sh(r#"sleep 300 & echo "{\"helper\":$!}"; wait"#, 1024, events);
    let helper = match next(&mut rx).await {
        UpstreamEvent::Message(m) => serde_json::from_str::<serde_json::Value>(&m).unwrap()["helper"].as_u64().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(std::path::Path::new(&format!("/proc/{helper}")).exists());
    drop(link);
    match next(&mut rx).await {
        UpstreamEvent::Closed(why) => assert!(why.contains("gateway closed"), "{why}"),
        other => panic!("{other:?}"),
    }
    crate::session::testkit::wait_until("the helper to end with its group", || {
        let state = std::fs::read_to_string(format!("/proc/{helper}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its (killed) parent's reaper.
        (state.is_empty() || state.split_whitespace().nth(2) == Some("Z")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_command_that_cannot_start_is_an_error_naming_it() {
    let (events, _rx) = sink();
    let err =
        super::spawn("t", "/nonexistent/server", &[], &[], None, 1024, events, None).err().expect("no such command");
    assert!(err.to_string().contains("/nonexistent/server"), "{err}");
}

#[tokio::test]
async fn the_process_slot_is_given_back_once_the_child_is_reaped_or_never_started() {
    use super::super::Processes;
    let processes = std::sync::Arc::new(Processes::default());
    let (events, mut rx) = sink();
    let slot = processes.try_take("t", 1);
    let link =
        super::spawn("t", "/bin/sh", &["-c".into(), "exec sleep 300".into()], &[], None, 1024, events, slot).unwrap();
    assert_eq!(processes.live().get("t"), Some(&1), "held while the child runs");
    drop(link);
    match next(&mut rx).await {
        // The slot goes back before the end is reported, so it is free by now.
        UpstreamEvent::Closed(_) => assert_eq!(processes.live().get("t"), None),
        other => panic!("{other:?}"),
    }
    let (events, _rx) = sink();
    let slot = processes.try_take("t", 1);
    assert!(super::spawn("t", "/nonexistent/server", &[], &[], None, 1024, events, slot).is_err());
    assert_eq!(processes.live().get("t"), None, "a process that never started holds no room");
}
