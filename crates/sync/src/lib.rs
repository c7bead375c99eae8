//! countersign-sync: what keeps this device's journal and the hub in step. Enrollment and
//! the outbox sent in batches with backoff, the hub's checkpoint, the policy bundle's long
//! poll ([`hub_sync`]), routed approvals at the hub ([`approvals_link`]), and the journal kept within the bounds managed policy sets
//! ([`journal_upkeep`]).
//!
//! It never relays MCP or decides a call, and it reaches the running gateway only through
//! [`Host`]: the journal, the bundle keeper, the audit bounds in force, and a way to record
//! an event. It never sends a record the journal has not committed, and never drops one
//! without an audit record saying so.

pub mod approvals_link;
pub mod hub_sync;
pub mod journal_upkeep;
pub mod sign_in_enroll;

use countersign_audit::{Decision, Journal};
use countersign_local::managed_bundle::BundleKeeper;
use countersign_policy::AuditBuffer;
use std::sync::Arc;

/// The running gateway, as the sync tasks see it. The tasks hold it weakly: when the
/// gateway goes, they end.
pub trait Host: Send + Sync + 'static {
    /// The gateway's journal.
    fn journal(&self) -> &Journal;
    /// The managed bundle's last good copy and whether it expired.
    fn bundles(&self) -> Arc<BundleKeeper>;
    /// The journal's bounds under the policy in force (`[managed.audit]`).
    fn audit_bounds(&self) -> AuditBuffer;
    /// Records an event of the policy or the journal itself (with the policy version in
    /// force), beside the calls.
    fn record_event(self: &Arc<Self>, decision: Decision, rule: &'static str, reason: String);
    /// The hub's link in `hub.json` names another person now: records from here on say so.
    fn identity_changed(self: &Arc<Self>) {}
    /// The hub's word on this device: `Some(why)` when it revoked the device (it syncs no
    /// more and keeps its local policy), `None` when the hub takes it.
    fn hub_standing(self: &Arc<Self>, _revoked: Option<String>) {}
    /// What waits at the hub for this device's person now (routed approvals): each new
    /// one is shown, each gone one withdrawn.
    fn routed_requests(self: &Arc<Self>, _waiting: Vec<approvals_link::WaitingRequest>) {}
}
