//! A session's upstream links: each server's started on first use (a stdio server's
//! process only with room under the per-server cap), restarted after it ends with the
//! client's `initialize` replayed (a server spoken to statelessly has no handshake), and
//! its events delivered to the session on the link's own reader task.
//!
//! Must never: start a server this client may not reach, start one for a closed session,
//! or hand a request to a link of another session.

use super::{LinkError, Route, Session, Speaks};
use crate::govern::{Outbound, OwnRequest};
use crate::message::Envelope;
use crate::upstream::{self, UpstreamEvent, UpstreamLink};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

impl Session {
    /// The live connection to `server`, starting (or restarting) it when needed.
    pub(crate) async fn link(&self, server: &str) -> Result<UpstreamLink, LinkError> {
        let _starting = Starting::new(&self.starting);
        let unknown = || LinkError::UnknownServer { server: server.to_string() };
        let slot = self.links.get(server).ok_or_else(unknown)?;
        let mut slot = slot.lock().await;
        let alive = self.state().alive.get(server).copied().unwrap_or(false);
        if let (Some(link), true) = (slot.as_ref(), alive) {
            return Ok(link.clone());
        }
        let restart = slot.is_some();
        *slot = None;
        let closed = || LinkError::SessionClosed;
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        let servers = self.shared.servers();
        let config = servers.get(server).ok_or_else(unknown)?;
        // A server nothing of which this client may reach is not even started.
        if let Some(v) = self.shared.policy.load().server_gate(&config.info, &self.token_name, false) {
            return Err(LinkError::NotStarted { reason: v.reason, rule: v.rule });
        }
        let start = |source| LinkError::Start { server: server.to_string(), source };
        let limits = &self.shared.config.limits;
        // A stateless client's requests go as they are to a server that speaks 2026-07-28;
        // any other server gets one session of the gateway's, which they are translated onto.
        let modern = match self.stateless {
            true => upstream::connect_stateless(server, config, limits, self.sink(server)).await.map_err(start)?,
            false => None,
        };
        let speaks = if modern.is_some() { Speaks::Stateless } else { Speaks::Handshake };
        let link = match modern {
            Some(link) => link,
            None => {
                // A process only with room for it under the cap.
                let room = match &config.transport {
                    crate::config::Transport::Stdio { .. } => {
                        let table = self.table.upgrade().ok_or_else(closed)?;
                        let cap = limits.max_processes_per_server;
                        Some(table.process_slot(server, &self.token_name, cap).await?)
                    }
                    crate::config::Transport::Http { .. } => None,
                };
                if self.closed.load(Ordering::SeqCst) {
                    return Err(closed());
                }
                upstream::connect(server, config, limits, self.sink(server), room).await.map_err(start)?
            }
        };
        // Closed while it started: dropping the link ends the process.
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        {
            let mut st = self.state();
            st.alive.insert(server.to_string(), true);
            st.listings_stale();
            st.speaks.insert(server.to_string(), speaks);
        }
        let replay = self.state().init_params.clone();
        // A server spoken to statelessly has no handshake to replay.
        let handshake = speaks == Speaks::Handshake && (restart || self.route == Route::Aggregate || self.stateless);
        if let (true, Some(params)) = (handshake, replay) {
            let reply = self.handshake(server, &link, params).await?;
            if let Some(result) = reply.get("result").and_then(|r| serde_json::from_str(r.get()).ok()) {
                self.state().server_init.insert(server.to_string(), result);
            }
            if self.closed.load(Ordering::SeqCst) {
                return Err(closed());
            }
        }
        *slot = Some(link.clone());
        Ok(link)
    }

    /// Delivers one connection's events to this session, for as long as it lives, on the
    /// connection's own reader task.
    fn sink(&self, server: &str) -> upstream::EventSink {
        let me = self.me.clone();
        let server = server.to_string();
        std::sync::Arc::new(move |event| {
            let Some(session) = me.upgrade() else { return false };
            let _in_session = session.span.enter();
            match event {
                UpstreamEvent::Message(text) => session.on_upstream_message(&server, text),
                UpstreamEvent::Related { request, text } => session.on_related(&server, &request, text),
                UpstreamEvent::Closed(reason) => session.on_upstream_closed(&server, &reason),
            }
            true
        })
    }

    /// Runs `initialize` / `notifications/initialized` on a fresh connection on the
    /// client's behalf, with the client's own parameters.
    async fn handshake(&self, server: &str, link: &UpstreamLink, params: Value) -> Result<Envelope, LinkError> {
        let reply = self.internal_request(server, link, OwnRequest::Initialize, params).await?;
        if reply.get("error").is_some() {
            return Err(LinkError::InitializeRefused { server: server.to_string() });
        }
        link.send(Outbound::initialized()).await?;
        Ok(reply)
    }

    /// The connection to `server` if it is running now; never starts one (notifications
    /// and answers go only to servers that are up).
    pub(crate) fn live_link(&self, server: &str) -> Option<UpstreamLink> {
        if !self.state().alive.get(server).copied().unwrap_or(false) {
            return None;
        }
        self.links.get(server)?.try_lock().ok()?.clone()
    }
}

/// Counts an upstream start in progress for as long as it lives.
struct Starting<'a>(&'a AtomicUsize);

impl<'a> Starting<'a> {
    fn new(count: &'a AtomicUsize) -> Starting<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Starting(count)
    }
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
