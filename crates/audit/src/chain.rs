//! The journal's hash chain. Each record's hash covers every stored column of the record
//! and the previous record's hash, so changing, removing or reordering a record breaks
//! the chain at that point; each outcome's hash covers its columns and its record's hash.
//! Values are fed length-prefixed, with NULL distinct from the empty string, so no two
//! different rows encode alike.
//!
//! What the chain cannot show on its own: records cut off the end. The hub holds the last
//! hash it acknowledged, which covers that.
//!
//! The record's columns and their order are written once, here ([`RecordText::columns`]
//! and [`RECORD_COLUMNS`]): the journal's writer, its verification, the outbox and the
//! hub's recomputation all hash through [`RecordText::chain_fields`]. Columns added after
//! the chain began come in groups, in the order they were added (the grant: `grant_id`,
//! `grant_length`; then `trace_id`; then the identity: `user_verified`, `os_user`,
//! `owner`): a record's hash covers the columns up to the end of the last group it sets a
//! value in, and no further. So a record setting none hashes as records did before any
//! was added, one naming only a grant as it did before `trace_id`, one with a trace but
//! no identity as it did before the identity columns, and each journal written by an
//! older version still verifies; as every value is length-prefixed, a record hashing more
//! columns can never hash like one hashing fewer.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first chained record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn feed(hasher: &mut Sha256, value: Option<&str>) {
    match value {
        None => hasher.update(b"-;"),
        Some(v) => {
            hasher.update(v.len().to_string().as_bytes());
            hasher.update(b":");
            hasher.update(v.as_bytes());
            hasher.update(b";");
        }
    }
}

fn digest(domain: &[u8], link: &str, fields: &[Option<&str>]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    hasher.update(link.as_bytes());
    hasher.update(b"\n");
    for f in fields {
        feed(&mut hasher, *f);
    }
    hex::encode(hasher.finalize())
}

/// The journal's record columns, in the chain's order; `prev_hash` and `hash` follow them.
/// [`RecordText::columns`] gives the values in this order.
pub const RECORD_COLUMNS: [&str; 28] = [
    "id",
    "time",
    "kind",
    "user",
    "device",
    "client",
    "client_name",
    "client_version",
    "session",
    "server",
    "tool",
    "method",
    "arguments",
    "decision",
    "rule",
    "reason",
    "approval",
    "policy_version",
    "class",
    "label",
    "grant_id",
    "grant_length",
    "trace_id",
    "user_verified",
    "os_user",
    "owner",
    "approver",
    "request_id",
];

/// How many of [`RECORD_COLUMNS`] every chained record's hash covers; the rest only as
/// [`ADDED_GROUPS`] says.
const ALWAYS_HASHED: usize = 20;

/// Where each group of columns added after the chain began ends in [`RECORD_COLUMNS`], in
/// the order they were added: the grant (`grant_id`, `grant_length`), then `trace_id`,
/// then the identity (`user_verified`, `os_user`, `owner`), then who answered
/// (`approver`, `request_id`). A column added later gets a group of its own at the end.
const ADDED_GROUPS: [usize; 4] = [22, 23, 26, 28];
const _: () = assert!(ADDED_GROUPS[ADDED_GROUPS.len() - 1] == RECORD_COLUMNS.len());

/// A record's columns as the journal stores them (text; `arguments` as JSON text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordText<'a> {
    pub id: &'a str,
    pub time: &'a str,
    pub kind: &'a str,
    pub user: &'a str,
    pub device: &'a str,
    pub client: Option<&'a str>,
    pub client_name: Option<&'a str>,
    pub client_version: Option<&'a str>,
    pub session: Option<&'a str>,
    pub server: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub method: Option<&'a str>,
    pub arguments: Option<&'a str>,
    pub decision: &'a str,
    pub rule: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub approval: Option<&'a str>,
    pub policy_version: Option<&'a str>,
    pub class: Option<&'a str>,
    pub label: Option<&'a str>,
    pub grant_id: Option<&'a str>,
    pub grant_length: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    /// `true` or `false` ([`verified_text`]): whether `user` is a verified identity.
    pub user_verified: Option<&'a str>,
    /// The OS account running the gateway.
    pub os_user: Option<&'a str>,
    /// An agent's accountable owner (an email).
    pub owner: Option<&'a str>,
    /// Who answered a call that asked: `self`, or the verified identity who answered a
    /// routed approval.
    pub approver: Option<&'a str>,
    /// The hub's id of the routed approval request.
    pub request_id: Option<&'a str>,
}

impl<'a> RecordText<'a> {
    /// The values in [`RECORD_COLUMNS`]' order: the one place that order is written.
    pub fn columns(&self) -> [Option<&'a str>; RECORD_COLUMNS.len()] {
        [
            Some(self.id),
            Some(self.time),
            Some(self.kind),
            Some(self.user),
            Some(self.device),
            self.client,
            self.client_name,
            self.client_version,
            self.session,
            self.server,
            self.tool,
            self.method,
            self.arguments,
            Some(self.decision),
            self.rule,
            self.reason,
            self.approval,
            self.policy_version,
            self.class,
            self.label,
            self.grant_id,
            self.grant_length,
            self.trace_id,
            self.user_verified,
            self.os_user,
            self.owner,
            self.approver,
            self.request_id,
        ]
    }

    /// What the chain hashes of this record.
    pub fn chain_fields(&self) -> ChainFields<'a> {
        ChainFields::of_columns(self.columns())
    }
}

/// The values a record's hash covers, in order: every column of [`RECORD_COLUMNS`] up to
/// the grant, then the added columns up to the end of the last group the record sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainFields<'a> {
    columns: [Option<&'a str>; RECORD_COLUMNS.len()],
    covered: usize,
}

impl<'a> ChainFields<'a> {
    /// From the values of [`RECORD_COLUMNS`] in order (a row read back by those names).
    pub fn of_columns(columns: [Option<&'a str>; RECORD_COLUMNS.len()]) -> Self {
        let covered = match columns[ALWAYS_HASHED..].iter().rposition(Option::is_some) {
            None => ALWAYS_HASHED,
            Some(last) => {
                let last = ALWAYS_HASHED + last;
                ADDED_GROUPS.into_iter().find(|end| *end > last).unwrap_or(RECORD_COLUMNS.len())
            }
        };
        ChainFields { columns, covered }
    }

    /// Every column's value, hashed or not (for storing the row).
    pub fn columns(&self) -> &[Option<&'a str>; RECORD_COLUMNS.len()] {
        &self.columns
    }

    /// The record's hash after `prev`.
    pub fn hash(&self, prev: &str) -> String {
        record_hash(prev, self)
    }
}

impl<'a> std::ops::Deref for ChainFields<'a> {
    type Target = [Option<&'a str>];
    fn deref(&self) -> &Self::Target {
        &self.columns[..self.covered]
    }
}

/// A record's hash: its columns in the journal's order, after the previous hash.
pub fn record_hash(prev: &str, fields: &[Option<&str>]) -> String {
    digest(b"countersign-record-v1\n", prev, fields)
}

/// An outcome's hash: its columns, bound to its record's hash.
pub fn outcome_hash(record: &str, fields: &[Option<&str>]) -> String {
    digest(b"countersign-outcome-v1\n", record, fields)
}

/// `user_verified` as stored and hashed: `true` or `false`.
pub fn verified_text(verified: Option<bool>) -> Option<&'static str> {
    verified.map(|v| if v { "true" } else { "false" })
}

/// `user_verified` read back from its text; anything but `true` or `false` is none.
pub fn verified_value(text: Option<&str>) -> Option<bool> {
    match text {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

/// `duration_ms` as hashed (the same text when written and when read back).
pub fn duration_text(d: Option<f64>) -> Option<String> {
    d.map(|v| format!("{v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_empty_and_shifted_values_hash_apart() {
        let a = record_hash(GENESIS, &[Some("ab"), Some("c")]);
        assert_ne!(a, record_hash(GENESIS, &[Some("a"), Some("bc")]));
        assert_ne!(record_hash(GENESIS, &[None]), record_hash(GENESIS, &[Some("")]));
        assert_ne!(a, record_hash(&a, &[Some("ab"), Some("c")]), "the previous hash is covered");
        assert_ne!(a, outcome_hash(GENESIS, &[Some("ab"), Some("c")]), "records and outcomes are told apart");
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn columns_come_in_the_order_their_names_say() {
        let [id, time, kind, user, device, decision] = ["id", "time", "kind", "user", "device", "decision"];
        let text = RecordText {
            id,
            time,
            kind,
            user,
            device,
            client: Some("client"),
            client_name: Some("client_name"),
            client_version: Some("client_version"),
            session: Some("session"),
            server: Some("server"),
            tool: Some("tool"),
            method: Some("method"),
            arguments: Some("arguments"),
            decision,
            rule: Some("rule"),
            reason: Some("reason"),
            approval: Some("approval"),
            policy_version: Some("policy_version"),
            class: Some("class"),
            label: Some("label"),
            grant_id: Some("grant_id"),
            grant_length: Some("grant_length"),
            trace_id: Some("trace_id"),
            user_verified: Some("user_verified"),
            os_user: Some("os_user"),
            owner: Some("owner"),
            approver: Some("approver"),
            request_id: Some("request_id"),
        };
        assert_eq!(text.columns(), RECORD_COLUMNS.map(Some));
        assert_eq!(text.chain_fields().len(), RECORD_COLUMNS.len(), "a grant, a trace and an identity are hashed");
        let without = RecordText {
            grant_id: None,
            grant_length: None,
            trace_id: None,
            user_verified: None,
            os_user: None,
            owner: None,
            approver: None,
            request_id: None,
            ..text
        };
        assert_eq!(
            *without.chain_fields(),
            RECORD_COLUMNS[..ALWAYS_HASHED].iter().map(|c| Some(*c)).collect::<Vec<_>>(),
            "no grant, no grant columns"
        );
        assert_ne!(text.chain_fields().hash(GENESIS), without.chain_fields().hash(GENESIS));
        let grant_only = RecordText {
            trace_id: None,
            user_verified: None,
            os_user: None,
            owner: None,
            approver: None,
            request_id: None,
            ..text
        };
        assert_eq!(grant_only.chain_fields().len(), 22, "a grant without a trace hashes as before trace_id");
        let length_only = RecordText { grant_id: None, ..grant_only };
        assert_eq!(length_only.chain_fields().len(), 22, "any grant column set is hashed");
        assert_ne!(grant_only.chain_fields().hash(GENESIS), text.chain_fields().hash(GENESIS));
    }

    #[test]
    fn a_trace_id_is_hashed_only_when_set() {
        let base = RecordText {
            id: "r-1",
            time: "2026-12-01T10:00:00Z",
            kind: "call",
            user: "ana",
            device: "dev1",
            client: None,
            client_name: None,
            client_version: None,
            session: Some("s-1"),
            server: Some("fs"),
            tool: Some("read_file"),
            method: Some("tools/call"),
            arguments: None,
            decision: "allow",
            rule: None,
            reason: None,
            approval: None,
            policy_version: None,
            class: Some("read"),
            label: None,
            grant_id: None,
            grant_length: None,
            trace_id: None,
            user_verified: None,
            os_user: None,
            owner: None,
            approver: None,
            request_id: None,
        };
        assert_eq!(base.chain_fields().len(), ALWAYS_HASHED, "no trace, no grant: as before either was added");
        let traced = RecordText { trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"), ..base };
        let fields = traced.chain_fields();
        assert_eq!(fields.len(), 23, "a trace is hashed, after the (empty) grant columns");
        assert_eq!(fields[ALWAYS_HASHED..], [None, None, Some("4bf92f3577b34da6a3ce929d0e0e4736")]);
        assert_ne!(fields.hash(GENESIS), base.chain_fields().hash(GENESIS));
        let other = RecordText { trace_id: Some("0af7651916cd43dd8448eb211c80319c"), ..base };
        assert_ne!(other.chain_fields().hash(GENESIS), fields.hash(GENESIS), "the trace's value is covered");
        // A trace id that reads like a grant length is still told apart from one.
        let as_grant = RecordText { grant_length: Some("4bf92f3577b34da6a3ce929d0e0e4736"), ..base };
        assert_ne!(as_grant.chain_fields().hash(GENESIS), fields.hash(GENESIS));
    }

    /// A record with no grant, no trace and no identity column: as records hashed before any was added.
    fn plain() -> RecordText<'static> {
        RecordText {
            id: "r-2",
            time: "2026-12-02T10:00:00Z",
            kind: "call",
            user: "ana@example.com",
            device: "dev1",
            client: Some("cursor"),
            client_name: None,
            client_version: None,
            session: Some("s-1"),
            server: Some("fs"),
            tool: Some("write_file"),
            method: Some("tools/call"),
            arguments: None,
            decision: "allow",
            rule: None,
            reason: None,
            approval: None,
            policy_version: None,
            class: Some("write"),
            label: None,
            grant_id: None,
            grant_length: None,
            trace_id: None,
            user_verified: None,
            os_user: None,
            owner: None,
            approver: None,
            request_id: None,
        }
    }

    #[test]
    fn the_identity_columns_are_one_group_hashed_only_when_set() {
        let base = plain();
        let before = record_hash(GENESIS, &base.columns()[..ALWAYS_HASHED]);
        assert_eq!(base.chain_fields().hash(GENESIS), before, "no identity: hashed exactly as before the columns");

        let agent = RecordText {
            user: "agent:release-bot",
            user_verified: verified_text(Some(true)),
            os_user: Some("ana"),
            owner: Some("ana@example.com"),
            ..base
        };
        let fields = agent.chain_fields();
        assert_eq!(fields.len(), 26, "the identity group, nothing after it while nothing later is set");
        assert_eq!(
            fields[ALWAYS_HASHED..],
            [None, None, None, Some("true"), Some("ana"), Some("ana@example.com")],
            "after the (empty) grant and trace columns"
        );
        assert_ne!(fields.hash(GENESIS), RecordText { user: "agent:release-bot", ..base }.chain_fields().hash(GENESIS));

        // Any one of the three brings in the whole group, NULLs included.
        let os_only = RecordText { os_user: Some("ana"), ..base };
        assert_eq!(os_only.chain_fields().len(), 26, "os_user alone covers the whole group");
        assert_eq!(os_only.chain_fields()[23..], [None, Some("ana"), None]);
        assert_ne!(os_only.chain_fields().hash(GENESIS), before);
        let owner_only = RecordText { owner: Some("ana"), ..base };
        assert_ne!(
            owner_only.chain_fields().hash(GENESIS),
            os_only.chain_fields().hash(GENESIS),
            "told apart by place"
        );
        // Who answered: its own group, after the identity's.
        let answered = RecordText { approver: Some("nora@example.com"), request_id: Some("r1"), ..agent };
        let fields = answered.chain_fields();
        assert_eq!(fields.len(), RECORD_COLUMNS.len());
        assert_eq!(fields[26..], [Some("nora@example.com"), Some("r1")]);
        assert_ne!(fields.hash(GENESIS), agent.chain_fields().hash(GENESIS));
        let by_self = RecordText { approver: Some("self"), ..base };
        assert_eq!(by_self.chain_fields()[ALWAYS_HASHED..], [None, None, None, None, None, None, Some("self"), None]);
        for verified in [Some(true), Some(false)] {
            let v = RecordText { user_verified: verified_text(verified), ..base };
            assert_eq!(v.chain_fields().len(), 26, "user_verified alone covers the whole group");
            assert_ne!(v.chain_fields().hash(GENESIS), before);
        }
        let yes = RecordText { user_verified: verified_text(Some(true)), ..os_only };
        let no = RecordText { user_verified: verified_text(Some(false)), ..os_only };
        assert_ne!(yes.chain_fields().hash(GENESIS), no.chain_fields().hash(GENESIS), "verified or not is covered");
        let other_os = RecordText { os_user: Some("bob"), ..os_only };
        assert_ne!(other_os.chain_fields().hash(GENESIS), os_only.chain_fields().hash(GENESIS), "the value is covered");

        // A trace without an identity hashes as before the identity columns; with one, more.
        let traced = RecordText { trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"), ..base };
        assert_eq!(traced.chain_fields().len(), 23);
        let traced_identity = RecordText { os_user: Some("ana"), ..traced };
        assert_eq!(traced_identity.chain_fields().len(), 26);
        assert_ne!(traced_identity.chain_fields().hash(GENESIS), traced.chain_fields().hash(GENESIS));
        // An OS account that reads like a trace id is still told apart from one.
        let as_trace = RecordText { os_user: Some("4bf92f3577b34da6a3ce929d0e0e4736"), ..base };
        assert_ne!(as_trace.chain_fields().hash(GENESIS), traced.chain_fields().hash(GENESIS));
    }

    #[test]
    fn user_verified_is_stored_as_true_or_false() {
        assert_eq!([true, false].map(|v| verified_text(Some(v))), [Some("true"), Some("false")]);
        assert_eq!(verified_text(None), None);
        for v in [Some(true), Some(false), None] {
            assert_eq!(verified_value(verified_text(v)), v);
        }
        assert_eq!(verified_value(Some("yes")), None);
    }
}
