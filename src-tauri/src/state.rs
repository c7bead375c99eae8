//! The app's state: the gateway it hosts (one per user), and starting it, or saying why
//! it could not start and taking over from a headless `countersign serve` cleanly when
//! asked. It never starts a second gateway beside a running one.

use crate::approvals::DesktopApprover;
use countersign_gateway::api::ControlError;
use countersign_gateway::{Gateway, ServeError};
use countersign_local::{Config, Home};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tauri::{AppHandle, Emitter, Runtime};

/// The gateway this app hosts, or why it does not run.
#[derive(Default)]
struct Hosted {
    gateway: Option<Gateway>,
    error: Option<String>,
}

pub struct AppState {
    pub approver: Arc<DesktopApprover>,
    pub home: Home,
    pub config: Config,
    hosted: Mutex<Hosted>,
}

impl AppState {
    pub fn new(approver: Arc<DesktopApprover>, home: Home, config: Config) -> Self {
        AppState { approver, home, config, hosted: Mutex::new(Hosted::default()) }
    }

    fn hosted(&self) -> std::sync::MutexGuard<'_, Hosted> {
        self.hosted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running gateway, if this app hosts one.
    pub fn gateway(&self) -> Option<Gateway> {
        self.hosted().gateway.clone()
    }

    /// The running gateway, or the error a command shows without one.
    pub fn running(&self) -> Result<Gateway, ControlError> {
        self.gateway().ok_or_else(|| ControlError::Unavailable("the gateway is not running".into()))
    }

    pub fn listen(&self) -> Option<SocketAddr> {
        self.hosted().gateway.as_ref().map(Gateway::listen)
    }

    pub fn gateway_error(&self) -> Option<String> {
        self.hosted().error.clone()
    }

    /// Whether another gateway already serves this user's data directory (it answers on
    /// the address its runtime file names): one gateway per user.
    async fn other_gateway(&self) -> Option<String> {
        let runtime = self.home.read_runtime()?;
        if runtime.pid == std::process::id() {
            return None;
        }
        // Only a gateway that proves it is this data folder's is one (a stale runtime file's
        // port may be anyone's; it gets no token).
        let link = countersign_local::gateway_link::GatewayLink::for_home(&self.home).ok()?;
        let answered = tokio::time::timeout(
            Duration::from_secs(2),
            link.control(reqwest::Method::GET, "/_countersign/status", None),
        )
        .await
        .is_ok_and(|r| r.is_ok_and(|(status, _)| status.is_success()));
        answered.then(|| {
            format!(
                "another Countersign gateway (pid {}) is running on {}; take over to run it here",
                runtime.pid, runtime.listen
            )
        })
    }

    /// Starts the gateway, or records why it cannot run (another one serves this user).
    pub async fn start_gateway<R: Runtime>(&self, app: &AppHandle<R>) {
        if let Some(other) = self.other_gateway().await {
            tracing::warn!("gateway not started: {other}");
            self.hosted().error = Some(other);
            let _ = app.emit("approvals-changed", ());
            return;
        }
        match countersign_gateway::start_with(self.config.clone(), self.home.clone(), self.approver.clone()).await {
            Ok(running) => {
                *self.hosted() = Hosted { gateway: Some(running.gateway()), error: None };
                tracing::info!("Countersign gateway on http://{}/mcp", running.listen);
                tauri::async_runtime::spawn(async move {
                    if let Err(e) = running.until(std::future::pending()).await {
                        tracing::error!("the gateway stopped: {e}");
                    }
                });
            }
            Err(e) => {
                let another = || {
                    let pid = self.home.read_runtime().map(|r| format!(" (pid {})", r.pid)).unwrap_or_default();
                    format!("another Countersign gateway is running{pid}; take over to run it here")
                };
                let text = match &e {
                    ServeError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => another(),
                    // The journal's lock: another gateway writes this data folder's journal.
                    ServeError::Journal(countersign_audit::JournalError::InUse { .. }) => another(),
                    other => other.to_string(),
                };
                tracing::error!("gateway not started: {text}");
                self.hosted().error = Some(text);
            }
        }
        let _ = app.emit("approvals-changed", ());
    }
}

/// Asks the gateway that holds the port to stop, waits until it did, and starts ours.
pub async fn take_over<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> anyhow::Result<()> {
    if state.gateway().is_some() {
        return Ok(());
    }
    let runtime = state.home.read_runtime().ok_or_else(|| anyhow::anyhow!("no running gateway is recorded"))?;
    let link = countersign_local::gateway_link::GatewayLink::for_home(&state.home)?;
    let (status, body) = link.control(reqwest::Method::POST, "/_countersign/shutdown", None).await?;
    if !status.is_success() {
        anyhow::bail!("the other gateway refused to stop: {}", String::from_utf8_lossy(&body).trim());
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(runtime.listen).is_ok() {
        if Instant::now() > deadline {
            anyhow::bail!("the other gateway did not stop within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state.start_gateway(app).await;
    match state.gateway_error() {
        Some(e) => anyhow::bail!(e),
        None => Ok(()),
    }
}
