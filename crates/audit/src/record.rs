//! The audit record and its outcome, with the field names of `countersign audit export`.
//! Field names are a contract: later versions may add fields, never rename these.

pub use countersign_policy::{Decision, GrantLength, ToolClass};
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

impl RecordKind {
    /// The name stored, hashed and sent (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Call => "call",
            RecordKind::Rejected => "rejected",
            RecordKind::Policy => "policy",
        }
    }
}

/// How an `ask` decision was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    Approved,
    Denied,
    Timeout,
}

impl Approval {
    /// The name stored, hashed and sent (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Approved => "approved",
            Approval::Denied => "denied",
            Approval::Timeout => "timeout",
        }
    }
}

/// The grant behind a call (stored as `grant_id`, and `grant_length` when issued).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordGrant {
    /// The person's approval of this call issued the grant, lasting this long from the
    /// record's time.
    Issued { id: String, length: GrantLength },
    /// The grant let this call run without asking.
    Used { id: String },
}

impl RecordGrant {
    pub fn id(&self) -> &str {
        match self {
            RecordGrant::Issued { id, .. } | RecordGrant::Used { id } => id,
        }
    }

    /// How long an issued grant lasts; `None` for a grant used.
    pub fn length(&self) -> Option<GrantLength> {
        match self {
            RecordGrant::Issued { length, .. } => Some(*length),
            RecordGrant::Used { .. } => None,
        }
    }
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
    pub decision: Decision,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub approval: Option<Approval>,
    pub policy_version: Option<String>,
    /// The tool's class (`read`, `write`, `sensitive`, `destructive`) when decided.
    #[serde(default)]
    pub class: Option<ToolClass>,
    /// The data classification label of what the tool touches, when known.
    #[serde(default)]
    pub label: Option<String>,
    /// The grant behind the call, when there is one.
    #[serde(default)]
    pub grant: Option<RecordGrant>,
    /// The W3C trace id (32 lower-case hex digits) of the request's
    /// `_meta.traceparent`, when it carried a valid one: joins this record with the
    /// client's and the server's traces.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Whether `user` is a verified identity: the email the person signed in with (or
    /// `agent:NAME` for an enterprise agent) when true; the OS account when false or unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verified: Option<bool>,
    /// The OS account running the gateway, whatever `user` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    /// An agent's accountable owner (an email); set only for agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Who answered a call that asked: `self` (the person at this computer) or the
    /// verified identity who answered a routed approval at the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The hub's id of the routed approval request that answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Record {
    /// A fresh record with a UUIDv7 id and the current time; the caller fills the rest.
    pub fn new(kind: RecordKind, user: &str, device: &str, decision: Decision) -> Self {
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
            decision,
            rule: None,
            reason: None,
            approval: None,
            policy_version: None,
            class: None,
            label: None,
            grant: None,
            trace_id: None,
            user_verified: None,
            os_user: None,
            owner: None,
            approver: None,
            request_id: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The names records have always been stored, hashed and sent with: a rename here would
    /// break every journal's chain and the hub's recomputation.
    #[test]
    fn stored_names_never_change() {
        fn check(value: impl Serialize, as_str: &str, name: &str) {
            assert_eq!(serde_json::to_value(value).unwrap(), name, "serde name");
            assert_eq!(as_str, name, "as_str");
        }
        for (d, name) in [(Decision::Allow, "allow"), (Decision::Ask, "ask"), (Decision::Deny, "deny")] {
            check(d, d.as_str(), name);
        }
        for (c, name) in [
            (ToolClass::Read, "read"),
            (ToolClass::Write, "write"),
            (ToolClass::Sensitive, "sensitive"),
            (ToolClass::Destructive, "destructive"),
        ] {
            check(c, c.as_str(), name);
        }
        for (k, name) in
            [(RecordKind::Call, "call"), (RecordKind::Rejected, "rejected"), (RecordKind::Policy, "policy")]
        {
            check(k, k.as_str(), name);
        }
        for (a, name) in
            [(Approval::Approved, "approved"), (Approval::Denied, "denied"), (Approval::Timeout, "timeout")]
        {
            check(a, a.as_str(), name);
        }
        for (l, name) in [
            (GrantLength::Session, "session"),
            (GrantLength::Minutes15, "15m"),
            (GrantLength::Hour1, "1h"),
            (GrantLength::Today, "today"),
        ] {
            check(l, l.as_str(), name);
        }
    }
}
