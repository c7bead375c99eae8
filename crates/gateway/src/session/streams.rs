//! Resumable SSE streams (2025-11-25, SEP-1699). Every answer stream a session opens is
//! logged with numbered events, so a client whose connection broke can come back with
//! `GET` + `Last-Event-ID` and receive what it missed, then the rest live. Clients that
//! negotiated 2025-11-25 or later get a priming event (an id, empty data and a retry
//! hint) first. Logs are bounded in events, bytes and streams kept; nothing is written
//! to disk.
//!
//! A stream's log has its own lock, never taken while it waits on anything, so replies
//! can write to it from any context, including with the session state locked.

use super::flow::{flow, Flow, FlowTx};
use super::Session;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Most events kept for one stream.
const EVENTS_PER_STREAM: usize = 1024;
/// Most bytes kept for one stream (older events go first; the newest is always kept).
const BYTES_PER_STREAM: usize = 4 * 1024 * 1024;
/// Finished streams kept for late resumption.
const FINISHED_KEPT: usize = 16;

/// One event on a client connection: its id (`<stream>-<seq>`) and its data.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub id: String,
    /// `None` for the priming event.
    pub data: Option<String>,
}

#[derive(Default)]
struct Log {
    events: VecDeque<String>,
    bytes: usize,
    /// How many events fell off the front of `events`.
    dropped: usize,
    done: bool,
    live: Option<FlowTx<StreamEvent>>,
}

pub(crate) struct Stream {
    id: u64,
    log: Mutex<Log>,
}

impl Stream {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, text: String) {
        let mut log = self.log();
        log.bytes += text.len();
        log.events.push_back(text.clone());
        while log.events.len() > 1 && (log.events.len() > EVENTS_PER_STREAM || log.bytes > BYTES_PER_STREAM) {
            if let Some(old) = log.events.pop_front() {
                log.bytes -= old.len();
                log.dropped += 1;
            }
        }
        let seq = log.dropped + log.events.len();
        let id = event_id(self.id, seq);
        if let Some(live) = &log.live {
            // A connection that stopped reading is let go; the client can resume from the
            // log with Last-Event-ID.
            if live.send(StreamEvent { id, data: Some(text) }).is_err() {
                log.live = None;
            }
        }
    }

    fn done(&self) -> bool {
        self.log().done
    }
}

/// The writing end of one answer stream, held by the request's reply. Dropping it (the
/// answer went out, or the request was abandoned) ends the stream.
pub(crate) struct StreamSink(Arc<Stream>);

impl StreamSink {
    pub(crate) fn send(&self, text: String) {
        self.0.push(text);
    }
}

impl Drop for StreamSink {
    fn drop(&mut self) {
        let mut log = self.0.log();
        log.done = true;
        log.live = None;
    }
}

#[derive(Default)]
pub(super) struct Streams {
    next: u64,
    open: HashMap<u64, Arc<Stream>>,
}

fn event_id(stream: u64, seq: usize) -> String {
    format!("{stream}-{seq}")
}

fn parse_event_id(id: &str) -> Option<(u64, usize)> {
    let (stream, seq) = id.split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

impl Session {
    /// Whether this client takes priming events (it negotiated 2025-11-25 or later).
    fn primes(&self) -> bool {
        self.protocol_version().is_some_and(|v| v.as_str() >= "2025-11-25")
    }

    /// Opens a logged, resumable answer stream: the sink for the reply, and the events
    /// for the connection that asked.
    pub(crate) fn open_stream(&self) -> (StreamSink, Flow<StreamEvent>) {
        let (tx, rx) = flow();
        let primes = self.primes();
        let mut st = self.state();
        st.streams.next += 1;
        let id = st.streams.next;
        if primes {
            let _ = tx.send(StreamEvent { id: event_id(id, 0), data: None });
        }
        let stream = Arc::new(Stream { id, log: Mutex::new(Log { live: Some(tx), ..Log::default() }) });
        // Forget the oldest finished streams beyond the few kept for late resumption.
        let mut finished: Vec<u64> = st.streams.open.values().filter(|s| s.done()).map(|s| s.id).collect();
        if finished.len() > FINISHED_KEPT {
            finished.sort_unstable();
            for old in &finished[..finished.len() - FINISHED_KEPT] {
                st.streams.open.remove(old);
            }
        }
        st.streams.open.insert(id, stream.clone());
        (StreamSink(stream), rx)
    }

    /// Resumes a stream after `last_event_id`: what was missed, then the rest live.
    /// `None` when the id names no stream this session still holds.
    pub fn resume(&self, last_event_id: &str) -> Option<Flow<StreamEvent>> {
        let (stream, seen) = parse_event_id(last_event_id)?;
        let stream = self.state().streams.open.get(&stream).cloned()?;
        let (tx, rx) = flow();
        let mut log = stream.log();
        for (i, text) in log.events.iter().enumerate() {
            let seq = log.dropped + i + 1;
            if seq > seen {
                let _ = tx.send(StreamEvent { id: event_id(stream.id, seq), data: Some(text.clone()) });
            }
        }
        if !log.done {
            log.live = Some(tx);
        }
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        assert_eq!(parse_event_id(&event_id(7, 3)), Some((7, 3)));
        assert_eq!(parse_event_id("x-1"), None);
        assert_eq!(parse_event_id("7"), None);
    }

    #[test]
    fn a_stream_keeps_its_newest_events_within_bounds_and_ends_when_its_sink_drops() {
        let (tx, mut rx) = flow();
        let stream = Arc::new(Stream { id: 1, log: Mutex::new(Log { live: Some(tx), ..Log::default() }) });
        let sink = StreamSink(stream.clone());
        for i in 0..(EVENTS_PER_STREAM + 10) {
            sink.send(format!("m{i}"));
        }
        let big = "x".repeat(BYTES_PER_STREAM + 1);
        sink.send(big.clone());
        {
            let log = stream.log();
            assert_eq!(log.events.len(), 1, "a too-large event pushes out all older ones");
            assert_eq!(log.dropped, EVENTS_PER_STREAM + 10);
        }
        drop(sink);
        assert!(stream.done());
        let mut last = None;
        while let Some(e) = rx.try_recv() {
            last = Some(e);
        }
        assert_eq!(last.unwrap().id, event_id(1, EVENTS_PER_STREAM + 11));
        assert!(rx.try_recv().is_none(), "the connection's channel closed with the sink");
    }
}

#[cfg(test)]
#[path = "streams_tests.rs"]
mod more_tests;
