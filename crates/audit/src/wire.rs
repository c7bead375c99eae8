//! What the laptop sends the hub and what the hub answers: records exactly as the journal
//! stores them (arguments as the stored JSON text, so the hub can recompute each hash),
//! outcomes, and the acknowledgement by id with the last chain hash the hub holds.

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
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl WireRecord {
    /// The columns as the chain hashes them.
    pub fn chain_fields(&self) -> [Option<&str>; 20] {
        [
            Some(self.id.as_str()),
            Some(self.time.as_str()),
            Some(self.kind.as_str()),
            Some(self.user.as_str()),
            Some(self.device.as_str()),
            self.client.as_deref(),
            self.client_name.as_deref(),
            self.client_version.as_deref(),
            self.session.as_deref(),
            self.server.as_deref(),
            self.tool.as_deref(),
            self.method.as_deref(),
            self.arguments.as_deref(),
            Some(self.decision.as_str()),
            self.rule.as_deref(),
            self.reason.as_deref(),
            self.approval.as_deref(),
            self.policy_version.as_deref(),
            self.class.as_deref(),
            self.label.as_deref(),
        ]
    }

    /// Whether the record's hash matches its contents after `prev_hash`.
    pub fn hash_holds(&self) -> bool {
        match (&self.prev_hash, &self.hash) {
            (Some(prev), Some(hash)) => crate::chain::record_hash(prev, &self.chain_fields()) == *hash,
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
