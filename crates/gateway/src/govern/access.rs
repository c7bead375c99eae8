//! Decisions for what reaches a server other than a tool call: listings, reading and
//! subscribing to resources, getting prompts, completions and tasks. Each gets the
//! policy's decision (a server denied as a whole, off the allowed list or paused is
//! refused) and a journal record; an allowed one leaves with the [`Permit`] its
//! committed record produced, a refused one with the words the client is told.
//!
//! Must never: hand out a permit for a record that was not committed.

use super::methods::{Listing, Operation};
use super::permit::Permit;
use crate::session::Session;
use countersign_audit::{Outcome, RecordKind};
use countersign_policy::{Access, AccessInput, Decision, Identity};
use serde_json::Value;
use std::time::Instant;

/// A governed operation, read from its method and params.
pub struct Subject {
    pub method: &'static str,
    /// The resource URI, prompt name or task id it is about, when it names one.
    pub name: Option<String>,
    /// What is recorded of the params (redacted as arguments are).
    pub arguments: Option<Value>,
    /// The W3C trace id the request carried in `_meta.traceparent`, if valid (kept on
    /// the record).
    pub trace: Option<String>,
}

impl Subject {
    /// The subject of a governed request other than `tools/call`.
    pub fn of(op: Operation, params: &Value) -> Subject {
        let mut subject = Self::of_params(op, params);
        subject.trace = crate::trace_context::trace_id(params);
        subject
    }

    fn of_params(op: Operation, params: &Value) -> Subject {
        let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_string);
        let trace = None;
        match op {
            Operation::List(l) => Subject { method: l.method(), name: None, arguments: None, trace },
            Operation::ReadResource => Subject { method: "resources/read", name: text("uri"), arguments: None, trace },
            Operation::Subscribe => {
                Subject { method: "resources/subscribe", name: text("uri"), arguments: None, trace }
            }
            Operation::Unsubscribe => {
                Subject { method: "resources/unsubscribe", name: text("uri"), arguments: None, trace }
            }
            Operation::GetPrompt => Subject {
                method: "prompts/get",
                name: text("name"),
                arguments: params.get("arguments").cloned(),
                trace,
            },
            Operation::Listen => Subject {
                method: "subscriptions/listen",
                name: None,
                arguments: params.get("notifications").cloned(),
                trace,
            },
            Operation::Complete => Subject {
                method: "completion/complete",
                name: params
                    .get("ref")
                    .and_then(|r| r.get("name").or_else(|| r.get("uri")))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                arguments: params.get("argument").cloned(),
                trace,
            },
            Operation::Task(method) => Subject { method, name: text("taskId"), arguments: None, trace },
            _ => Subject { method: "unknown", name: None, arguments: None, trace },
        }
    }

    fn access(&self) -> Access<'_> {
        let name = self.name.as_deref().unwrap_or_default();
        match self.method {
            "resources/read" => Access::ReadResource { uri: name },
            "resources/subscribe" | "resources/unsubscribe" => Access::Subscribe { uri: name },
            "prompts/get" => Access::GetPrompt { name },
            "completion/complete" => Access::Complete,
            m if m.starts_with("tasks/") => Access::Task { method: m },
            m => Access::List { method: m },
        }
    }
}

impl Session {
    /// Who this session's client is, for the policy.
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            os_user: self.shared.who.load().os_user.clone(),
            device: self.shared.device.clone(),
            client_token: self.token_name.clone(),
            client_name: self.client().0,
            session: self.id.clone(),
        }
    }

    /// Decides `subject` on `server` (`None`: the aggregate endpoint's listing of every
    /// server) and commits its record. Allowed: the permit to forward it. Refused: what
    /// to tell the client (the refusal is recorded with its outcome).
    pub(crate) async fn govern_access(
        &self,
        server: Option<&str>,
        subject: &Subject,
        started: Instant,
    ) -> Result<Permit, String> {
        let shared = &self.shared;
        let policy = shared.policy.load_full();
        let identity = self.identity();
        let servers = shared.servers();
        let info = match server {
            Some(name) => match servers.get(name) {
                Some(s) => Some(&s.info),
                None => return Err(format!("unknown server `{name}`")),
            },
            None => None,
        };
        let paused = shared.paused.load(std::sync::atomic::Ordering::SeqCst);
        let who = shared.who.load();
        let verdict = info.map(|info| {
            let mut v = policy.decide_access(&AccessInput {
                identity: &identity,
                server: info,
                access: subject.access(),
                paused,
            });
            who.overrule(&mut v);
            v
        });
        // Nobody is asked to approve a read of a resource or a prompt: what policy would ask
        // for is refused, and says so.
        let decision = match verdict.as_ref().map_or(Decision::Allow, |v| v.decision) {
            Decision::Allow => Decision::Allow,
            _ => Decision::Deny,
        };
        let mut record = shared.record(RecordKind::Call, decision);
        let (client_name, client_version) = self.client();
        record.client = Some(self.token_name.clone());
        record.client_name = client_name;
        record.client_version = client_version;
        record.session = Some(self.record_session());
        record.trace_id = subject.trace.clone();
        record.server = server.map(str::to_string);
        record.method = Some(subject.method.to_string());
        record.tool = subject.name.as_deref().map(super::methods::shorten);
        record.arguments = subject.arguments.as_ref().map(|a| shared.redactor.redact_fields(a, &[]));
        record.policy_version = Some(policy.version().to_string());
        record.class = Some(countersign_policy::ToolClass::Read);
        match &verdict {
            Some(v) => {
                record.rule = Some(v.rule.clone());
                record.reason = Some(v.reason.clone());
            }
            None => {
                record.rule = Some("default:access".into());
                record.reason = Some(format!("`{}` of every server this client may reach", subject.method));
            }
        }
        let what = match (server, &subject.name) {
            (Some(s), Some(n)) => format!("`{}` of `{}` on server `{s}`", subject.method, super::methods::shorten(n)),
            (Some(s), None) => format!("`{}` on server `{s}`", subject.method),
            (None, _) => format!("`{}`", subject.method),
        };
        let record_id = record.id;
        if decision == Decision::Deny {
            let v = verdict.as_ref().map(|v| (v.reason.clone(), v.rule.clone(), v.decision)).unwrap_or((
                String::new(),
                String::new(),
                Decision::Deny,
            ));
            let asks = if v.2 == Decision::Ask {
                "; Countersign asks for approval only for tool calls, so this is refused"
            } else {
                ""
            };
            let text =
                format!("Countersign refused {what}: {}{asks} (rule `{}`). It was not sent to the server.", v.0, v.1);
            if let Err(e) = shared.journal.commit(record).await {
                tracing::error!(error = %e, "audit commit of a refusal failed");
            }
            shared.outcome(crate::session::outcome(record_id, started, Outcome::Denied, Some(&text)));
            return Err(text);
        }
        match shared.journal.commit(record).await {
            Ok(committed) => Ok(Permit::from(committed)),
            Err(e) => {
                tracing::error!(error = %e, "audit commit failed; refusing {what}");
                Err(super::commit_failed(&e, &what))
            }
        }
    }

    /// Whether the aggregate endpoint may list (and so start) `server` for this client.
    pub(crate) fn may_list(&self, server: &str, listing: Listing) -> bool {
        let servers = self.shared.servers();
        let Some(config) = servers.get(server) else { return false };
        let identity = self.identity();
        let access = Access::List { method: listing.method() };
        let input = AccessInput { identity: &identity, server: &config.info, access, paused: false };
        self.shared.policy.load().decide_access(&input).decision != Decision::Deny
    }
}
