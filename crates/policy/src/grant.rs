//! Grants and the approval book: what an approval leaves behind, and the memory that
//! keeps prompts from becoming a nuisance or a weapon.
//!
//! A grant covers one client, server and tool (and optionally an argument condition):
//! once, for the exact canonical arguments approved; for the client session; or until a
//! deadline. The book also counts denials (repeated denials lock a tool for a while) and
//! prompts (too many prompts for one tool in a minute are refused, not shown). It is
//! plain data: the caller supplies the time, persists it if it wants, and spends
//! single-use grants. It never decides a call by itself.
//!
//! A similar grant ("Allow similar", [`crate::similar`]) covers, for a while, the calls
//! inside the scope derived from the approved one: its tool or every read or write tool
//! of the server, inside a project or folder, with some values kept exactly.

use crate::canonical::args_hash;
use crate::class::ToolClass;
pub use crate::grant_length::GrantLength;
use crate::rule::{Condition, Quantifier, Rule, RuleError, RuleList, Subject};
use crate::similar::{SimilarOffer, SimilarScope, SimilarSettings, SimilarTools};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum GrantScope {
    /// Single use, bound to the SHA-256 of the canonical arguments.
    Once { args_hash: String },
    /// Any arguments, in one client session.
    Session { session: String },
    /// Any arguments until the deadline (milliseconds since the Unix epoch).
    Until { expires_ms: u64 },
}

/// An approval that lets later calls through without asking.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Grant {
    pub id: String,
    pub client_token: String,
    pub server: String,
    pub tool: String,
    pub scope: GrantScope,
    /// An argument condition as written (`path=/work/**`), if the grant has one.
    pub condition: Option<String>,
    #[serde(skip)]
    conditions: Vec<Condition>,
    /// The scope of a similar grant, as the person was shown it.
    #[cfg_attr(feature = "ts", ts(as = "Option<SimilarOffer>"))]
    pub similar: Option<SimilarScope>,
    pub created_ms: u64,
}

impl PartialEq for Grant {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// One call as a grant is matched against it (`CallInput::grant_call` makes it).
#[derive(Debug, Clone, Copy)]
pub struct GrantCall<'a> {
    /// The name of the loopback client token the request carried.
    pub client_token: &'a str,
    /// The client session.
    pub session: &'a str,
    pub server: &'a str,
    pub tool: &'a str,
    /// The arguments as the client sent them: a once-grant is bound to their hash.
    pub arguments: &'a serde_json::Value,
    /// The arguments as the server will read them: what a grant's condition matches.
    pub condition_arguments: &'a serde_json::Value,
    /// The tool's class, when the caller knows it (a similar grant for several tools
    /// covers only tools known to read or write).
    pub class: Option<ToolClass>,
    /// Milliseconds since the Unix epoch.
    pub now_ms: u64,
}

impl Grant {
    pub fn covers(&self, call: &GrantCall<'_>) -> bool {
        if self.client_token != call.client_token || self.server != call.server {
            return false;
        }
        let in_scope = match &self.similar {
            Some(scope) => scope.covers(call.tool, call.class, call.condition_arguments),
            None => self.tool == call.tool,
        };
        if !in_scope {
            return false;
        }
        if !self.conditions.iter().all(|c| c.matches(call.condition_arguments, Quantifier::All)) {
            return false;
        }
        match &self.scope {
            GrantScope::Once { args_hash: hash } => *hash == args_hash(call.arguments),
            GrantScope::Session { session } => session == call.session,
            GrantScope::Until { expires_ms } => call.now_ms < *expires_ms,
        }
    }

    fn expired(&self, now_ms: u64) -> bool {
        matches!(self.scope, GrantScope::Until { expires_ms } if now_ms >= expires_ms)
    }
}

/// What an approval asks to grant.
#[derive(Debug, Clone)]
pub struct GrantRequest<'a> {
    pub id: String,
    pub client_token: &'a str,
    pub session: &'a str,
    pub server: &'a str,
    pub tool: &'a str,
    pub arguments: &'a serde_json::Value,
    pub length: GrantLength,
    pub condition: Option<&'a str>,
    /// The similar scope the prompt offered, when the person chose it (its length is the
    /// offer's).
    pub similar: Option<&'a SimilarOffer>,
    /// The scope is an item of a session plan the person approved (`[grants.plans]`
    /// allows it, not `[grants.similar]`).
    pub plan: bool,
}

/// Limits on grants and prompts (managed policy sets them; these are the defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GrantSettings {
    /// The grant lengths a person may choose.
    pub lengths: Vec<GrantLength>,
    /// Tools (rule syntax: `mcp__server__tool`, globs, `class:...`) never granted beyond once.
    pub once_only: Vec<String>,
    /// Denials of one tool by one client within `lockout_window_secs` that lock it.
    pub lockout_after: u32,
    pub lockout_window_secs: u64,
    /// How long a locked tool stays denied without asking.
    pub lockout_secs: u64,
    /// Prompts raised by one client (all its tools and servers together) per minute;
    /// beyond, its calls that would ask are denied unasked.
    pub prompts_per_minute: u32,
    /// "Allow similar": whether it is offered, for how long, how wide.
    pub similar: SimilarSettings,
    /// Session plans a client declares: whether they are offered, how many items.
    pub plans: crate::plan::PlanSettings,
}

impl Default for GrantSettings {
    fn default() -> Self {
        GrantSettings {
            lengths: vec![
                GrantLength::Once,
                GrantLength::Session,
                GrantLength::Minutes15,
                GrantLength::Hour1,
                GrantLength::Today,
            ],
            once_only: vec!["class:destructive".into(), "class:sensitive".into()],
            lockout_after: 3,
            lockout_window_secs: 600,
            lockout_secs: 600,
            prompts_per_minute: 10,
            similar: SimilarSettings::default(),
            plans: crate::plan::PlanSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error("grants of length `{0}` are not allowed by policy (allowed: {1})")]
    LengthNotAllowed(&'static str, String),
    #[error("`{0}` can only be approved once at a time, by policy")]
    OnceOnly(String),
    #[error("bad grant condition: {0}")]
    Condition(#[from] RuleError),
    #[error("a similar grant is not allowed here: {0}")]
    Similar(String),
}

type ToolKey = (String, String, String);

fn key(client: &str, server: &str, tool: &str) -> ToolKey {
    (client.to_string(), server.to_string(), tool.to_string())
}

/// Every grant in force, plus the denial and prompt counters.
#[derive(Debug, Default)]
pub struct GrantBook {
    /// Grants by (server, tool), so a decision looks at a handful, not all of them; a
    /// similar grant for several tools under (server, "").
    by_tool: HashMap<(String, String), Vec<Grant>>,
    denials: HashMap<ToolKey, VecDeque<u64>>,
    locked: HashMap<ToolKey, u64>,
    /// Prompt times per client token (not per tool: 60 made-up tool names must not raise
    /// 60 prompts).
    prompts: HashMap<String, VecDeque<u64>>,
}

const DAY_MS: u64 = 24 * 3600 * 1000;

/// A similar grant is issued only as it was offered: the offer's own server, tool and
/// length, a class that reads or writes, and policy still offering it.
fn check_similar(
    offer: &SimilarOffer,
    req: &GrantRequest<'_>,
    settings: &SimilarSettings,
    plans: &crate::plan::PlanSettings,
    class: ToolClass,
) -> Result<(), GrantError> {
    let why = if req.plan && !plans.enabled {
        "policy takes no session plans".to_string()
    } else if !req.plan && !settings.enabled {
        "policy offers no similar grants".to_string()
    } else if class > ToolClass::Write {
        format!("never for a {class} tool")
    } else if offer.server != req.server || offer.tool != req.tool {
        "the offer is for another tool".to_string()
    } else if offer.length != req.length || req.length == GrantLength::Once {
        format!("a similar grant lasts {}, as offered", offer.length.as_str())
    } else {
        return Ok(());
    };
    Err(GrantError::Similar(why))
}

impl GrantBook {
    /// Issues a grant for an approval, within the limits policy sets. `once_only` is the
    /// compiled `GrantSettings::once_only` list, `class` the tool's class; `end_of_day_ms`
    /// is the next local midnight (the caller knows the time zone).
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &mut self,
        req: GrantRequest<'_>,
        settings: &GrantSettings,
        once_only: &RuleList,
        class: crate::class::ToolClass,
        now_ms: u64,
        end_of_day_ms: u64,
    ) -> Result<Grant, GrantError> {
        if !settings.lengths.contains(&req.length) {
            let allowed = settings.lengths.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", ");
            return Err(GrantError::LengthNotAllowed(req.length.as_str(), allowed));
        }
        let name = crate::rule::qualified_name(req.server, req.tool);
        if req.length != GrantLength::Once {
            let names = [name.clone()];
            let clients = [req.client_token];
            let subject = Subject { names: &names, class, clients: &clients, arguments: req.arguments, request: None };
            if once_only.first_match(&subject).is_some() {
                return Err(GrantError::OnceOnly(name));
            }
        }
        if let Some(offer) = req.similar {
            check_similar(offer, &req, &settings.similar, &settings.plans, class)?;
        }
        let conditions = match req.condition {
            Some(cond) => {
                let rule = format!("{name}({cond})");
                Rule::parse(&rule)?;
                RuleList::conditions_of(&rule)?
            }
            None => Vec::new(),
        };
        let scope = match req.length {
            GrantLength::Once => GrantScope::Once { args_hash: args_hash(req.arguments) },
            GrantLength::Session => GrantScope::Session { session: req.session.to_string() },
            GrantLength::Minutes15 => GrantScope::Until { expires_ms: now_ms + 15 * 60 * 1000 },
            GrantLength::Hour1 => GrantScope::Until { expires_ms: now_ms + 3600 * 1000 },
            GrantLength::Today => GrantScope::Until { expires_ms: end_of_day_ms.clamp(now_ms, now_ms + DAY_MS) },
        };
        let similar = req.similar.map(SimilarScope::compile).transpose()?;
        let grant = Grant {
            id: req.id,
            client_token: req.client_token.to_string(),
            server: req.server.to_string(),
            tool: req.tool.to_string(),
            scope,
            condition: req.condition.map(str::to_string),
            conditions,
            similar,
            created_ms: now_ms,
        };
        let tool = match &grant.similar {
            Some(scope) if scope.offer.tools == SimilarTools::Writes => String::new(),
            _ => grant.tool.clone(),
        };
        self.by_tool.entry((grant.server.clone(), tool)).or_default().push(grant.clone());
        Ok(grant)
    }

    /// The first grant that covers the call.
    pub fn covering(&self, call: &GrantCall<'_>) -> Option<&Grant> {
        self.covering_where(call, &|_| true)
    }

    /// The first grant that covers the call and that `usable` accepts (the engine turns
    /// away a several-tools grant for a tool policy keeps to once).
    pub fn covering_where(&self, call: &GrantCall<'_>, usable: &dyn Fn(&Grant) -> bool) -> Option<&Grant> {
        let server = call.server.to_string();
        [call.tool.to_string(), String::new()]
            .into_iter()
            .filter_map(|tool| self.by_tool.get(&(server.clone(), tool)))
            .flatten()
            .find(|g| g.covers(call) && usable(g))
    }

    /// Spends a grant if it was single-use. Returns whether it was.
    pub fn spend(&mut self, id: &str) -> bool {
        let mut spent = false;
        for grants in self.by_tool.values_mut() {
            grants.retain(|g| {
                let once = g.id == id && matches!(g.scope, GrantScope::Once { .. });
                spent |= once;
                !once
            });
        }
        spent
    }

    /// Revokes a grant. Returns whether it existed.
    pub fn revoke(&mut self, id: &str) -> bool {
        let before = self.len();
        for grants in self.by_tool.values_mut() {
            grants.retain(|g| g.id != id);
        }
        self.by_tool.retain(|_, g| !g.is_empty());
        self.len() != before
    }

    /// Ends the session-long grants of a session.
    pub fn end_session(&mut self, session: &str) {
        for grants in self.by_tool.values_mut() {
            grants.retain(|g| !matches!(&g.scope, GrantScope::Session { session: s } if s == session));
        }
    }

    pub fn len(&self) -> usize {
        self.by_tool.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The grants still in force, oldest first; expired ones are dropped.
    pub fn list(&mut self, now_ms: u64) -> Vec<Grant> {
        for grants in self.by_tool.values_mut() {
            grants.retain(|g| !g.expired(now_ms));
        }
        self.by_tool.retain(|_, g| !g.is_empty());
        let mut all: Vec<Grant> = self.by_tool.values().flatten().cloned().collect();
        all.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        all
    }

    /// Counts a denial (by a person, a timeout or a dismissal). Returns the time the tool
    /// is locked until, when this denial locked it.
    pub fn record_denial(
        &mut self,
        client: &str,
        server: &str,
        tool: &str,
        now_ms: u64,
        s: &GrantSettings,
    ) -> Option<u64> {
        let k = key(client, server, tool);
        let window = s.lockout_window_secs * 1000;
        let times = self.denials.entry(k.clone()).or_default();
        times.push_back(now_ms);
        while times.front().is_some_and(|t| now_ms.saturating_sub(*t) > window) {
            times.pop_front();
        }
        if s.lockout_after > 0 && times.len() >= s.lockout_after as usize {
            times.clear();
            let until = now_ms + s.lockout_secs * 1000;
            self.locked.insert(k, until);
            return Some(until);
        }
        None
    }

    /// Until when the tool is locked for this client, if it is.
    pub fn locked_until(&self, client: &str, server: &str, tool: &str, now_ms: u64) -> Option<u64> {
        self.locked.get(&key(client, server, tool)).copied().filter(|until| now_ms < *until)
    }

    /// The arguments some grant's condition reads as a file path.
    pub fn path_keys(&self) -> impl Iterator<Item = String> + '_ {
        let grants = self.by_tool.values().flatten();
        let conditions = grants.clone().flat_map(|g| &g.conditions).filter(|c| c.is_path()).map(|c| c.key());
        conditions.chain(grants.filter_map(|g| g.similar.as_ref()).flat_map(|s| s.path_keys()))
    }

    /// Whether this client may raise a new prompt now (whatever the tool); counts it when
    /// it may.
    pub fn admit_prompt(&mut self, client: &str, now_ms: u64, s: &GrantSettings) -> bool {
        let times = self.prompts.entry(client.to_string()).or_default();
        while times.front().is_some_and(|t| now_ms.saturating_sub(*t) >= 60_000) {
            times.pop_front();
        }
        if times.len() >= s.prompts_per_minute as usize {
            return false;
        }
        times.push_back(now_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::ToolClass;
    use crate::input::{CallInput, Identity, ServerInfo};
    use serde_json::{json, Value};

    fn once_only(s: &GrantSettings) -> RuleList {
        RuleList::compile(&s.once_only, true).unwrap()
    }

    fn req<'a>(id: &str, args: &'a Value, length: GrantLength) -> GrantRequest<'a> {
        GrantRequest {
            id: id.into(),
            client_token: "cursor",
            session: "s1",
            server: "fs",
            tool: "write_file",
            arguments: args,
            length,
            condition: None,
            similar: None,
            plan: false,
        }
    }

    #[test]
    fn a_plan_item_is_issued_by_the_plan_settings_not_the_similar_ones() {
        let offer = crate::plan::item_offer(
            &crate::similar::SimilarRule { folder: vec!["path".into()], ..Default::default() },
            &crate::plan::PlanItem {
                server: "fs".into(),
                tool: "write_file".into(),
                under: Some("/w/a/site".into()),
                exact: Default::default(),
            },
            Some(ToolClass::Write),
            &SimilarSettings::default(),
        )
        .unwrap();
        let args = Value::Null;
        let issue = |settings: &GrantSettings, plan: bool| {
            let req = GrantRequest {
                length: GrantLength::Session,
                similar: Some(&offer),
                plan,
                ..req("p", &args, GrantLength::Session)
            };
            GrantBook::default().issue(req, settings, &once_only(settings), ToolClass::Write, 0, 0)
        };
        let no_similar =
            GrantSettings { similar: SimilarSettings { enabled: false, ..Default::default() }, ..Default::default() };
        assert!(issue(&no_similar, true).is_ok(), "plans stand apart from Allow similar");
        assert!(issue(&no_similar, false).is_err());
        let no_plans =
            GrantSettings { plans: crate::plan::PlanSettings { enabled: false, max_items: 16 }, ..Default::default() };
        assert_eq!(issue(&no_plans, true).unwrap_err(), GrantError::Similar("policy takes no session plans".into()));
    }

    fn covers(book: &GrantBook, args: &Value, session: &str, now_ms: u64) -> Option<String> {
        let identity = Identity { client_token: "cursor".into(), session: session.into(), ..Default::default() };
        let server = ServerInfo::named("fs");
        let call = CallInput {
            identity: &identity,
            server: &server,
            tool: "write_file",
            def: None,
            arguments: args,
            grants: None,
            resolved: None,
            gate: Default::default(),
            now_ms,
        };
        book.covering(&call.grant_call()).map(|g| g.id.clone())
    }

    #[test]
    fn a_once_grant_covers_exactly_its_arguments_and_is_spent() {
        let s = GrantSettings::default();
        let mut book = GrantBook::default();
        let args = json!({"path": "/a", "content": "x"});
        book.issue(req("g1", &args, GrantLength::Once), &s, &once_only(&s), ToolClass::Write, 0, DAY_MS).unwrap();
        assert_eq!(covers(&book, &json!({"content": "x", "path": "/a"}), "s1", 1).as_deref(), Some("g1"));
        assert_eq!(covers(&book, &json!({"path": "/a", "content": "y"}), "s1", 1), None);
        assert!(book.spend("g1"));
        assert_eq!(covers(&book, &args, "s1", 1), None);
    }

    #[test]
    fn session_and_timed_grants() {
        let s = GrantSettings::default();
        let mut book = GrantBook::default();
        let args = json!({});
        book.issue(req("s", &args, GrantLength::Session), &s, &once_only(&s), ToolClass::Write, 0, DAY_MS).unwrap();
        assert_eq!(covers(&book, &json!({"path": "/b"}), "s1", 5).as_deref(), Some("s"));
        assert_eq!(covers(&book, &json!({"path": "/b"}), "s2", 5), None);
        book.end_session("s1");
        assert!(book.is_empty());
        book.issue(req("h", &args, GrantLength::Minutes15), &s, &once_only(&s), ToolClass::Write, 1000, DAY_MS)
            .unwrap();
        assert_eq!(covers(&book, &args, "s9", 1000 + 15 * 60 * 1000 - 1).as_deref(), Some("h"));
        assert_eq!(covers(&book, &args, "s9", 1000 + 15 * 60 * 1000), None);
        assert!(book.list(1000 + 15 * 60 * 1000).is_empty(), "expired grants are dropped from the list");
    }

    #[test]
    fn policy_limits_lengths_and_once_only_tools() {
        let s = GrantSettings { lengths: vec![GrantLength::Once, GrantLength::Minutes15], ..Default::default() };
        let mut book = GrantBook::default();
        let args = json!({});
        let err = book.issue(req("x", &args, GrantLength::Today), &s, &once_only(&s), ToolClass::Write, 0, DAY_MS);
        assert!(matches!(err, Err(GrantError::LengthNotAllowed("today", _))), "{err:?}");
        let err =
            book.issue(req("y", &args, GrantLength::Minutes15), &s, &once_only(&s), ToolClass::Destructive, 0, DAY_MS);
        assert!(matches!(err, Err(GrantError::OnceOnly(_))), "{err:?}");
        assert!(book
            .issue(req("z", &args, GrantLength::Once), &s, &once_only(&s), ToolClass::Destructive, 0, DAY_MS)
            .is_ok());
    }

    #[test]
    fn a_grant_condition_limits_its_arguments() {
        let s = GrantSettings::default();
        let mut book = GrantBook::default();
        let args = json!({"path": "/work/a"});
        let mut r = req("c", &args, GrantLength::Hour1);
        r.condition = Some("path=/work/**");
        book.issue(r, &s, &once_only(&s), ToolClass::Write, 0, DAY_MS).unwrap();
        assert!(covers(&book, &json!({"path": "/work/b/c"}), "s1", 1).is_some());
        assert!(covers(&book, &json!({"path": "/work/../etc/x"}), "s1", 1).is_none());
    }

    #[test]
    fn repeated_denials_lock_and_prompts_are_rate_limited() {
        let s = GrantSettings {
            lockout_after: 3,
            lockout_window_secs: 60,
            lockout_secs: 300,
            prompts_per_minute: 2,
            ..Default::default()
        };
        let mut book = GrantBook::default();
        assert_eq!(book.record_denial("c", "fs", "w", 0, &s), None);
        assert_eq!(book.record_denial("c", "fs", "w", 10_000, &s), None);
        assert_eq!(book.record_denial("c", "fs", "w", 20_000, &s), Some(320_000));
        assert_eq!(book.locked_until("c", "fs", "w", 319_999), Some(320_000));
        assert_eq!(book.locked_until("c", "fs", "w", 320_000), None);
        assert_eq!(book.locked_until("other", "fs", "w", 100_000), None);
        // Denials spread beyond the window do not lock.
        let mut slow = GrantBook::default();
        for t in [0, 70_000, 140_000] {
            assert_eq!(slow.record_denial("c", "fs", "w", t, &s), None);
        }
        assert!(book.admit_prompt("c", 0, &s));
        assert!(book.admit_prompt("c", 1, &s));
        assert!(!book.admit_prompt("c", 2, &s), "the limit is per client, whatever the tool");
        assert!(book.admit_prompt("other", 2, &s), "another client has its own");
        assert!(book.admit_prompt("c", 60_000, &s));
    }
}
