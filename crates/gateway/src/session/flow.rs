//! The channel from a session to one client connection (an answer stream, the GET
//! stream), bounded in bytes. A client that stops reading while a server keeps writing
//! would otherwise grow the gateway's memory without limit; here what waits for one
//! connection never exceeds [`LIMIT`]: past it the sender is told the connection fell
//! behind, and the session stops feeding it (a resumable stream can be picked up again
//! from its bounded log; GET-stream messages go to the bounded backlog). A strict flow
//! (the shim socket's one line per session, where nothing can be resumed) is cut instead:
//! its reader sees the end at once, and the connection closes.
//!
//! Must never: hold more than the limit for one connection, or block a sender.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most bytes waiting for one client connection.
pub const LIMIT: usize = 16 * 1024 * 1024;

/// What an item weighs.
pub trait Weighed {
    fn bytes(&self) -> usize;
}

impl Weighed for String {
    fn bytes(&self) -> usize {
        self.len()
    }
}

impl Weighed for super::StreamEvent {
    fn bytes(&self) -> usize {
        self.id.len() + self.data.as_ref().map_or(0, String::len)
    }
}

/// The sending half.
pub struct FlowTx<T> {
    tx: mpsc::UnboundedSender<T>,
    queued: Arc<AtomicUsize>,
    /// Cancelled when the reader is dropped.
    gone: tokio_util::sync::CancellationToken,
    /// Set on a strict flow: a send refused as behind cuts the flow.
    cut: Option<Arc<AtomicBool>>,
}

impl<T> Clone for FlowTx<T> {
    fn clone(&self) -> Self {
        FlowTx { tx: self.tx.clone(), queued: self.queued.clone(), gone: self.gone.clone(), cut: self.cut.clone() }
    }
}

/// The receiving half: what the connection writes out.
pub struct Flow<T> {
    rx: mpsc::UnboundedReceiver<T>,
    queued: Arc<AtomicUsize>,
    _gone: tokio_util::sync::DropGuard,
    cut: Option<Arc<AtomicBool>>,
}

/// Why an item was not queued (it comes back).
#[derive(Debug)]
pub enum Refused<T> {
    /// Nobody reads any more.
    Closed(T),
    /// The reader fell more than [`LIMIT`] bytes behind.
    Behind(T),
}

impl<T> Refused<T> {
    pub fn into_inner(self) -> T {
        match self {
            Refused::Closed(t) | Refused::Behind(t) => t,
        }
    }
}

pub fn flow<T>() -> (FlowTx<T>, Flow<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let gone = tokio_util::sync::CancellationToken::new();
    (
        FlowTx { tx, queued: queued.clone(), gone: gone.clone(), cut: None },
        Flow { rx, queued, _gone: gone.drop_guard(), cut: None },
    )
}

/// A flow that ends when its reader falls behind: the first send refused as behind cuts
/// it, and its reader gets `None` from then on (what was queued is dropped). For a
/// connection that carries a whole session, where a dropped message cannot be resumed.
pub fn strict<T>() -> (FlowTx<T>, Flow<T>) {
    let (mut tx, mut rx) = flow();
    let cut = Arc::new(AtomicBool::new(false));
    tx.cut = Some(cut.clone());
    rx.cut = Some(cut);
    (tx, rx)
}

impl<T: Weighed> FlowTx<T> {
    pub fn send(&self, item: T) -> Result<(), Refused<T>> {
        let n = item.bytes();
        if self.tx.is_closed() {
            return Err(Refused::Closed(item));
        }
        if self.queued.load(Ordering::SeqCst) + n > LIMIT {
            if let Some(cut) = &self.cut {
                cut.store(true, Ordering::SeqCst);
            }
            return Err(Refused::Behind(item));
        }
        self.queued.fetch_add(n, Ordering::SeqCst);
        self.tx.send(item).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            Refused::Closed(e.0)
        })
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// A handle that only tells when the reader went away; it keeps nothing open.
    pub fn watch(&self) -> Watch {
        Watch(self.gone.clone())
    }

    /// Resolves once nobody reads any more.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        T: Send + 'static,
    {
        let tx = self.tx.clone();
        async move { tx.closed().await }
    }
}

/// Tells when a flow's reader went away (it was dropped).
pub struct Watch(tokio_util::sync::CancellationToken);

impl Watch {
    pub async fn closed(&self) {
        self.0.cancelled().await
    }
}

impl<T: Weighed> Flow<T> {
    fn is_cut(&self) -> bool {
        self.cut.as_ref().is_some_and(|c| c.load(Ordering::SeqCst))
    }

    pub async fn recv(&mut self) -> Option<T> {
        if self.is_cut() {
            return None;
        }
        let item = self.rx.recv().await?;
        self.queued.fetch_sub(item.bytes(), Ordering::SeqCst);
        Some(item)
    }

    pub fn try_recv(&mut self) -> Option<T> {
        if self.is_cut() {
            return None;
        }
        let item = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(item.bytes(), Ordering::SeqCst);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_falls_behind_is_refused_and_reading_makes_room() {
        let (tx, mut rx) = flow::<String>();
        let chunk = "x".repeat(1024 * 1024);
        for _ in 0..16 {
            tx.send(chunk.clone()).unwrap();
        }
        assert!(matches!(tx.send(chunk.clone()), Err(Refused::Behind(_))), "16 MiB wait already");
        assert_eq!(rx.recv().await.unwrap().len(), chunk.len());
        tx.send(chunk.clone()).unwrap();
        drop(rx);
        assert!(matches!(tx.send("y".into()), Err(Refused::Closed(_))));
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod more_tests;
