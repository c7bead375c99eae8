//! The default-deny table of every MCP method a client may send: each request and
//! notification a client may send, mapped to the operation it performs. A method is
//! found only by its exact spelling and only as the kind of message it is (a request
//! sent as a notification is not that request); anything else is refused and audited,
//! never forwarded. Client notifications come only from the allow-list here.
//!
//! Must never: match loosely (case, spacing, prefixes), or name a method the gateway
//! does not handle.

use crate::message::Kind;

/// A family of listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listing {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl Listing {
    pub fn method(self) -> &'static str {
        match self {
            Listing::Tools => "tools/list",
            Listing::Prompts => "prompts/list",
            Listing::Resources => "resources/list",
            Listing::ResourceTemplates => "resources/templates/list",
        }
    }

    /// The member of the result that holds the items.
    pub fn key(self) -> &'static str {
        match self {
            Listing::Tools => "tools",
            Listing::Prompts => "prompts",
            Listing::Resources => "resources",
            Listing::ResourceTemplates => "resourceTemplates",
        }
    }
}

/// What a client message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `initialize`: opens a session.
    Initialize,
    /// `server/discover` (2026-07-28): a stateless request, relayed to a server that
    /// speaks that revision and answered by the gateway for any other; without the
    /// revision's headers, answered by the gateway (it uses the handshake).
    Discover,
    /// `ping`, answered by the gateway.
    Ping,
    /// `logging/setLevel`.
    SetLogLevel,
    /// `tools/call`.
    CallTool,
    /// A listing of tools, prompts, resources or resource templates.
    List(Listing),
    /// `resources/read`.
    ReadResource,
    /// `resources/subscribe`.
    Subscribe,
    /// `resources/unsubscribe`.
    Unsubscribe,
    /// `prompts/get`.
    GetPrompt,
    /// `completion/complete`.
    Complete,
    /// `tasks/get`, `tasks/result`, `tasks/list`, `tasks/cancel` (2025-11-25 tasks).
    Task(&'static str),
    /// `subscriptions/listen` (2026-07-28): a stream of the server's change notices.
    Listen,
    /// `notifications/initialized`.
    Initialized,
    /// `notifications/cancelled`.
    Cancelled,
    /// `notifications/progress`.
    Progress,
    /// `notifications/roots/list_changed`.
    RootsListChanged,
    /// `countersign/plan`, Countersign's own: a client declares the calls of its task for
    /// the session, approved as one prompt (`crate::govern::plan`). Never forwarded.
    Plan,
}

impl Operation {
    /// Whether the operation reaches a server's tools, resources or prompts: it gets a
    /// policy decision and a journal record, and is forwarded only with a permit.
    pub fn is_governed(self) -> bool {
        matches!(
            self,
            Operation::CallTool
                | Operation::List(_)
                | Operation::ReadResource
                | Operation::Subscribe
                | Operation::Unsubscribe
                | Operation::GetPrompt
                | Operation::Complete
                | Operation::Task(_)
                | Operation::Listen
        )
    }
}

/// One row of the table.
struct Entry {
    method: &'static str,
    kind: Kind,
    op: Operation,
}

const fn request(method: &'static str, op: Operation) -> Entry {
    Entry { method, kind: Kind::Request, op }
}

const fn notification(method: &'static str, op: Operation) -> Entry {
    Entry { method, kind: Kind::Notification, op }
}

/// Every method a client may send, and nothing else.
const TABLE: &[Entry] = &[
    request("initialize", Operation::Initialize),
    request("server/discover", Operation::Discover),
    request("ping", Operation::Ping),
    request("logging/setLevel", Operation::SetLogLevel),
    request("tools/call", Operation::CallTool),
    request("tools/list", Operation::List(Listing::Tools)),
    request("prompts/list", Operation::List(Listing::Prompts)),
    request("prompts/get", Operation::GetPrompt),
    request("resources/list", Operation::List(Listing::Resources)),
    request("resources/templates/list", Operation::List(Listing::ResourceTemplates)),
    request("resources/read", Operation::ReadResource),
    request("resources/subscribe", Operation::Subscribe),
    request("resources/unsubscribe", Operation::Unsubscribe),
    request("completion/complete", Operation::Complete),
    request("tasks/get", Operation::Task("tasks/get")),
    request("tasks/result", Operation::Task("tasks/result")),
    request("tasks/list", Operation::Task("tasks/list")),
    request("tasks/cancel", Operation::Task("tasks/cancel")),
    request("subscriptions/listen", Operation::Listen),
    request("countersign/plan", Operation::Plan),
    notification("notifications/initialized", Operation::Initialized),
    notification("notifications/cancelled", Operation::Cancelled),
    notification("notifications/progress", Operation::Progress),
    notification("notifications/roots/list_changed", Operation::RootsListChanged),
];

/// Why a message was refused by the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unlisted {
    #[error("`{0}` is not a method a client may send through Countersign")]
    Unknown(String),
    #[error("`{method}` is a request and needs an `id`; sent as a notification it is refused")]
    NotANotification { method: String },
    #[error("`{method}` is a notification; sent with an `id` it is refused")]
    NotARequest { method: String },
    #[error("`{0}` was removed in MCP 2026-07-28: a stateless request cannot use it")]
    Removed(String),
}

impl Unlisted {
    /// The method as sent, cut to a length fit for a record.
    pub fn method(&self) -> String {
        let m = match self {
            Unlisted::Unknown(m) | Unlisted::Removed(m) => m,
            Unlisted::NotANotification { method } | Unlisted::NotARequest { method } => method,
        };
        shorten(m)
    }
}

/// At most 128 characters of untrusted text, control characters shown, not kept.
pub fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(128).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if text.chars().count() > 128 {
        out.push('…');
    }
    out
}

/// The operation of a client request or notification: found by the exact method, as
/// the kind of message it was sent as. Responses are not looked up here.
pub fn lookup(method: &str, kind: Kind) -> Result<Operation, Unlisted> {
    let Some(entry) = TABLE.iter().find(|e| e.method == method) else {
        return Err(Unlisted::Unknown(method.to_string()));
    };
    match (entry.kind, kind) {
        (a, b) if a == b => Ok(entry.op),
        (Kind::Request, _) => Err(Unlisted::NotANotification { method: method.to_string() }),
        _ => Err(Unlisted::NotARequest { method: method.to_string() }),
    }
}

/// Every method in the table, with the kind it must be sent as (for tests and docs).
pub fn all() -> impl Iterator<Item = (&'static str, Kind, Operation)> {
    TABLE.iter().map(|e| (e.method, e.kind, e.op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_found_only_as_written_and_as_its_kind() {
        for (method, kind, op) in all() {
            assert_eq!(lookup(method, kind), Ok(op), "{method}");
            let other = if kind == Kind::Request { Kind::Notification } else { Kind::Request };
            assert!(lookup(method, other).is_err(), "{method} sent as {other:?}");
            for spelling in [
                method.to_uppercase(),
                format!("{method} "),
                format!(" {method}"),
                format!("{method}\u{0}"),
                method.replace('/', "\\/"),
                format!("{method}/"),
                method.replacen('o', "\u{43e}", 1),
            ] {
                if spelling != method {
                    assert!(matches!(lookup(&spelling, kind), Err(Unlisted::Unknown(_))), "{spelling:?}");
                }
            }
        }
    }

    #[test]
    fn what_reaches_a_servers_tools_resources_or_prompts_is_governed() {
        let governed: Vec<&str> = all().filter(|(_, _, op)| op.is_governed()).map(|(m, _, _)| m).collect();
        assert_eq!(
            governed,
            [
                "tools/call",
                "tools/list",
                "prompts/list",
                "prompts/get",
                "resources/list",
                "resources/templates/list",
                "resources/read",
                "resources/subscribe",
                "resources/unsubscribe",
                "completion/complete",
                "tasks/get",
                "tasks/result",
                "tasks/list",
                "tasks/cancel",
                "subscriptions/listen",
            ]
        );
        let notes: Vec<&str> = all().filter(|(_, k, _)| *k == Kind::Notification).map(|(m, _, _)| m).collect();
        assert_eq!(
            notes,
            [
                "notifications/initialized",
                "notifications/cancelled",
                "notifications/progress",
                "notifications/roots/list_changed"
            ],
            "the client notifications allowed"
        );
    }

    #[test]
    fn unknown_methods_and_hostile_names_are_refused_with_a_short_name() {
        for m in
            ["sampling/createMessage", "elicitation/create", "roots/list", "tools/delete", "", "notifications/message"]
        {
            assert!(lookup(m, Kind::Request).is_err() && lookup(m, Kind::Notification).is_err(), "{m}");
        }
        let long = format!("x{}\u{1b}[31m", "y".repeat(500));
        let refused = lookup(&long, Kind::Request).unwrap_err();
        assert!(refused.method().chars().count() <= 129 && !refused.method().contains('\u{1b}'));
    }
}
