//! The audit record and its outcome, with the field names of `countersign audit export`.
//! Field names are a contract: later versions may add fields, never rename these.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A `tools/call` (or another governed request) that reached the policy.
    Call,
    /// An HTTP request refused before any MCP processing (bad token, foreign Origin...).
    Rejected,
    /// Something that happened to the policy itself: a layer loaded or refused, a tool
    /// blocked by its pin or quarantined, tools accepted.
    Policy,
}

/// How an `ask` decision was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    Approved,
    Denied,
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Error,
    Denied,
    Timeout,
    Rejected,
    /// The client gave up on the call (cancelled it, closed its session or went away)
    /// before it ran; it never reached the server.
    Cancelled,
    /// The gateway stopped (crashed, was killed, or shut down) before the call finished:
    /// whether it ran is not known. Written when the journal is next opened.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
            Outcome::Timeout => "timeout",
            Outcome::Rejected => "rejected",
            Outcome::Cancelled => "cancelled",
            Outcome::Unknown => "unknown",
        }
    }
}

/// The decision record, committed before the call goes upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: Uuid,
    pub time: String,
    pub kind: RecordKind,
    pub user: String,
    pub device: String,
    /// Name of the client token the request carried.
    pub client: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub session: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub method: Option<String>,
    /// Arguments after redaction.
    pub arguments: Option<Value>,
    /// `allow`, `ask` or `deny`.
    pub decision: String,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub approval: Option<Approval>,
    pub policy_version: Option<String>,
    /// The tool's class (`read`, `write`, `sensitive`, `destructive`) when decided.
    #[serde(default)]
    pub class: Option<String>,
    /// The data classification label of what the tool touches, when known.
    #[serde(default)]
    pub label: Option<String>,
}

impl Record {
    /// A fresh record with a UUIDv7 id and the current time; the caller fills the rest.
    pub fn new(kind: RecordKind, user: &str, device: &str, decision: &str) -> Self {
        Record {
            id: Uuid::now_v7(),
            time: now_rfc3339(),
            kind,
            user: user.to_string(),
            device: device.to_string(),
            client: None,
            client_name: None,
            client_version: None,
            session: None,
            server: None,
            tool: None,
            method: None,
            arguments: None,
            decision: decision.to_string(),
            rule: None,
            reason: None,
            approval: None,
            policy_version: None,
            class: None,
            label: None,
        }
    }
}

/// What became of a decided call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub record_id: Uuid,
    pub time: String,
    pub outcome: Outcome,
    pub duration_ms: Option<f64>,
    /// A short error message; never the result body.
    pub detail: Option<String>,
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}
