//! Starting and stopping a gateway: open the journal, compile the policy, bind the
//! loopback listener and the shim socket, publish where it listens, and on shutdown close
//! every session (which ends every upstream process), remove the shim socket and
//! withdraw that notice.

use crate::approver::{Approver, HeadlessApprover};
use crate::config::Config;
use crate::front_door::Face;
use crate::home::{Home, HomeError, RuntimeInfo};
use crate::http_face;
use crate::pins::PinStore;
use crate::shared::Shared;
use crate::tokens::TokenStore;
use countersign_audit::{Journal, JournalError, JournalOptions, Redactor};
use countersign_policy::GrantBook;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("policy: {0}")]
    Policy(String),
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind { addr: SocketAddr, source: std::io::Error, hint: String },
    #[error("the gateway stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// A gateway that is listening.
pub struct Running {
    pub listen: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    pub(crate) sessions: Arc<crate::session::Sessions>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    home: Home,
    /// The shim socket, when it could be opened (dropping it closes and removes it).
    shim_socket: Option<crate::shim_socket::ShimSocket>,
    _policy_watch: Option<crate::policy_watch::PolicyWatch>,
}

impl Running {
    /// The handle every front end uses to read and change this gateway.
    pub fn gateway(&self) -> crate::api::Gateway {
        crate::api::Gateway::new(self.shared.clone(), self.sessions.clone(), self.listen)
    }

    /// Serves until `shutdown` resolves, then closes every session.
    pub async fn until(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), ServeError> {
        let mut server = self.server;
        let asked = self.shared.clone();
        tokio::select! {
            result = &mut server => { result.map_err(std::io::Error::other)??; }
            () = shutdown => { server.abort(); }
            () = asked.shutdown.notified() => {
                tracing::info!("stopping: asked to through the control API");
                server.abort();
            }
        }
        drop(self.shim_socket);
        for session in self.sessions.drain() {
            session.close();
        }
        self.shared.journal.flush_outcomes();
        self.home.clear_runtime(std::process::id());
        Ok(())
    }
}

/// Starts a gateway with the headless approver.
pub async fn start(config: Config, home: Home) -> Result<Running, ServeError> {
    start_with(config, home, Arc::new(HeadlessApprover::default())).await
}

pub async fn start_with(config: Config, home: Home, approver: Arc<dyn Approver>) -> Result<Running, ServeError> {
    crate::policy_layers::prepare(&home);
    let bundles = Arc::new(crate::managed_bundle::BundleKeeper::default());
    let (policy, rejected) = crate::policy_layers::compile_with(&config.policy, &home, &bundles)
        .map_err(|e| ServeError::Policy(e.to_string()))?;
    for e in rejected {
        tracing::error!("policy layer rejected, the last good one stays: {e}");
    }
    let pins = PinStore::open(&home).map_err(|e| ServeError::Policy(e.to_string()))?;
    let journal = Journal::open(
        &home.journal_path(),
        JournalOptions { synchronous: config.audit.synchronous, ..JournalOptions::default() },
    )
    .await?;
    let addr = config.gateway.listen;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| {
        let hint = if source.kind() == std::io::ErrorKind::AddrInUse {
            " (another Countersign gateway may be running: try `countersign status`)".to_string()
        } else {
            String::new()
        };
        ServeError::Bind { addr, source, hint }
    })?;
    let listen = listener.local_addr()?;
    // Prompts policy routes elsewhere go through the hub; the rest to the given approver.
    let approver: Arc<dyn Approver> = {
        let here = home.clone();
        let person_here = Arc::new(move || {
            countersign_sync::hub_sync::HubLink::load(&here)
                .is_none_or(|l| l.agent.as_deref().is_none_or(str::is_empty))
        });
        Arc::new(crate::routed::RoutingApprover::new(approver, home.clone(), person_here))
    };
    let shared = Arc::new(Shared {
        redactor: Redactor::new(home.redaction_salt()?.as_bytes()),
        tokens: TokenStore::open(&home),
        control_token: home.control_token()?,
        who: arc_swap::ArcSwap::from_pointee(crate::who::Who::of(&home)),
        device: home.device_id()?,
        servers: arc_swap::ArcSwap::from_pointee(config.servers.clone()),
        routing_warning: Mutex::new(None),
        hub_warning: Mutex::new(None),
        asked_here: Default::default(),
        bundles,
        config,
        policy: arc_swap::ArcSwap::from_pointee(policy),
        grants: Mutex::new(GrantBook::default()),
        pins: Mutex::new(pins),
        approvals: crate::govern::approvals::Approvals::new(approver.clone()),
        paused: Default::default(),
        runtime: tokio::runtime::Handle::current(),
        shutdown: Default::default(),
        home: home.clone(),
        journal,
        approver,
    });
    // Calls the last stop cut short get their outcome (`unknown`) before anything new is
    // recorded, and the start itself is a record, so `audit verify` can tell a removed
    // outcome from a call in flight. A journal that cannot take this serves nothing.
    let mut start = shared.record(countersign_audit::RecordKind::Policy, countersign_audit::Decision::Allow);
    start.policy_version = Some(shared.policy.load().version().to_string());
    match shared.journal.mark_start(start).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!("{n} call(s) cut short by the gateway's last stop are recorded as `unknown`"),
        Err(e) => return Err(e.into()),
    }
    let sessions = Arc::new(crate::session::Sessions::default());
    crate::session::spawn_sweeper(Arc::downgrade(&sessions));
    crate::policy_watch::announce_expiry(&shared);
    for p in shared.config.plaintext_secrets() {
        tracing::warn!(
            "servers.{}.{}.{} looks like a credential written in plain text; move it into the keychain with \
             `countersign secret import`",
            p.server,
            p.table,
            p.key
        );
    }
    tokio::spawn(crate::sign_ins::revoke_removed(shared.clone(), home.clone()));
    tokio::spawn(crate::hub_sync::run(Arc::downgrade(&shared), home.clone(), shared.config.sync.clone()));
    tokio::spawn(crate::hub_sync::run_policy(Arc::downgrade(&shared), home.clone()));
    tokio::spawn(countersign_sync::approvals_link::run_waiting(Arc::downgrade(&shared), home.clone()));
    tokio::spawn(countersign_sync::journal_upkeep::run(Arc::downgrade(&shared), home.clone()));
    tokio::spawn(crate::client_inventory::run(Arc::downgrade(&shared)));
    // Make sure the shim's token exists before any shim asks for it. Without a keychain
    // the HTTP face and the shim socket still serve; a shim that falls back to HTTP then
    // says why it cannot connect.
    if let Err(e) = TokenStore::shim_token(&home).await {
        tracing::warn!("the stdio shim cannot connect until this is fixed: {e}");
    }
    let face = Face { shared: shared.clone(), sessions: sessions.clone(), listen };
    // The shim's own door: without it `countersign connect` still works, over HTTP with its
    // token from the keychain.
    let shim_socket = match crate::shim_socket::open(face.clone()) {
        Ok(socket) => {
            tracing::info!("the stdio shim connects on {}", socket.place);
            Some(socket)
        }
        Err(e) => {
            tracing::warn!("no shim socket, so `countersign connect` uses HTTP and the keychain: {e}");
            None
        }
    };
    let config_file = shared.config.path.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    home.write_runtime(&RuntimeInfo { pid: std::process::id(), listen, config: config_file })?;

    let app = http_face::router(face);
    let limits = &shared.config.limits;
    let serving =
        crate::listener::serve(listener, app, limits.max_connections, Duration::from_secs(limits.read_timeout_secs));
    let server = tokio::spawn(async move {
        serving.await;
        Ok(())
    });
    // Sessions whose client went away without a DELETE are closed, and their upstream
    // processes stopped, once idle for `limits.session_idle_secs`.
    let idle_limit = Duration::from_secs(shared.config.limits.session_idle_secs);
    let reaper = Arc::downgrade(&sessions);
    tokio::spawn(async move {
        let mut every =
            tokio::time::interval((idle_limit / 2).clamp(Duration::from_millis(500), Duration::from_secs(60)));
        loop {
            every.tick().await;
            let Some(sessions) = reaper.upgrade() else { return };
            let idle: Vec<String> =
                sessions.all().iter().filter(|s| s.idle_for() > idle_limit).map(|s| s.id.clone()).collect();
            for id in idle {
                if sessions.close(&id).is_some() {
                    tracing::info!(session = %crate::session::short(&id), "closed an idle session");
                }
            }
        }
    });
    tracing::info!("Countersign gateway listening on http://{listen}/mcp");
    let _policy_watch = crate::policy_watch::start(&shared);
    Ok(Running { listen, shared, sessions, server, home, shim_socket, _policy_watch })
}
