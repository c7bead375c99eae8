//! The gateway's open sessions by id, and the deadline sweeper's wake-up they share. The
//! HTTP face adds and finds sessions here, the reaper and shutdown close them, the API
//! lists them. Removing a session ends the grants that lasted only as long as it. It never
//! holds its lock across an await or while a session does work.

use super::{Deadlines, Session};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub(crate) struct Sessions {
    table: Mutex<HashMap<String, Arc<Session>>>,
    pub(crate) deadlines: Arc<Deadlines>,
}

impl Sessions {
    /// The table, to add a session under limits checked with the lock held.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    /// Forgets a session, and the grants that lasted only as long as it.
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let removed = self.lock().remove(id);
        if let Some(s) = &removed {
            s.shared.grants.lock().unwrap_or_else(|p| p.into_inner()).end_session(id);
        }
        removed
    }

    /// Takes every session out (the gateway is stopping).
    pub(crate) fn drain(&self) -> Vec<Arc<Session>> {
        self.lock().drain().map(|(_, s)| s).collect()
    }
}
