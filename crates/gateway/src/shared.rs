//! What every session of one running gateway shares: configuration, the policy in force
//! (swapped whole when a layer changes), grants, pins, the journal, the approver, the
//! token store and who this user and device are. It knows nothing of sessions (the
//! session table is `session::Sessions`, which depends on this, never the reverse).

use crate::approver::Approver;
use crate::config::Config;
use crate::home::Home;
use crate::pins::PinStore;
use crate::tokens::TokenStore;
use countersign_audit::{Journal, OutcomeRecord, Record, Redactor};
use countersign_policy::{GrantBook, Policy};
use std::sync::{Arc, Mutex};

/// A change to the policy or to what it lets through, for the audit journal.
pub struct PolicyEvent {
    /// `allow` for something accepted, `deny` for something refused or blocked.
    pub decision: countersign_audit::Decision,
    /// `policy-reload`, `policy-layer`, `servers-reload`, `pin`, `quarantine`, `pins-accepted`, `sign-in`,
    /// `sign-out`.
    pub rule: &'static str,
    pub reason: String,
    pub server: Option<String>,
    pub tool: Option<String>,
}

pub struct Shared {
    /// The settings read at start. Its `servers` are those at start; the servers in force
    /// are [`Shared::servers`], which follow the file.
    pub config: Config,
    /// The configured upstream servers; a change to the config file swaps in the new set
    /// (sessions keep the connections they have).
    pub servers: arc_swap::ArcSwap<Servers>,
    pub home: Home,
    /// The policy in force; a reload swaps in a new one, calls in flight keep theirs.
    pub policy: arc_swap::ArcSwap<Policy>,
    pub grants: Mutex<GrantBook>,
    pub pins: Mutex<PinStore>,
    /// The runtime the gateway runs on, for work started from threads outside it.
    pub runtime: tokio::runtime::Handle,
    /// The kill switch: while set, every tool call is refused (and audited).
    pub paused: std::sync::atomic::AtomicBool,
    /// Asks the server to stop (the control API's shutdown, for a desktop app taking over).
    pub shutdown: tokio::sync::Notify,
    /// Calls waiting for a person, in front of the approver.
    pub approvals: crate::govern::approvals::Approvals,
    pub journal: Journal,
    pub redactor: Redactor,
    pub approver: Arc<dyn Approver>,
    /// Requests the hub routed to this device's person, shown here.
    pub asked_here: Arc<crate::routed_prompts::AskedHere>,
    pub tokens: TokenStore,
    pub control_token: String,
    /// Who acts through this gateway (the verified person, else the OS account).
    pub who: arc_swap::ArcSwap<crate::who::Who>,
    pub device: String,
    /// Set while policy requires AI clients to route through Countersign and some do not
    /// (or use servers off the allowed list): what the tray warns about.
    pub routing_warning: Mutex<Option<String>>,
    /// Set while the hub has revoked this device (its person deprovisioned): it syncs no
    /// more, and local policy stays in force.
    pub hub_warning: Mutex<Option<String>>,
    /// The managed bundle's last good copy (the rollback floor) and whether it expired.
    pub bundles: Arc<crate::managed_bundle::BundleKeeper>,
}

/// Upstream servers by name.
pub type Servers = std::collections::BTreeMap<String, crate::config::ServerConfig>;

impl Shared {
    /// The servers in force now.
    pub fn servers(&self) -> Arc<Servers> {
        self.servers.load_full()
    }

    /// A record for this user and device.
    pub fn record(&self, kind: countersign_audit::RecordKind, decision: countersign_audit::Decision) -> Record {
        let who = self.who.load();
        let mut record = Record::new(kind, &who.user, &self.device, decision);
        who.stamp(&mut record);
        record
    }

    /// Reads who acts through this gateway again (`hub.json`); a change is itself recorded.
    pub fn reload_who(self: &Arc<Self>) {
        let now = crate::who::Who::of(&self.home);
        if **self.who.load() != now {
            let reason = format!("records now name {}", now.shown());
            tracing::info!("{reason}");
            self.who.store(Arc::new(now));
            self.policy_event(PolicyEvent {
                decision: countersign_audit::Decision::Allow,
                rule: "identity",
                reason,
                server: None,
                tool: None,
            });
        }
    }

    /// Records an event of the policy itself (a layer loaded or refused, a tool blocked or
    /// accepted) with the policy version in force, so IT sees it beside the calls.
    pub fn policy_event(self: &Arc<Self>, event: PolicyEvent) {
        let mut record = self.record(countersign_audit::RecordKind::Policy, event.decision);
        record.rule = Some(event.rule.to_string());
        record.reason = Some(event.reason);
        record.server = event.server;
        record.tool = event.tool;
        record.policy_version = Some(self.policy.load().version().to_string());
        let outcome = if event.decision == countersign_audit::Decision::Deny {
            countersign_audit::Outcome::Rejected
        } else {
            countersign_audit::Outcome::Ok
        };
        let shared = self.clone();
        let started = std::time::Instant::now();
        let id = record.id;
        // Callable from any thread (a desktop app's UI thread has no runtime of its own).
        self.runtime.spawn(async move {
            match shared.journal.commit(record).await {
                Ok(_) => shared.outcome(self::outcome(id, started, outcome, None)),
                Err(e) => tracing::error!(error = %e, "could not record a policy event"),
            }
        });
    }

    /// Queues an outcome; the writer commits it with the next group.
    pub fn outcome(&self, outcome: OutcomeRecord) {
        if let Err(e) = self.journal.queue_outcome(outcome) {
            tracing::error!(error = %e, "could not queue an audit outcome");
        }
    }
}

/// What the sync tasks (hub sync, journal upkeep) may reach of the running gateway.
impl countersign_sync::Host for Shared {
    fn journal(&self) -> &Journal {
        &self.journal
    }

    fn bundles(&self) -> Arc<crate::managed_bundle::BundleKeeper> {
        self.bundles.clone()
    }

    fn audit_bounds(&self) -> countersign_policy::AuditBuffer {
        self.policy.load().layers().managed_settings().audit
    }

    fn record_event(self: &Arc<Self>, decision: countersign_audit::Decision, rule: &'static str, reason: String) {
        self.policy_event(PolicyEvent { decision, rule, reason, server: None, tool: None });
    }

    fn identity_changed(self: &Arc<Self>) {
        self.reload_who();
    }

    fn routed_requests(self: &Arc<Self>, waiting: Vec<countersign_sync::approvals_link::WaitingRequest>) {
        let me = self.clone();
        let answered = Arc::new(move |a: crate::routed_prompts::Answered| {
            me.policy_event(PolicyEvent {
                decision: a.decision,
                rule: "approval-answered",
                reason: a.reason,
                server: Some(a.server),
                tool: Some(a.tool),
            });
        });
        crate::routed_prompts::reconcile(&self.asked_here, &self.approver, &self.home, waiting, answered);
    }

    fn hub_standing(self: &Arc<Self>, revoked: Option<String>) {
        let was = {
            let mut warning = self.hub_warning.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *warning, revoked.clone())
        };
        if let (None, Some(why)) = (was, revoked) {
            // The person behind this device was deprovisioned: what they were granted ends.
            let dropped = {
                let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
                let ids: Vec<String> = grants.list(crate::clock::now_ms()).into_iter().map(|g| g.id.clone()).collect();
                ids.iter().filter(|id| grants.revoke(id)).count()
            };
            let reason = format!("the hub revoked this device ({why}); {dropped} grant(s) dropped; local policy stays");
            tracing::warn!("{reason}");
            self.policy_event(PolicyEvent {
                decision: countersign_audit::Decision::Deny,
                rule: "hub-revoked",
                reason,
                server: None,
                tool: None,
            });
        }
    }
}

/// The outcome of record `record_id`, begun at `started`; a detail is cut to 500 characters.
pub(crate) fn outcome(
    record_id: uuid::Uuid,
    started: std::time::Instant,
    outcome: countersign_audit::Outcome,
    detail: Option<&str>,
) -> OutcomeRecord {
    OutcomeRecord {
        record_id,
        time: countersign_audit::now_rfc3339(),
        outcome,
        duration_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        detail: detail.map(|d| d.chars().take(500).collect()),
    }
}
