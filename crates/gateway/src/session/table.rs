//! The gateway's open sessions by id, the deadline sweeper's wake-up they share, and the
//! count of their upstream processes. The HTTP face adds and finds sessions here, the
//! reaper and shutdown close them, the API lists them. Removing a session ends the grants
//! that lasted only as long as it.
//!
//! It also makes room under `[limits] max_processes_per_server`: when a stdio server runs
//! as many processes as the cap allows, starting one more closes one idle session that
//! runs one, exactly as the idle reaper closes a session, and waits for that process to
//! be reaped. Sessions whose client is not even listening go first, then the starting
//! client's own, then the least recently used (see [`eviction_choice`]). It never closes
//! a busy session (a request in flight, a call waiting for a person, an upstream
//! starting), never holds its lock across an await or while a session does work, and
//! never starts or kills a process itself.
//!
//! Stateless sessions (one per client token and route, see `stateless.rs`) are kept here
//! too, counted against the same limits, and found only by their token and route, never
//! by an id a client sends.

use super::{Deadlines, LinkError, Route, Session};
use crate::upstream::{ProcessSlot, Processes};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a start may wait for its turn and for a closed session's process to end.
const ROOM_WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct Sessions {
    table: Mutex<HashMap<String, Arc<Session>>>,
    pub(crate) deadlines: Arc<Deadlines>,
    pub(crate) processes: Arc<Processes>,
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

    /// Forgets a session and closes it (its upstreams stop): how the idle reaper, a
    /// client's DELETE and making room end one. Its client's next request gets 404.
    pub(crate) fn close(&self, id: &str) -> Option<Arc<Session>> {
        let removed = self.remove(id)?;
        removed.close();
        Some(removed)
    }

    /// Takes every session out (the gateway is stopping).
    pub(crate) fn drain(&self) -> Vec<Arc<Session>> {
        self.lock().drain().map(|(_, s)| s).collect()
    }

    /// Room for one more process of stdio server `server`, for a session of client
    /// `token`. At the cap, one idle session running `server` is closed (see
    /// [`eviction_choice`]) and its process waited for; when none is idle, or its process
    /// does not end in time, the start is refused.
    pub(crate) async fn process_slot(&self, server: &str, token: &str, cap: usize) -> Result<ProcessSlot, LinkError> {
        let no_room = || LinkError::NoRoom { server: server.to_string(), cap, secs: ROOM_WAIT.as_secs() };
        let deadline = tokio::time::Instant::now() + ROOM_WAIT;
        let turn = self.processes.turn(server);
        let _turn = tokio::time::timeout_at(deadline, turn.lock()).await.map_err(|_| no_room())?;
        let mut closed_one = false;
        loop {
            let freed = self.processes.freed();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.processes.try_take(server, cap) {
                return Ok(slot);
            }
            // One session closed per start: its process ending makes the room. Others'
            // starts wait for their turn, so none closes a second session for that room.
            if !closed_one {
                self.make_room(server, token, cap)?;
                closed_one = true;
            }
            tokio::time::timeout_at(deadline, freed).await.map_err(|_| no_room())?;
        }
    }

    /// Closes the session [`eviction_choice`] picks among those running `server`.
    fn make_room(&self, server: &str, token: &str, cap: usize) -> Result<(), LinkError> {
        let at_cap = || LinkError::AtCap { server: server.to_string(), cap };
        let sessions = self.all();
        let candidates: Vec<Candidate<'_>> = sessions
            .iter()
            .filter(|s| s.runs(server))
            .map(|s| Candidate {
                id: &s.id,
                token: &s.token_name,
                last_used: s.last_used(),
                busy: s.busy(),
                listening: s.listening(),
                steady: s.requests() >= STEADY_REQUESTS && s.last_used().elapsed() < STEADY_WITHIN,
                opening: s.requests() < OPENED_AFTER && s.last_used().elapsed() < STEADY_WITHIN,
            })
            .collect();
        let victim = eviction_choice(&candidates, token).ok_or_else(|| {
            tracing::warn!(server, cap, "refused to start another process: every session running one is busy");
            at_cap()
        })?;
        // Looked at again just before it goes: a request may have arrived meanwhile.
        let victim = sessions.iter().find(|s| s.id == victim).filter(|s| !s.busy()).ok_or_else(at_cap)?;
        let idle = victim.last_used().elapsed().as_secs();
        if self.close(&victim.id).is_some() {
            tracing::info!(
                session = %super::short(&victim.id),
                server,
                cap,
                idle_secs = idle,
                "closed the least recently used idle session to make room under limits.max_processes_per_server"
            );
        }
        Ok(())
    }
}

/// A session running a process of a server at its cap, as [`eviction_choice`] sees it.
#[derive(Debug, Clone)]
pub(crate) struct Candidate<'a> {
    pub id: &'a str,
    /// The client token that opened it.
    pub token: &'a str,
    /// When its client last sent it something.
    pub last_used: Instant,
    /// In use: never chosen.
    pub busy: bool,
    /// Its client holds a GET stream open.
    pub listening: bool,
    /// In steady use: many requests, the last one recent. Between two of its requests it
    /// is idle for a moment; sessions opened and left are closed before it.
    pub steady: bool,
    /// Still opening: its client has not yet got past the handshake and a first request
    /// (it is between two of them, not gone).
    pub opening: bool,
}

/// Messages of a session's opening: `initialize`, `notifications/initialized`, a first request.
pub(crate) const OPENED_AFTER: u64 = 3;

/// A session with this many requests, the last within [`STEADY_WITHIN`], is in steady use.
pub(crate) const STEADY_REQUESTS: u64 = 10;
pub(crate) const STEADY_WITHIN: Duration = Duration::from_secs(60);

/// Which session to close to make room for a process started by client `token`, among
/// the idle ones: first those whose client is not listening (no connection open: it may
/// be gone), then the starting client's own before any other client's (so one client
/// opening sessions does not push out another's while it has its own to give up), then
/// those not in steady use and not still opening (a session in use, or being opened, is
/// idle between two requests only for a moment), then the least recently used. None when every candidate is busy.
pub(crate) fn eviction_choice<'a>(candidates: &[Candidate<'a>], token: &str) -> Option<&'a str> {
    candidates
        .iter()
        .filter(|c| !c.busy)
        .min_by_key(|c| (c.listening, c.token != token, c.steady, c.opening, c.last_used, c.id))
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle candidate: not busy, nobody listening, neither in steady use nor opening.
    fn idle<'a>(id: &'a str, token: &'a str, last_used: Instant) -> Candidate<'a> {
        Candidate { id, token, last_used, busy: false, listening: false, steady: false, opening: false }
    }

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    #[test]
    fn the_least_recently_used_idle_session_is_chosen() {
        let t = Instant::now();
        let c = [idle("b", "cli", at(t, 20)), idle("a", "cli", at(t, 10)), idle("c", "cli", at(t, 30))];
        assert_eq!(eviction_choice(&c, "cli"), Some("a"));
    }

    #[test]
    fn a_session_in_steady_use_goes_after_sessions_opened_and_left() {
        let t = Instant::now();
        let c = [Candidate { steady: true, ..idle("kept", "cli", at(t, 1)) }, idle("left", "cli", at(t, 9))];
        assert_eq!(eviction_choice(&c, "cli"), Some("left"), "the older one is in steady use");
        let only = [Candidate { steady: true, ..idle("kept", "cli", t) }];
        assert_eq!(eviction_choice(&only, "cli"), Some("kept"), "still closed when nothing else can be");
        let opening = [Candidate { opening: true, ..idle("new", "cli", at(t, 1)) }, idle("done", "cli", at(t, 9))];
        assert_eq!(
            eviction_choice(&opening, "cli"),
            Some("done"),
            "a session between its handshake and first call stays"
        );
    }

    #[test]
    fn a_busy_session_is_never_chosen_however_old() {
        let t = Instant::now();
        let c = [Candidate { busy: true, ..idle("old-busy", "cli", at(t, 1)) }, idle("newer", "cli", at(t, 50))];
        assert_eq!(eviction_choice(&c, "cli"), Some("newer"));
        let all_busy = [Candidate { busy: true, ..idle("x", "cli", t) }];
        assert_eq!(eviction_choice(&all_busy, "cli"), None);
        assert_eq!(eviction_choice(&[], "cli"), None);
    }

    #[test]
    fn the_starting_clients_own_sessions_go_before_anothers() {
        let t = Instant::now();
        let c = [
            idle("theirs", "claude", at(t, 1)),
            idle("mine-new", "runner", at(t, 40)),
            idle("mine-old", "runner", at(t, 30)),
        ];
        assert_eq!(eviction_choice(&c, "runner"), Some("mine-old"));
        // With none of its own idle, another client's least recently used goes.
        let c = [
            idle("theirs-new", "claude", at(t, 9)),
            idle("theirs-old", "claude", at(t, 5)),
            Candidate { busy: true, ..idle("mine", "runner", at(t, 1)) },
        ];
        assert_eq!(eviction_choice(&c, "runner"), Some("theirs-old"));
    }

    #[test]
    fn a_session_nobody_listens_to_goes_before_a_listening_one() {
        let t = Instant::now();
        let c = [
            Candidate { listening: true, ..idle("listening-old", "runner", at(t, 1)) },
            idle("gone-theirs", "claude", at(t, 50)),
        ];
        assert_eq!(eviction_choice(&c, "runner"), Some("gone-theirs"));
        // Only listening ones left: still the own least recently used first; a listening
        // session is idle, not busy, and can be closed.
        let c = [
            Candidate { listening: true, ..idle("theirs", "claude", at(t, 1)) },
            Candidate { listening: true, ..idle("mine-new", "runner", at(t, 9)) },
            Candidate { listening: true, ..idle("mine-old", "runner", at(t, 5)) },
            Candidate { busy: true, listening: true, ..idle("mine-busy", "runner", at(t, 2)) },
        ];
        assert_eq!(eviction_choice(&c, "runner"), Some("mine-old"));
    }

    #[test]
    fn equal_last_use_is_broken_by_id_so_the_choice_is_stable() {
        let t = Instant::now();
        let c = [idle("q", "cli", t), idle("p", "cli", t)];
        assert_eq!(eviction_choice(&c, "cli"), Some("p"));
    }
}
