//! What the gateway shows its front ends: typed, serialisable views of its state. A view
//! is a copy taken at one moment; it never holds a lock, a token or a secret.

use crate::approver::Prompt;
use countersign_policy::{GrantLength, GrantSettings, Layer, ManagedFile, PolicySettings};
use serde::Serialize;

/// The running gateway at a glance: what `countersign status`, the app and the tray show.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Status {
    pub pid: u32,
    pub listen: String,
    /// The config file it runs with, if any.
    pub config: Option<String>,
    /// The kill switch: while set every tool call is refused.
    pub paused: bool,
    pub policy_version: String,
    /// Set while the managed policy bundle in force has expired.
    pub policy_warning: Option<String>,
    /// Set while policy requires AI clients to route through Countersign and some do not.
    pub routing_warning: Option<String>,
    /// Set while the hub has revoked this device: it syncs no more; local policy stays.
    pub hub_warning: Option<String>,
    /// Who this gateway's records name (`alice@example.com`, `agent:ci (owner …)`,
    /// `unverified: alice`).
    pub identity: String,
    /// The grant lengths a person may choose now.
    pub grant_lengths: Vec<GrantLength>,
    /// Blocked and quarantined tools with what changed.
    pub blocked_tools: serde_json::Value,
    /// The servers in force now (they follow the config file).
    pub servers: Vec<ServerSummary>,
    /// Live processes of each stdio server (and of any server no longer configured that
    /// still runs some), against `[limits] max_processes_per_server`.
    pub processes: Vec<ProcessGauge>,
    pub sessions: Vec<SessionView>,
    pub approvals: Vec<Prompt>,
    /// Live async tasks: steady under steady load; growth with the call count is a leak.
    pub tasks: usize,
    pub hub: HubEnrollment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Stdio,
    Http,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ServerSummary {
    pub name: String,
    pub transport: TransportKind,
    pub trusted: bool,
}

/// One server's live upstream processes and the most it may run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ProcessGauge {
    pub server: String,
    pub live: usize,
    pub cap: usize,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SessionView {
    /// The session id's short form (never the whole id: it is a capability).
    pub id: String,
    /// The client token's name.
    pub client: String,
    /// What the client says it is in `initialize` (a claim).
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub route: String,
    pub pending: usize,
    pub idle_secs: u64,
}

/// Whether this device is enrolled with a hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum HubEnrollment {
    NotEnrolled,
    Enrolled { url: String, device_id: String },
}

impl std::fmt::Display for HubEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubEnrollment::NotEnrolled => f.write_str("not enrolled"),
            HubEnrollment::Enrolled { url, device_id } => write!(f, "enrolled with {url} as device {device_id}"),
        }
    }
}

/// A tool as the servers window shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ToolView {
    pub name: String,
    pub class: String,
    pub source: String,
    pub reason: String,
    pub label: Option<String>,
    /// `pinned`, `changed` or `quarantined`.
    pub state: String,
    pub detail: Vec<String>,
    /// Set when managed policy decides this tool's class: the user cannot change it.
    pub locked: Option<String>,
    /// The user's own override, if any.
    pub user_class: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ServerView {
    pub name: String,
    pub transport: TransportKind,
    pub trusted: bool,
    pub catalog: Option<String>,
    pub tools: Vec<ToolView>,
}

/// A remote server's credentials: never a token.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CredentialView {
    pub server: String,
    pub url: String,
    #[serde(flatten)]
    pub state: countersign_vault::oauth::CredentialState,
    /// Without a stored sign-in: whether the server asks for one (it answered 401).
    pub asks_for_sign_in: bool,
}

/// The policy in force, layer by layer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PolicyView {
    pub policy_version: String,
    pub layers: LayersView,
    pub grants: GrantsView,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LayersView {
    pub bundle: Option<BundleView>,
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub managed: Option<ManagedFile>,
    pub user: UserLayerView,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BundleView {
    pub version: u64,
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub policy: PolicySettings,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UserLayerView {
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub policy: PolicySettings,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GrantsView {
    /// The layer whose grant settings are in force.
    pub layer: Layer,
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub settings: GrantSettings,
}

/// A filter on the activity list (each field an exact match; empty fields are ignored).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct ActivityFilter {
    pub client: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<String>,
}
