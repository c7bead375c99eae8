//! Request deadlines (`limits.request_timeout_secs`) for every session, kept by one
//! sweeper task for the whole gateway. A forwarded request only records its deadline; it
//! spawns nothing and arms no timer of its own, so a busy gateway holds no per-call
//! timers and an answered call leaves nothing behind. The sweeper sleeps until the
//! earliest deadline, fails what is overdue (and tells the upstream to stop), and waits
//! for a wake-up when nothing is pending anywhere. It must never hold a session's state
//! lock across an await.

use super::{Session, Sessions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;
use tokio::sync::Notify;

/// The sweeper's wake-up: registering a request wakes it only when it is not already
/// counting down to a deadline.
#[derive(Default)]
pub struct Deadlines {
    wake: Arc<Notify>,
    armed: AtomicBool,
}

impl Deadlines {
    /// Called after a request with a deadline was registered.
    pub(crate) fn added(&self) {
        if !self.armed.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }
}

impl Session {
    fn earliest_deadline(&self) -> Option<Instant> {
        self.state().pending.values().filter_map(|p| p.deadline).min()
    }

    /// Fails the requests whose deadline has passed, each with a clear error to the
    /// client, and asks their upstream to cancel them.
    async fn expire_overdue(&self, now: Instant) {
        let overdue: Vec<(u64, String)> = {
            let st = self.state();
            st.pending
                .iter()
                .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
                .map(|(id, p)| (*id, p.server.clone()))
                .collect()
        };
        let secs = self.shared.config.limits.request_timeout_secs;
        for (id, server) in overdue {
            self.fail_pending(id, &format!("the upstream did not answer within {secs}s"));
            let live = self.links.get(&server).and_then(|slot| slot.try_lock().ok().and_then(|l| l.clone()));
            if let Some(link) = live {
                let _ = link.send(crate::govern::Outbound::cancel(id, "timed out in the gateway")).await;
            }
        }
    }
}

fn earliest(sessions: &[Arc<Session>]) -> Option<Instant> {
    sessions.iter().filter_map(|s| s.earliest_deadline()).min()
}

/// Runs the gateway's one sweeper until the gateway is dropped.
pub(crate) fn spawn_sweeper(sessions: Weak<Sessions>) {
    tokio::spawn(async move {
        loop {
            let Some(strong) = sessions.upgrade() else { return };
            let now = Instant::now();
            let all = strong.all();
            for s in &all {
                s.expire_overdue(now).await;
            }
            let deadlines = &strong.deadlines;
            deadlines.armed.store(false, Ordering::SeqCst);
            // Checked again after disarming, so a request registered meanwhile is seen.
            let next = earliest(&strong.all());
            if next.is_some() {
                deadlines.armed.store(true, Ordering::SeqCst);
            }
            let wake = deadlines.wake.clone();
            drop(all);
            // The strong handle is dropped while asleep, so shutdown is not held up.
            drop(strong);
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => wake.notified().await,
            }
        }
    });
}
