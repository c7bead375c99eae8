//! What the laptop sends the hub and what the hub answers: records exactly as the journal
//! stores them (arguments as the stored JSON text, so the hub can recompute each hash),
//! outcomes, and the acknowledgement by id with the last chain hash the hub holds.

use crate::chain::{ChainFields, RecordText};
use serde::{Deserialize, Serialize};

/// The rule of the inventory record a laptop writes when policy requires AI clients to
/// route through Countersign and some do not, or use servers policy does not allow; the
/// hub raises an alert for it.
pub const REQUIRE_ROUTING_RULE: &str = "require-routing";

/// The record columns the chain covers, as stored, in the chain's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireRecord {
    /// The record's place in the device's journal.
    pub seq: i64,
    pub id: String,
    pub time: String,
    pub kind: String,
    pub user: String,
    pub device: String,
    pub client: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub session: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub method: Option<String>,
    /// The redacted arguments as stored (JSON text).
    pub arguments: Option<String>,
    pub decision: String,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub approval: Option<String>,
    pub policy_version: Option<String>,
    pub class: Option<String>,
    pub label: Option<String>,
    /// The grant behind the call (absent from records that name none, and from devices
    /// older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_length: Option<String>,
    /// The request's W3C trace id (absent from records without one, and from devices
    /// older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Whether `user` is a verified identity, as stored (`true` or `false`); absent when
    /// unset, and from devices older than these fields (as are the two below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verified: Option<String>,
    /// The OS account running the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    /// An agent's accountable owner (an email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Who answered a call that asked (`self` or a verified identity); absent when unset
    /// and from devices older than this field (as is the next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The hub's id of the routed approval request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl WireRecord {
    /// The record's columns as stored.
    pub fn text(&self) -> RecordText<'_> {
        RecordText {
            id: &self.id,
            time: &self.time,
            kind: &self.kind,
            user: &self.user,
            device: &self.device,
            client: self.client.as_deref(),
            client_name: self.client_name.as_deref(),
            client_version: self.client_version.as_deref(),
            session: self.session.as_deref(),
            server: self.server.as_deref(),
            tool: self.tool.as_deref(),
            method: self.method.as_deref(),
            arguments: self.arguments.as_deref(),
            decision: &self.decision,
            rule: self.rule.as_deref(),
            reason: self.reason.as_deref(),
            approval: self.approval.as_deref(),
            policy_version: self.policy_version.as_deref(),
            class: self.class.as_deref(),
            label: self.label.as_deref(),
            grant_id: self.grant_id.as_deref(),
            grant_length: self.grant_length.as_deref(),
            trace_id: self.trace_id.as_deref(),
            user_verified: self.user_verified.as_deref(),
            os_user: self.os_user.as_deref(),
            owner: self.owner.as_deref(),
            approver: self.approver.as_deref(),
            request_id: self.request_id.as_deref(),
        }
    }

    /// The columns as the chain hashes them (the same function the journal's writer uses).
    pub fn chain_fields(&self) -> ChainFields<'_> {
        self.text().chain_fields()
    }

    /// Whether the record's hash matches its contents after `prev_hash`.
    pub fn hash_holds(&self) -> bool {
        match (&self.prev_hash, &self.hash) {
            (Some(prev), Some(hash)) => self.chain_fields().hash(prev) == *hash,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireOutcome {
    pub record_id: String,
    pub time: String,
    pub outcome: String,
    pub duration_ms: Option<f64>,
    pub detail: Option<String>,
    pub hash: Option<String>,
}

/// One upload: records oldest first, and outcomes not yet sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub records: Vec<WireRecord>,
    pub outcomes: Vec<WireOutcome>,
    /// Whether the records name their grant in `grant_id` and `grant_length` (devices from
    /// the version that added them on). A batch without it comes from an older device,
    /// whose grants the hub still reads from the reason's text.
    #[serde(default)]
    pub grant_columns: bool,
}

/// The hub's answer: what it now holds (new or already held), and the newest record of
/// this device's chain it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub records: Vec<String>,
    pub outcomes: Vec<String>,
    pub last_seq: Option<i64>,
    pub last_hash: Option<String>,
    /// The hub's signed statement that it holds the chain up to `last_seq` (absent when
    /// the hub has no signing key, or holds nothing of this device yet).
    #[serde(default)]
    pub checkpoint: Option<crate::checkpoint::Checkpoint>,
}
