//! Session plans (`countersign/plan`, a request of Countersign's own): a client declares
//! the calls its task will make; each item is checked against the servers this client
//! reaches, the tools they list and policy; what policy accepts is shown as one prompt,
//! and an approval grants each accepted item for the session. The client is answered
//! with what was granted and what will still ask. Calls outside every item ask as before.
//!
//! Must never: grant an item the person was not shown, an item for a tool its server
//! does not list or a server this client cannot reach, anything for an agent (its owner
//! answers each call, through the hub) or when the prompt was not approved.

use super::approvals::{Detach, Waited};
use crate::approver::{Answer, PlanOffer, PlanRefusal, Prompt};
use crate::clock::{end_of_day_ms, now_ms};
use crate::message::{self, code, Envelope};
use crate::session::{Reply, Session};
use crate::shared::PolicyEvent;
use countersign_audit::Decision as Logged;
use countersign_policy::{args_hash, Decision, GrantLength, GrantRequest, PlanItem, PlanRequest, SimilarOffer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The longest server, tool or argument name an item may carry, in characters.
const NAME_MAX: usize = 128;
/// The longest folder or exact value.
const PATH_MAX: usize = 1024;
/// The most values an item may keep exactly.
const EXACT_MAX: usize = 8;

impl Session {
    /// Takes a plan: checks it, asks once, grants what was approved, answers the client.
    pub(crate) async fn declare_plan(self: Arc<Self>, env: Envelope, reply: Reply) {
        let id = env.id().map(|r| r.to_owned());
        let refuse = |code: i64, msg: &str| message::error_response(id.as_deref(), code, msg);
        let request: PlanRequest = match env.params().map(serde_json::from_value) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return self.answer(reply, refuse(code::INVALID_PARAMS, &format!("countersign/plan: {e}"))),
            Err(_) => return self.answer(reply, refuse(code::INVALID_PARAMS, "countersign/plan needs params")),
        };
        let policy = self.shared.policy.load_full();
        let checked = policy.plans_offered().and_then(|max| self.plan_shape(&request, max));
        if let Err(why) = checked {
            self.log_plan(Logged::Deny, format!("plan `{}` refused: {why}", shown(&request.title)));
            return self.answer(reply, refuse(code::INVALID_REQUEST, &format!("Countersign took no plan: {why}")));
        }
        let mut offer = PlanOffer { title: request.title.clone(), items: Vec::new(), refused: Vec::new() };
        for item in &request.items {
            match self.plan_item(&policy, item).await {
                Ok(scope) if !offer.items.contains(&scope) => offer.items.push(scope),
                Ok(_) => {}
                Err(why) => {
                    offer.refused.push(PlanRefusal { server: item.server.clone(), tool: item.tool.clone(), why })
                }
            }
        }
        if offer.items.is_empty() {
            self.log_plan(Logged::Deny, format!("plan `{}`: nothing in it can be granted", shown(&offer.title)));
            let result = outcome(false, "nothing in the plan can be granted", &[], &offer.refused);
            return self.answer(reply, message::result_response(id.as_deref(), &result));
        }
        let prompt = self.plan_prompt(offer);
        let session = self.clone();
        tokio::spawn(async move { session.ask_plan(prompt, id, reply).await });
    }

    /// A plan's title and number of items, within what policy takes.
    fn plan_shape(&self, request: &PlanRequest, max: usize) -> Result<(), String> {
        if self.shared.who.load().agent.is_some() {
            return Err(
                "an agent's calls ask its owner one at a time; plans are approved at a person's computer".into()
            );
        }
        let title = request.title.trim();
        if title.is_empty() || title.chars().count() > countersign_policy::MAX_PLAN_TITLE {
            return Err(format!("a plan needs a title of 1 to {} characters", countersign_policy::MAX_PLAN_TITLE));
        }
        if request.items.is_empty() || request.items.len() > max {
            return Err(format!("a plan declares 1 to {max} items, not {}", request.items.len()));
        }
        for (n, item) in request.items.iter().enumerate() {
            let long = [(&item.server, "server", NAME_MAX), (&item.tool, "tool", NAME_MAX)]
                .into_iter()
                .chain(item.under.iter().map(|u| (u, "under", PATH_MAX)))
                .chain(item.exact.keys().map(|k| (k, "exact key", NAME_MAX)))
                .chain(item.exact.values().map(|v| (v, "exact value", PATH_MAX)))
                .find(|(text, _, max)| text.is_empty() || text.chars().count() > *max);
            if let Some((_, field, max)) = long {
                return Err(format!("item {}: `{field}` must be 1 to {max} characters", n + 1));
            }
            if item.exact.len() > EXACT_MAX {
                return Err(format!("item {}: at most {EXACT_MAX} `exact` values", n + 1));
            }
        }
        Ok(())
    }

    /// The session scope one item would get, or why it will still ask (or never run).
    async fn plan_item(&self, policy: &countersign_policy::Policy, item: &PlanItem) -> Result<SimilarOffer, String> {
        let servers = self.shared.servers();
        let Some(config) = servers.get(&item.server).filter(|_| self.has_server(&item.server)) else {
            return Err(format!("no server `{}` for this client", item.server));
        };
        let info = &config.info;
        if policy.server_gate(info, &self.token_name, false).is_some() {
            return Err(format!("policy lets this client reach nothing of `{}`", item.server));
        }
        if item.tool == "*" {
            // Every write tool: only the values the catalog keeps exactly for the server.
            return policy.plan_item(info, item, None, &self.token_name);
        }
        let def = match self.tool_def(&item.server, &item.tool).await {
            Ok(Some(def)) => def,
            Ok(None) => return Err(format!("`{}` lists no tool `{}`", item.server, item.tool)),
            Err(e) => return Err(format!("the tools of `{}` could not be listed: {e}", item.server)),
        };
        // A value kept exactly binds only an argument the tool reads: one it ignores would
        // read as a limit and be none.
        let properties = def.input_schema.get("properties").and_then(Value::as_object);
        if let Some(key) = item.exact.keys().find(|k| properties.is_some_and(|p| !p.contains_key(k.as_str()))) {
            return Err(format!("`{}` takes no argument `{key}`", item.tool));
        }
        let class = self.tool_class(policy, info, &item.tool, Some(&def)).class;
        // The call as the item names it: what policy would do before any grant.
        let arguments: Value = item.exact.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        if let Some(decided) = self.decide_call(&item.server, &item.tool, &arguments, false).await {
            let decided = decided.verdict;
            match decided.decision {
                Decision::Deny => return Err(format!("policy denies it: {}", decided.reason)),
                Decision::Allow => return Err("it runs without asking already".into()),
                Decision::Ask if decided.route.as_ref().is_some_and(|r| !r.is_local()) => {
                    let who = decided.route.as_ref().map(|r| r.who()).unwrap_or_default();
                    return Err(format!("it asks {who}, one call at a time"));
                }
                Decision::Ask => {}
            }
        }
        policy.plan_item(info, item, Some(class), &self.token_name)
    }

    fn plan_prompt(&self, offer: PlanOffer) -> Prompt {
        let mut servers: Vec<&str> = offer.items.iter().map(|o| o.server.as_str()).collect();
        servers.dedup();
        let words: Vec<&str> = offer.items.iter().map(|o| o.words.as_str()).collect();
        let arguments = json!({ "title": offer.title, "items": words });
        let timeout = self.shared.config.gateway.approval_timeout_secs;
        Prompt {
            id: uuid::Uuid::now_v7().simple().to_string(),
            session: self.id.clone(),
            client: self.token_name.clone(),
            client_name: self.client().0,
            server: servers.join(", "),
            tool: "session plan".into(),
            args_hash: args_hash(&arguments),
            arguments,
            reason: format!(
                "a plan for this session: {} kind{} of call, each allowed until the session ends",
                offer.items.len(),
                if offer.items.len() == 1 { "" } else { "s" }
            ),
            deadline_ms: now_ms() + timeout * 1000,
            waiting: 1,
            similar: None,
            route: None,
            asked_by: None,
            plan: Some(offer),
        }
    }

    /// Asks once; on approval grants each item, then answers the client.
    async fn ask_plan(self: Arc<Self>, prompt: Prompt, id: Option<Box<serde_json::value::RawValue>>, reply: Reply) {
        let shared = self.shared.clone();
        let timeout = Duration::from_secs(shared.config.gateway.approval_timeout_secs);
        let admit = || {
            let settings = shared.policy.load().grant_settings().0.clone();
            shared.grants.lock().unwrap_or_else(|p| p.into_inner()).admit_prompt(&prompt.client, now_ms(), &settings)
        };
        let closed = reply.closed();
        let gone = async move {
            closed.await;
            "its client went away"
        };
        let plan =
            prompt.plan.clone().unwrap_or_else(|| PlanOffer { title: String::new(), items: vec![], refused: vec![] });
        let waited = shared.approvals.wait(prompt.clone(), timeout, admit, gone, Detach::default()).await;
        let why = match waited {
            Waited::Answered(Answer::Approved { .. }) => None,
            Waited::Answered(Answer::Refused(why)) => Some(why),
            Waited::Answered(_) => Some("the person denied the plan".to_string()),
            Waited::TimedOut => Some("nobody answered in time".into()),
            Waited::Gone(why) => Some(why.to_string()),
            Waited::NotAdmitted | Waited::TooManyWaiting => Some("this client is asking too often".into()),
            Waited::Superseded => Some("an identical plan took the answer".into()),
        };
        if let Some(why) = why {
            self.log_plan(Logged::Deny, format!("plan `{}` not approved: {why}", shown(&plan.title)));
            let result = outcome(false, &why, &[], &plan.refused);
            return self.answer(reply, message::result_response(id.as_deref(), &result));
        }
        let mut granted = Vec::new();
        let mut refused = plan.refused.clone();
        for (n, item) in plan.items.iter().enumerate() {
            match self.grant_item(&prompt, n, item) {
                Ok(grant) => {
                    granted.push(json!({"server": item.server, "tool": item.tool, "scope": item.words, "grant": grant}))
                }
                Err(why) => refused.push(PlanRefusal { server: item.server.clone(), tool: item.tool.clone(), why }),
            }
        }
        let ids: Vec<&str> = granted.iter().filter_map(|g| g["grant"].as_str()).collect();
        self.log_plan(
            Logged::Allow,
            format!(
                "plan `{}` approved for the session: {} (grants {})",
                shown(&plan.title),
                plan.items.iter().map(|o| o.words.as_str()).collect::<Vec<_>>().join("; "),
                ids.join(", ")
            ),
        );
        let result = outcome(true, "approved for this session", &granted, &refused);
        self.answer(reply, message::result_response(id.as_deref(), &result));
    }

    /// Issues the session grant for item `n` of an approved plan, as it was shown.
    fn grant_item(&self, prompt: &Prompt, n: usize, item: &SimilarOffer) -> Result<String, String> {
        let policy = self.shared.policy.load_full();
        let (settings, _) = policy.grant_settings();
        let arguments = Value::Null;
        let request = GrantRequest {
            id: format!("p-{}-{n}", &prompt.id[..12.min(prompt.id.len())]),
            client_token: &prompt.client,
            session: &prompt.session,
            server: &item.server,
            tool: &item.tool,
            arguments: &arguments,
            length: GrantLength::Session,
            condition: None,
            similar: Some(item),
            plan: true,
        };
        let class = countersign_policy::ToolClass::Write;
        let mut grants = self.shared.grants.lock().unwrap_or_else(|p| p.into_inner());
        let issued = grants.issue(request, settings, policy.once_only(), class, now_ms(), end_of_day_ms());
        issued.map(|g| g.id).map_err(|e| e.to_string())
    }

    fn log_plan(&self, decision: Logged, reason: String) {
        let event = PolicyEvent {
            decision,
            rule: "session-plan",
            reason: format!("{}: {reason}", self.token_name),
            server: None,
            tool: None,
        };
        self.shared.policy_event(event);
    }
}

/// What the client is answered.
fn outcome(approved: bool, reason: &str, granted: &[Value], refused: &[PlanRefusal]) -> Value {
    json!({ "approved": approved, "reason": reason, "granted": granted, "refused": refused })
}

/// A client's title as it may appear in a record: short, no control characters.
fn shown(title: &str) -> String {
    super::methods::shorten(title)
}
