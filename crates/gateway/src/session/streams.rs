//! Resumable SSE streams (2025-11-25, SEP-1699). Every answer stream a session opens is
//! logged with numbered events, so a client whose connection broke can come back with
//! `GET` + `Last-Event-ID` and receive what it missed, then the rest live. Clients that
//! negotiated 2025-11-25 or later get a priming event (an id, empty data and a retry
//! hint) first. Logs are bounded in events and in streams kept; nothing is written to
//! disk.

use super::Session;
use std::collections::{HashMap, VecDeque};
use tokio::sync::mpsc;

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
pub(super) struct StreamLog {
    events: VecDeque<String>,
    bytes: usize,
    /// How many events fell off the front of `events`.
    dropped: usize,
    done: bool,
    live: Option<mpsc::UnboundedSender<StreamEvent>>,
}

#[derive(Default)]
pub(super) struct Streams {
    next: u64,
    logs: HashMap<u64, StreamLog>,
    finished: VecDeque<u64>,
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

    /// Turns the answer stream of one request into a logged, resumable stream; returns the
    /// events for the connection that asked.
    pub fn resumable(&self, mut answers: mpsc::UnboundedReceiver<String>) -> mpsc::UnboundedReceiver<StreamEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = {
            let mut st = self.state();
            st.streams.next += 1;
            let id = st.streams.next;
            st.streams.logs.insert(id, StreamLog { live: Some(tx.clone()), ..StreamLog::default() });
            id
        };
        if self.primes() {
            let _ = tx.send(StreamEvent { id: event_id(stream, 0), data: None });
        }
        drop(tx);
        let me = self.me.clone();
        tokio::spawn(async move {
            while let Some(text) = answers.recv().await {
                let Some(session) = me.upgrade() else { return };
                let mut st = session.state();
                let Some(log) = st.streams.logs.get_mut(&stream) else { return };
                log.bytes += text.len();
                log.events.push_back(text.clone());
                while log.events.len() > 1 && (log.events.len() > EVENTS_PER_STREAM || log.bytes > BYTES_PER_STREAM) {
                    if let Some(old) = log.events.pop_front() {
                        log.bytes -= old.len();
                        log.dropped += 1;
                    }
                }
                let seq = log.dropped + log.events.len();
                if let Some(live) = &log.live {
                    if live.send(StreamEvent { id: event_id(stream, seq), data: Some(text) }).is_err() {
                        log.live = None;
                    }
                }
            }
            if let Some(session) = me.upgrade() {
                let mut st = session.state();
                if let Some(log) = st.streams.logs.get_mut(&stream) {
                    log.done = true;
                    log.live = None;
                }
                st.streams.finished.push_back(stream);
                while st.streams.finished.len() > FINISHED_KEPT {
                    if let Some(old) = st.streams.finished.pop_front() {
                        st.streams.logs.remove(&old);
                    }
                }
            }
        });
        rx
    }

    /// Resumes a stream after `last_event_id`: what was missed, then the rest live.
    /// `None` when the id names no stream this session still holds.
    pub fn resume(&self, last_event_id: &str) -> Option<mpsc::UnboundedReceiver<StreamEvent>> {
        let (stream, seen) = parse_event_id(last_event_id)?;
        let mut st = self.state();
        let log = st.streams.logs.get_mut(&stream)?;
        let (tx, rx) = mpsc::unbounded_channel();
        for (i, text) in log.events.iter().enumerate() {
            let seq = log.dropped + i + 1;
            if seq > seen {
                let _ = tx.send(StreamEvent { id: event_id(stream, seq), data: Some(text.clone()) });
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
}
