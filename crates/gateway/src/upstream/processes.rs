//! The count of live upstream processes per server, against `[limits]
//! max_processes_per_server`. A [`ProcessSlot`] is taken before a stdio server's process
//! is started and given back only once that process has been reaped, so the count is
//! never below the processes actually running, not even while one is being killed.
//!
//! It only counts: it never starts or stops a process, never chooses what to close to
//! make room (the session table does), and never holds its lock across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Live processes per server, and the turn each server's starts wait for.
#[derive(Default)]
pub struct Processes {
    live: Mutex<HashMap<String, usize>>,
    /// Woken whenever a slot is given back (any server's).
    freed: Notify,
    /// One start at a time per server, so two starts at the cap do not both close a
    /// session for the one slot the first close frees.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Room for one process of a server. Dropping it gives the room back.
pub struct ProcessSlot {
    processes: Arc<Processes>,
    server: String,
}

impl std::fmt::Debug for ProcessSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSlot").field("server", &self.server).finish()
    }
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        {
            let mut live = self.processes.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = live.get_mut(&self.server) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    live.remove(&self.server);
                }
            }
        }
        self.processes.freed.notify_waiters();
    }
}

impl Processes {
    /// A slot for one more process of `server`, if fewer than `cap` run now.
    pub fn try_take(self: &Arc<Self>, server: &str, cap: usize) -> Option<ProcessSlot> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let n = live.entry(server.to_string()).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(ProcessSlot { processes: self.clone(), server: server.to_string() })
    }

    /// Resolves at the next slot given back, of any server. Take it (and `enable` it)
    /// before looking, so a slot given back in between is not missed.
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// The turn of `server`'s starts: hold it while taking a slot.
    pub fn turn(&self, server: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        turns.entry(server.to_string()).or_default().clone()
    }

    /// Live processes per server (servers with none are left out).
    pub fn live(&self) -> BTreeMap<String, usize> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.iter().filter(|(_, n)| **n > 0).map(|(s, n)| (s.clone(), *n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_server_up_to_the_cap_and_given_back_on_drop() {
        let p = Arc::new(Processes::default());
        let a1 = p.try_take("a", 2).unwrap();
        let _a2 = p.try_take("a", 2).unwrap();
        assert!(p.try_take("a", 2).is_none(), "a is at its cap");
        let _b = p.try_take("b", 2).expect("another server has its own count");
        assert_eq!(p.live(), BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]));
        drop(a1);
        assert_eq!(p.live()["a"], 1);
        assert!(p.try_take("a", 2).is_some(), "the slot given back is free again");
    }

    #[tokio::test]
    async fn a_slot_given_back_wakes_a_waiter() {
        let p = Arc::new(Processes::default());
        let slot = p.try_take("a", 1).unwrap();
        let freed = p.freed();
        tokio::pin!(freed);
        freed.as_mut().enable();
        assert!(p.try_take("a", 1).is_none());
        drop(slot);
        tokio::time::timeout(std::time::Duration::from_secs(5), freed).await.expect("woken");
        assert!(p.try_take("a", 1).is_some());
    }
}
