//! The gateway's open sessions by id, and the deadline sweeper's wake-up they share. The
//! HTTP face adds and finds sessions here, the reaper and shutdown close them, the API
//! lists them. Removing a session ends the grants that lasted only as long as it. It never
//! holds its lock across an await or while a session does work.
//!
//! Stateless sessions (one per client token and route, see `stateless.rs`) are kept here
//! too, counted against the same limits, and found only by their token and route, never
//! by an id a client sends.

use super::{Deadlines, Route, Session};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub(crate) struct Sessions {
    table: Mutex<HashMap<String, Arc<Session>>>,
    pub(crate) deadlines: Arc<Deadlines>,
}

/// Why no stateless session could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Full {
    /// The gateway holds as many sessions as it may.
    All,
    /// This client token holds as many as one client may.
    Token(usize),
}

impl Sessions {
    /// The table, to add a session under limits checked with the lock held.
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// The stateless session of `token` on `route`, made (within the limits, counted and
    /// added under one lock) when it has none.
    pub(crate) fn stateless(
        &self,
        token: &str,
        route: &Route,
        limits: (usize, usize),
        make: impl FnOnce() -> Arc<Session>,
    ) -> Result<Arc<Session>, Full> {
        let mut table = self.lock();
        let mine = || table.values().filter(|s| s.token_name == token);
        if let Some(s) = mine().find(|s| s.stateless && s.route == *route) {
            return Ok(s.clone());
        }
        let (all, per_token) = limits;
        if table.len() >= all {
            return Err(Full::All);
        }
        let held = mine().count();
        if held >= per_token {
            return Err(Full::Token(held));
        }
        let session = make();
        table.insert(session.id.clone(), session.clone());
        Ok(session)
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
