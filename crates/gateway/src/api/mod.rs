//! The gateway's API: one [`Gateway`] handle through which every front end (the control
//! API the CLI calls, the desktop app's commands and notifications, the tray) reads and
//! changes a running gateway. Each control action is implemented once, here, and each one
//! that changes what is let through is audited.
//!
//! The state behind it ([`crate::shared::Shared`]) is private to the crate: a front end
//! never writes a field directly, so no front end can skip a check or a record another
//! one makes. Nothing here decides a call; that is `govern`'s job.

mod answer;
mod views;

pub use answer::{AnswerRequest, ControlError, Verdict};
pub use views::{
    ActivityFilter, BundleView, CredentialView, GrantsView, HubEnrollment, LayersView, PolicyView, ProcessGauge,
    ServerSummary, ServerView, SessionView, Status, ToolView, TransportKind, UserLayerView,
};

use crate::approver::Prompt;
use crate::config::Transport;
use crate::home::Home;
use crate::session::{self, Route, Sessions};
use crate::shared::{PolicyEvent, Shared};
use countersign_policy::{ClassSource, Grant, GrantLength, Policy, ToolClass, ToolDef, ToolState};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A running gateway, as its front ends see it. Cheap to clone; usable from any thread
/// (work that needs the gateway's runtime is spawned on it).
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
    sessions: Arc<Sessions>,
    listen: SocketAddr,
}

impl Gateway {
    pub(crate) fn new(shared: Arc<Shared>, sessions: Arc<Sessions>, listen: SocketAddr) -> Self {
        Gateway { shared, sessions, listen }
    }

    /// The loopback address it serves MCP on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    pub fn home(&self) -> &Home {
        &self.shared.home
    }

    /// The config file it runs with, if any.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.shared.config.path.clone()
    }

    /// The policy in force now (a snapshot: a reload swaps in a new one).
    pub fn policy(&self) -> Arc<Policy> {
        self.shared.policy.load_full()
    }

    pub fn paused(&self) -> bool {
        self.shared.paused.load(Ordering::SeqCst)
    }

    pub fn routing_warning(&self) -> Option<String> {
        self.shared.routing_warning.lock().ok().and_then(|w| w.clone())
    }

    pub fn hub_warning(&self) -> Option<String> {
        self.shared.hub_warning.lock().ok().and_then(|w| w.clone())
    }

    pub fn policy_warning(&self) -> Option<String> {
        self.shared.bundles.warning()
    }

    /// Whether this device is enrolled with a hub, and which.
    pub fn hub(&self) -> HubEnrollment {
        hub_enrollment(&self.shared.home)
    }

    /// The names of the servers in force now.
    pub fn server_names(&self) -> Vec<String> {
        self.shared.servers().keys().cloned().collect()
    }

    pub fn status(&self) -> Status {
        let shared = &self.shared;
        let sessions = self
            .sessions
            .all()
            .iter()
            .map(|s| {
                let (client_name, client_version) = s.client();
                SessionView {
                    id: session::short(&s.id).to_string(),
                    client: s.token_name.clone(),
                    client_name,
                    client_version,
                    route: match &s.route {
                        Route::Single(x) => format!("/mcp/{x}"),
                        Route::Aggregate => "/mcp".into(),
                    },
                    pending: s.pending_count(),
                    idle_secs: s.idle_for().as_secs(),
                }
            })
            .collect();
        let servers = shared
            .servers()
            .iter()
            .map(|(name, s)| ServerSummary {
                name: name.clone(),
                transport: transport(&s.transport),
                trusted: s.trusted(),
            })
            .collect();
        let policy = shared.policy.load();
        Status {
            pid: std::process::id(),
            listen: self.listen.to_string(),
            config: shared.config.path.as_ref().map(|p| p.display().to_string()),
            paused: self.paused(),
            policy_version: policy.version().to_string(),
            policy_warning: self.policy_warning(),
            routing_warning: self.routing_warning(),
            hub_warning: self.hub_warning(),
            identity: shared.who.load().shown(),
            grant_lengths: policy.grant_settings().0.lengths.clone(),
            blocked_tools: shared.pins.lock().map(|p| p.report()).unwrap_or_default(),
            servers,
            processes: self.processes(),
            sessions,
            approvals: shared.approver.pending(),
            tasks: shared.runtime.metrics().num_alive_tasks(),
            hub: self.hub(),
        }
    }

    /// Live upstream processes per server against the cap: every configured stdio server
    /// (none running shows 0), and any other server that still runs some.
    pub fn processes(&self) -> Vec<ProcessGauge> {
        let cap = self.shared.config.limits.max_processes_per_server;
        let mut live = self.sessions.processes.live();
        let mut gauges: Vec<ProcessGauge> = self
            .shared
            .servers()
            .iter()
            .filter(|(_, s)| matches!(s.transport, Transport::Stdio { .. }))
            .map(|(name, _)| ProcessGauge { server: name.clone(), live: live.remove(name).unwrap_or(0), cap })
            .collect();
        gauges.extend(live.into_iter().map(|(server, live)| ProcessGauge { server, live, cap }));
        gauges
    }

    /// The prompts waiting for a person.
    pub fn pending(&self) -> Vec<Prompt> {
        self.shared.approver.pending()
    }

    /// Answers prompt `id`, if the policy in force allows the answer (its grant length,
    /// its condition) and the approver takes it (the desktop approver takes only answers
    /// bound to what it showed).
    pub fn answer(&self, id: &str, mut request: AnswerRequest) -> Result<(), ControlError> {
        let plain = request.length == GrantLength::Once && request.condition.is_none() && !request.similar;
        if request.verdict == answer::Verdict::Allow && !(plain && request.count <= 1) {
            // A plan is granted as shown, item by item, for its session: nothing an answer
            // adds (a length, a condition, a similar scope, other waiting plans) applies.
            if self.pending().iter().any(|p| p.id == id && p.plan.is_some()) {
                return Err(ControlError::BadRequest(
                    "a session plan is approved as it is shown, for its session: approve it with no length, \
                     condition, similar scope or count"
                        .into(),
                ));
            }
        }
        if request.similar && request.verdict == answer::Verdict::Allow {
            let prompt = self.pending().into_iter().find(|p| p.id == id);
            let Some(prompt) = prompt else {
                return match self.shared.approvals.gone(id) {
                    Some(why) => Err(ControlError::Gone { id: id.to_string(), why }),
                    None => Err(crate::approver::AnswerError::Unknown(id.to_string()).into()),
                };
            };
            let Some(offer) = &prompt.similar else {
                return Err(ControlError::BadRequest(format!(
                    "no \"allow similar\" grant is offered for `{}` (approve it once or for a while instead)",
                    prompt.tool
                )));
            };
            request.length = offer.length;
            request.condition = None;
        }
        let (answer, binding) = request.checked(&self.shared.policy.load())?;
        match self.shared.approver.answer(id, binding.as_ref(), answer) {
            Ok(()) => Ok(()),
            Err(crate::approver::AnswerError::Unknown(_)) if self.shared.approvals.gone(id).is_some() => {
                Err(ControlError::Gone { id: id.to_string(), why: self.shared.approvals.gone(id).unwrap_or("gone") })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The grants in force (expired ones are dropped).
    pub fn grants(&self) -> Vec<Grant> {
        self.shared.grants.lock().map(|mut g| g.list(crate::clock::now_ms())).unwrap_or_default()
    }

    /// Revokes grant `id`; audited.
    pub fn revoke_grant(&self, id: &str) -> Result<(), ControlError> {
        let revoked = self.shared.grants.lock().is_ok_and(|mut g| g.revoke(id));
        if !revoked {
            return Err(ControlError::NotFound(format!("no grant `{id}`")));
        }
        tracing::info!(grant = %id, "grant revoked");
        self.shared.policy_event(PolicyEvent {
            decision: countersign_audit::Decision::Deny,
            rule: "grant-revoked",
            reason: format!("grant {id} revoked"),
            server: None,
            tool: None,
        });
        Ok(())
    }

    /// Accepts `tools` of `server` as listed now (none: every tool), so pinned calls run
    /// again; audited. How many were accepted.
    pub fn accept_pins(&self, server: &str, tools: &[String]) -> Result<usize, ControlError> {
        let accepted = self
            .shared
            .pins
            .lock()
            .map_err(|_| ControlError::Unavailable("the pin store is unavailable".into()))?
            .accept(server, tools)
            .map_err(ControlError::NotFound)?;
        tracing::info!(server, accepted, "tools accepted and pinned");
        let what = if tools.is_empty() { "every tool".to_string() } else { tools.join(", ") };
        self.shared.policy_event(PolicyEvent {
            decision: countersign_audit::Decision::Allow,
            rule: "pins-accepted",
            reason: format!("accepted {what} as listed now"),
            server: Some(server.to_string()),
            tool: (tools.len() == 1).then(|| tools[0].clone()),
        });
        Ok(accepted)
    }

    /// The kill switch: while paused every tool call is refused. Each change is audited;
    /// whether it changed anything.
    pub fn set_paused(&self, paused: bool) -> bool {
        let was = self.shared.paused.swap(paused, Ordering::SeqCst);
        if was == paused {
            return false;
        }
        tracing::info!(paused, "kill switch");
        self.shared.policy_event(PolicyEvent {
            decision: if paused { countersign_audit::Decision::Deny } else { countersign_audit::Decision::Allow },
            rule: "paused",
            reason: if paused { "AI tool access paused by the user".into() } else { "AI tool access resumed".into() },
            server: None,
            tool: None,
        });
        true
    }

    /// Reads every policy layer and the server list again now; the version in force.
    pub fn reload_policy(&self) -> String {
        crate::policy_watch::reload(&self.shared);
        self.shared.policy.load().version().to_string()
    }

    /// Asks the gateway to stop cleanly (sessions closed, upstreams stopped, outcomes
    /// flushed), so another front end can take over its port.
    pub fn shutdown(&self) {
        self.shared.shutdown.notify_one();
    }

    /// The servers in force now, each with its tools as last listed and how policy
    /// classifies them.
    pub fn servers(&self) -> Vec<ServerView> {
        let shared = &self.shared;
        let policy = shared.policy.load();
        let user = &policy.layers().user.classify;
        let pins = shared.pins.lock().unwrap_or_else(|p| p.into_inner());
        shared
            .servers()
            .iter()
            .map(|(name, s)| {
                let tools = pins
                    .listing(name)
                    .into_iter()
                    .filter_map(|(json, review)| {
                        let def = ToolDef::from_json(&json)?;
                        let c = policy.classify(&s.info, &def.name, Some(&def));
                        let (state, detail) = match review {
                            Some(ToolState::Changed { diff }) => ("changed", diff),
                            Some(ToolState::Quarantined { why }) => ("quarantined", why),
                            _ => ("pinned", Vec::new()),
                        };
                        let exact = format!("mcp__{name}__{}", def.name);
                        Some(ToolView {
                            locked: (c.source == ClassSource::Managed).then(|| c.reason.clone()),
                            user_class: user.get(&exact).map(|o| o.class().to_string()),
                            name: def.name,
                            class: c.class.to_string(),
                            source: c.source.as_str().to_string(),
                            reason: c.reason,
                            label: c.label,
                            state: state.to_string(),
                            detail,
                        })
                    })
                    .collect();
                ServerView {
                    name: name.clone(),
                    transport: transport(&s.transport),
                    trusted: s.trusted(),
                    catalog: s.info.catalog.clone(),
                    tools,
                }
            })
            .collect()
    }

    /// The policy in force, layer by layer.
    pub fn policy_view(&self) -> PolicyView {
        let policy = self.shared.policy.load();
        let layers = policy.layers();
        let (settings, layer) = policy.grant_settings();
        PolicyView {
            policy_version: policy.version().to_string(),
            layers: LayersView {
                bundle: layers.bundle.as_ref().map(|(p, v)| BundleView { version: *v, policy: p.clone() }),
                managed: layers.managed.clone(),
                user: UserLayerView { policy: layers.user.clone() },
            },
            grants: GrantsView { layer, settings: settings.clone() },
        }
    }

    /// Makes a tool stricter in the user's own policy (`[policy.classify]` in the config
    /// file), or removes that override (`None`); the engine never lets it loosen anything,
    /// and a class managed policy sets cannot be changed here. Reloads the policy.
    pub fn set_tool_class(&self, server: &str, tool: &str, class: Option<&str>) -> Result<(), ControlError> {
        let path = self.config_path().ok_or_else(|| {
            ControlError::Unavailable("Countersign runs without a config file, so there is nowhere to keep this".into())
        })?;
        let class = class
            .map(|c| ToolClass::parse(c).ok_or_else(|| ControlError::BadRequest(format!("`{c}` is not a class"))))
            .transpose()?;
        let info = self
            .shared
            .servers()
            .get(server)
            .map(|s| s.info.clone())
            .ok_or_else(|| ControlError::NotFound(format!("no server `{server}`")))?;
        if self.shared.policy.load().classify(&info, tool, None).source == ClassSource::Managed {
            return Err(ControlError::Forbidden("IT's managed policy sets this tool's class".into()));
        }
        crate::config_edit::set_class_override(&path, &format!("mcp__{server}__{tool}"), class)
            .map_err(|e| ControlError::Unavailable(e.to_string()))?;
        crate::policy_watch::reload(&self.shared);
        Ok(())
    }

    /// Credentials written in plain text in the config file (`servers.X.env.KEY`).
    pub fn plaintext_secrets(&self) -> Vec<String> {
        self.config_path()
            .and_then(|p| crate::secret_import::find(&p).ok())
            .map(|found| found.iter().map(|f| f.field()).collect())
            .unwrap_or_default()
    }

    /// Moves every credential written in plain text in the config into the keychain,
    /// leaving references; how many moved.
    pub async fn import_secrets(&self) -> Result<usize, ControlError> {
        let path = self
            .config_path()
            .ok_or_else(|| ControlError::Unavailable("Countersign runs without a config file".into()))?;
        let moved = crate::secret_import::import(&path, |_| true)
            .await
            .map_err(|e| ControlError::Unavailable(e.to_string()))?;
        Ok(moved.len())
    }

    /// The newest records first (at most 500), filtered by the journal's own query.
    pub async fn activity(&self, filter: ActivityFilter) -> Result<Vec<serde_json::Value>, ControlError> {
        let filters: Vec<(&'static str, String)> = [
            ("client", filter.client),
            ("server", filter.server),
            ("tool", filter.tool),
            ("decision", filter.decision),
        ]
        .into_iter()
        .filter_map(|(column, value)| value.filter(|v| !v.is_empty()).map(|v| (column, v)))
        .collect();
        let filters: Vec<(&str, &str)> = filters.iter().map(|(c, v)| (*c, v.as_str())).collect();
        self.shared.journal.reader().recent(500, &filters).await.map_err(|e| ControlError::Unavailable(e.to_string()))
    }

    /// Each remote server's credentials: signed in (until when, by which authorization
    /// server), needing a sign-in, or a keychain problem. Never a token.
    pub async fn credentials(&self) -> Vec<CredentialView> {
        use countersign_vault::oauth::{login, CredentialState, ServerAuth};
        let mut out = Vec::new();
        for (name, s) in self.shared.servers().iter() {
            let Transport::Http { url, .. } = &s.transport else { continue };
            let state = ServerAuth::new(name, url).state().await;
            let asks_for_sign_in = matches!(state, CredentialState::None) && login::asks_for_sign_in(url).await;
            out.push(CredentialView { server: name.clone(), url: url.clone(), state, asks_for_sign_in });
        }
        out
    }

    /// Signs in to remote server `server`: the browser opens (through the OS, never a
    /// shell) and the sign-in comes back to a loopback listener; the tokens go to the
    /// keychain. Audited.
    pub async fn sign_in(&self, server: &str) -> Result<String, ControlError> {
        use countersign_vault::oauth;
        let Some(Transport::Http { url, oauth: settings, .. }) =
            self.shared.servers().get(server).map(|s| s.transport.clone())
        else {
            return Err(ControlError::NotFound(format!("`{server}` is not a remote server")));
        };
        let keychain =
            countersign_vault::Keychain::open().await.map_err(|e| ControlError::Unavailable(e.to_string()))?;
        if let Some(e) = crate::credentials::enterprise(&settings).await.map_err(ControlError::Unavailable)? {
            return self.enterprise_sign_in(server, &url, e, keychain).await;
        }
        let request = oauth::SignInRequest {
            server: server.to_string(),
            url,
            scopes: settings.scopes,
            client_id: settings.client_id,
            deadline: None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<url::Url>();
        let flow = oauth::sign_in(&request, keychain, move |u| {
            let _ = tx.send(u.clone());
            Ok(())
        });
        let opener = async move {
            match rx.await {
                Ok(u) => oauth::browser::open(&u).await,
                Err(_) => Ok(()),
            }
        };
        let (done, opened) = tokio::join!(flow, opener);
        opened.map_err(|e| ControlError::Unavailable(format!("cannot open the browser: {e}")))?;
        let done = done.map_err(|e| ControlError::Unavailable(e.to_string()))?;
        self.shared.policy_event(PolicyEvent {
            decision: countersign_audit::Decision::Allow,
            rule: "sign-in",
            reason: format!("signed in{}", done.issuer.map(|i| format!(" with {i}")).unwrap_or_default()),
            server: Some(server.to_string()),
            tool: None,
        });
        Ok(format!("Signed in to {server}"))
    }

    /// A server reached with the person's IdP sign-in: that sign-in in the browser when none
    /// usable is kept, then the token exchange (no consent screen for the server). Audited.
    async fn enterprise_sign_in(
        &self,
        server: &str,
        url: &str,
        e: countersign_vault::oauth::Enterprise,
        keychain: countersign_vault::Keychain,
    ) -> Result<String, ControlError> {
        use countersign_vault::oauth::{self, enterprise};
        let open = |u: url::Url| async move { oauth::browser::open(&u).await };
        let got = enterprise::sign_in_then_obtain(server, url, &e, keychain, open)
            .await
            .map_err(|e| ControlError::Unavailable(e.to_string()))?
            .obtained;
        self.shared.policy_event(PolicyEvent {
            decision: countersign_audit::Decision::Allow,
            rule: "sign-in",
            reason: format!(
                "signed in with the company sign-in (enterprise-managed){}",
                got.issuer.map(|i| format!(" with {i}")).unwrap_or_default()
            ),
            server: Some(server.to_string()),
            tool: None,
        });
        Ok(format!("Signed in to {server}"))
    }

    /// Signs out of a remote server: its tokens are revoked and removed from the keychain.
    /// Audited; how many tokens were revoked.
    pub async fn sign_out(&self, server: &str) -> Result<usize, ControlError> {
        let keychain =
            countersign_vault::Keychain::open().await.map_err(|e| ControlError::Unavailable(e.to_string()))?;
        let out = countersign_vault::oauth::sign_out(server, keychain)
            .await
            .map_err(|e| ControlError::Unavailable(e.to_string()))?;
        self.shared.policy_event(PolicyEvent {
            decision: countersign_audit::Decision::Allow,
            rule: "sign-out",
            reason: format!("signed out, {} token(s) revoked", out.revoked),
            server: Some(server.to_string()),
            tool: None,
        });
        Ok(out.revoked)
    }
}

/// Whether the data directory `home` is enrolled with a hub (running gateway or not).
pub fn hub_enrollment(home: &Home) -> HubEnrollment {
    match crate::hub_sync::HubLink::load(home) {
        Some(link) => HubEnrollment::Enrolled { url: link.url, device_id: link.device_id },
        None => HubEnrollment::NotEnrolled,
    }
}

fn transport(t: &Transport) -> TransportKind {
    match t {
        Transport::Stdio { .. } => TransportKind::Stdio,
        Transport::Http { .. } => TransportKind::Http,
    }
}
