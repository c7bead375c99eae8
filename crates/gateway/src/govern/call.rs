//! One `tools/call`: the tool's standing (listed, blocked by its pin, never listed), the
//! arguments as the server will read them, the policy's decision, an approval if it
//! asks, the decision committed to the journal, and only then, with the permit that
//! commit produced, the call forwarded. Every failure on this path (no journal, no
//! answer, an unreadable request, a client that gave up) refuses the call and says why:
//! it fails closed.

use super::approvals::{Detach, GiveUp, Waited};
use super::arguments::Roots;
use super::hold::{self, Hold};
use super::permit::Permit;
use crate::approver::{Answer, Prompt};
use crate::clock::{end_of_day_ms, now_ms};
use crate::message::{self, code, Envelope};
use crate::session::{Release, Reply, Route, Session};
use countersign_audit::{Approval, Outcome, Record, RecordGrant, RecordKind};
use countersign_policy::{args_hash, CallInput, Decision, Gate, GrantLength, GrantRequest, Standing, Verdict};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A decision with what it was made from.
pub(super) struct Decided {
    pub(super) verdict: Verdict,
    class: countersign_policy::Classification,
    def: Option<countersign_policy::ToolDef>,
    /// Why the server's tools could not be listed, when they could not.
    unread: Option<String>,
    /// What "Allow similar" offers, for a call that asks.
    offer: Option<countersign_policy::SimilarOffer>,
}

/// A call on its way: what the client sent, where its answer goes, its decision record.
struct Call {
    env: Envelope,
    /// The gateway's task this call runs as, when the client asked for one (it is never
    /// answered "pending": the task waits as long as the prompt stays up).
    task: Option<String>,
    reply: Reply,
    record: Record,
    server: String,
    qualified: String,
    id: Option<Box<serde_json::value::RawValue>>,
    started: Instant,
}

/// Arguments larger than this are refused before anyone is asked to approve them.
const MAX_PROMPT_ARGS_BYTES: usize = 64 * 1024;

impl Session {
    /// Runs one call inside its span, `call{server, tool, call, decision}` (the record's
    /// id as `call`), within the session's: every log line of the call carries them.
    /// Fields are names and ids only, never an argument.
    pub(crate) async fn call_tool(self: Arc<Self>, env: Envelope, reply: Reply) {
        self.call_tool_as(env, reply, None).await
    }

    /// A call, run as the gateway's task `task` when given.
    pub(crate) async fn call_tool_as(self: Arc<Self>, env: Envelope, reply: Reply, task: Option<String>) {
        use tracing::field::Empty;
        let span = tracing::info_span!("call", server = Empty, tool = Empty, call = Empty, decision = Empty);
        self.call_tool_in_span(env, reply, task).instrument(span).await
    }

    async fn call_tool_in_span(self: Arc<Self>, mut env: Envelope, reply: Reply, task: Option<String>) {
        let started = Instant::now();
        let id = env.id().map(|r| r.to_owned());
        let bad = |msg: &str| message::error_response(id.as_deref(), code::INVALID_PARAMS, msg);
        let mut params = match env.params() {
            Ok(p @ Value::Object(_)) => p,
            _ => return self.answer(reply, bad("tools/call needs params with a tool `name`")),
        };
        let Some(name) = params.get("name").and_then(Value::as_str).map(str::to_string) else {
            return self.answer(reply, bad("tools/call needs a string `name`"));
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(a @ Value::Object(_)) => a.clone(),
            Some(_) => return self.answer(reply, bad("tools/call `arguments` must be an object")),
        };
        let (server, tool) = match &self.route {
            Route::Single(server) => (server.clone(), name.clone()),
            Route::Aggregate => match crate::session::split_name(&name).filter(|(s, _)| self.has_server(s)) {
                Some((server, tool)) => {
                    let (server, tool) = (server.to_string(), tool.to_string());
                    params["name"] = Value::String(tool.clone());
                    env.set_params(&params);
                    (server, tool)
                }
                None => return self.answer(reply, bad(&format!("unknown tool `{name}`: names are `server__tool`"))),
            },
        };

        let span = tracing::Span::current();
        span.record("server", tracing::field::display(&server)).record("tool", tracing::field::display(&tool));
        let shared = self.shared.clone();
        let Some(Decided { verdict, class, def, unread, offer }) =
            self.decide_call(&server, &tool, &arguments, true).await
        else {
            return self.answer(reply, bad(&format!("unknown server `{server}`")));
        };
        let (client_name, client_version) = self.client();
        let now_ms = now_ms();

        let mut record = shared.record(RecordKind::Call, verdict.decision);
        record.client = Some(self.token_name.clone());
        record.client_name = client_name.clone();
        record.client_version = client_version;
        record.session = Some(self.record_session());
        record.trace_id = crate::trace_context::trace_id(&params);
        record.server = Some(server.clone());
        record.tool = Some(tool.clone());
        record.method = Some("tools/call".into());
        record.arguments = Some(shared.redactor.redact_fields(&arguments, &class.redact));
        record.rule = Some(verdict.rule.clone());
        record.reason = Some(verdict.reason.clone());
        record.policy_version = Some(verdict.policy_version.clone());
        record.class = Some(verdict.class);
        record.grant = verdict.grant.clone().map(|id| RecordGrant::Used { id });
        span.record("call", tracing::field::display(record.id))
            .record("decision", tracing::field::display(verdict.decision.as_str()));
        tracing::debug!(rule = %verdict.rule, "decided");
        record.label = verdict.label.clone();
        let qualified = format!("mcp__{server}__{tool}");
        if let (Some(why), true) = (unread, verdict.rule == "unlisted") {
            // Not "never listed": the list could not be read. Still not run, and said so.
            record.rule = Some("listing".into());
            record.reason = Some(format!("the tools of server `{server}` could not be listed: {why}"));
            let text = format!(
                "Countersign did not run `{qualified}`: it could not read the tools of server `{server}` to \
                 check this one ({why}). Try again."
            );
            return self.refuse(record, reply, id.as_deref(), Outcome::Error, started, &text).await;
        }

        match verdict.decision {
            Decision::Allow => {}
            Decision::Deny => {
                let text = denial_text(&verdict, &qualified, shared.config.path.as_deref());
                return self.refuse(record, reply, id.as_deref(), Outcome::Denied, started, &text).await;
            }
            Decision::Ask => {
                if let Some(unfit) = unfit_to_ask(def.as_ref(), &arguments) {
                    record.reason = Some(unfit.reason());
                    let text = unfit.text(&qualified);
                    return self.refuse(record, reply, id.as_deref(), Outcome::Denied, started, &text).await;
                }
                let prompt = Prompt {
                    id: record.id.simple().to_string(),
                    // A stateless call is its own "session": an approval for the session
                    // releases this call only and leaves no grant (see `grant`).
                    session: match self.stateless {
                        true => format!("stateless-call-{}", record.id.simple()),
                        false => self.id.clone(),
                    },
                    client: self.token_name.clone(),
                    client_name,
                    server: server.clone(),
                    tool: tool.clone(),
                    arguments: arguments.clone(),
                    args_hash: args_hash(&arguments),
                    reason: verdict.reason.clone(),
                    deadline_ms: now_ms + shared.config.gateway.approval_timeout_secs * 1000,
                    waiting: 1,
                    similar: offer,
                    route: verdict.route.clone().filter(|r| !r.is_local()).map(|route| crate::approver::RoutedTo {
                        route,
                        class: verdict.class.to_string(),
                        policy_version: verdict.policy_version.clone(),
                        arguments: record.arguments.clone().unwrap_or(Value::Null),
                    }),
                    asked_by: None,
                    plan: None,
                };
                // Registered before the wait starts, so a cancellation sent right after the
                // call is not missed.
                // A stateless call is withdrawn by closing its stream, not by id.
                let give_up = id.as_ref().filter(|_| !self.stateless).map(|id| self.register_wait(id.get()));
                let call = Call { env, task, reply, record, server, qualified, id, started };
                tokio::spawn(async move { self.ask_then_forward(prompt, call, give_up).await }.in_current_span());
                return;
            }
        }
        if let Some(task) = &task {
            self.note_task(task, "running".into());
        }
        self.commit_and_forward(Call { env, task, reply, record, server, qualified, id, started }).await;
    }

    /// The policy's decision on one call as things stand now: the tool's definition and
    /// standing, the arguments as the server will read them, the kill switch, the grants
    /// (a single-use grant it uses is spent when `spend`). `None` for an unknown server.
    pub(super) async fn decide_call(
        &self,
        server: &str,
        tool: &str,
        arguments: &Value,
        spend: bool,
    ) -> Option<Decided> {
        let shared = &self.shared;
        let servers = shared.servers();
        let config = servers.get(server)?;
        let info = &config.info;
        let policy = shared.policy.load_full();
        // A server nothing of which may be reached is not started to learn its tools.
        let reachable = policy.server_gate(info, &self.token_name, false).is_none();
        let (def, unread) = match reachable {
            true => match self.tool_def(server, tool).await {
                Ok(def) => (def, None),
                Err(why) => (None, Some(why.to_string())),
            },
            false => (None, None),
        };
        let identity = self.identity();
        let class = self.tool_class(&policy, info, tool, def.as_ref());
        let local = matches!(config.transport, crate::config::Transport::Stdio { .. });
        let roots = || Roots::of(config).with_client(self.client_roots(server).as_deref());
        // Decided and any single-use grant spent under one lock: two identical calls
        // cannot both use one grant.
        let mut grants = shared.grants.lock().unwrap_or_else(|p| p.into_inner());
        let read = super::arguments::read_as_server(&policy, &grants, local, roots, arguments);
        let blocked = shared.pins.lock().unwrap_or_else(|p| p.into_inner()).blocked(server, tool);
        let blocked = blocked.or_else(|| in_data_folder(&shared.home, &read.files));
        let standing = match (&blocked, &def) {
            (Some((rule, why)), _) => Standing::Blocked { rule, why },
            (None, None) => Standing::Unlisted,
            (None, Some(_)) => Standing::Listed,
        };
        let gate = Gate { paused: shared.paused.load(std::sync::atomic::Ordering::SeqCst), standing };
        let call = CallInput {
            identity: &identity,
            server: info,
            tool,
            def: def.as_ref(),
            arguments,
            resolved: read.resolved.as_ref(),
            grants: Some(&grants),
            gate,
            now_ms: now_ms(),
        };
        let mut verdict = policy.decide_classified(&call, &class);
        shared.who.load().overrule(&mut verdict);
        if let (Some(grant), true) = (&verdict.grant, spend) {
            grants.spend(grant);
        }
        drop(grants);
        let offer = match (spend, verdict.decision) {
            (true, Decision::Ask) => {
                let roots = Roots::of(config).with_client(self.client_roots(server).as_deref());
                let offer =
                    super::offer::similar_offer(&policy, info, tool, class.class, &self.token_name, &roots, arguments);
                // Every client behind the shim socket speaks as one name: a grant for a
                // while would reach the others too, so theirs lasts for this session.
                let session_ok = policy.grant_settings().0.lengths.contains(&GrantLength::Session) && !self.stateless;
                match self.door {
                    crate::session::Door::Http => offer,
                    crate::session::Door::Socket => offer.filter(|_| session_ok).map(|o| o.for_session()),
                }
            }
            _ => None,
        };
        Some(Decided { verdict, class, def, unread, offer })
    }

    /// After a person approved: the call runs only if nothing that would now refuse it
    /// changed while it waited (the policy, a pin, the kill switch, its client's token; a
    /// shim socket's client has no token, its open connection is its credential).
    async fn still_allowed(&self, prompt: &Prompt, server: &str) -> Result<(), String> {
        if self.door == crate::session::Door::Http && !self.shared.tokens.holds(&self.token_name) {
            return Err(format!("its client token `{}` was revoked", self.token_name));
        }
        match self.decide_call(server, &prompt.tool, &prompt.arguments, false).await {
            Some(d) if d.verdict.decision != Decision::Deny => Ok(()),
            Some(d) => Err(format!("{} (rule `{}`)", d.verdict.reason, d.verdict.rule)),
            None => Err(format!("server `{server}` is no longer configured")),
        }
    }

    /// Waits for the person's answer (or the deadline, or the client giving up), then
    /// forwards or refuses. An approval for longer than once leaves a grant; a denial or
    /// timeout counts towards locking the tool. A call whose client gave up never runs,
    /// whatever answer comes later.
    async fn ask_then_forward(self: Arc<Self>, prompt: Prompt, mut call: Call, give_up: Option<GiveUp>) {
        let shared = self.shared.clone();
        let timeout = Duration::from_secs(shared.config.gateway.approval_timeout_secs);
        let qualified = call.qualified.clone();
        let pending_after = match call.task {
            Some(_) => None,
            None => shared.config.gateway.approval_pending_after,
        };
        let hold = Hold::of(&call.env, pending_after, timeout);
        let detach = Detach::default();
        let gone = {
            let closed = call.reply.closed();
            let (give_up, detach) = (give_up.clone(), detach.clone());
            async move {
                let why = tokio::select! {
                    why = async { match &give_up { Some(g) => g.given_up().await, None => std::future::pending().await } } => why,
                    () = closed => "its client went away",
                };
                // Answered "pending", the call no longer has a client waiting: its answer
                // dropping is not the client giving up.
                if detach.is_set() {
                    std::future::pending::<()>().await;
                }
                why
            }
        };
        let admit = || {
            let settings = shared.policy.load().grant_settings().0.clone();
            shared.grants.lock().unwrap_or_else(|p| p.into_inner()).admit_prompt(&prompt.client, now_ms(), &settings)
        };
        let waiting = shared.approvals.wait(prompt.clone(), timeout, admit, gone, detach.clone());
        tokio::pin!(waiting);
        let who = match &prompt.route {
            Some(to) => to.route.who(),
            None => shared.approvals.who_answers(),
        };
        if let Some(task) = &call.task {
            self.note_task(task, format!("waiting for approval from {who}"));
        }
        let asked = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval_at(asked + hold::PROGRESS_EVERY, hold::PROGRESS_EVERY);
        let pending_at = async {
            match hold.pending_after() {
                Some(after) => tokio::time::sleep_until(asked + after).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(pending_at);
        let mut sent = 0;
        let waited = loop {
            tokio::select! {
                waited = &mut waiting => break waited,
                _ = ticks.tick(), if !detach.is_set() => {
                    sent += 1;
                    if let Some(note) = hold.progress(sent, asked.elapsed(), &who) {
                        call.reply.notify(note);
                    }
                }
                () = &mut pending_at, if !detach.is_set() => {
                    detach.set();
                    self.answer_pending(&prompt, &mut call, &who, timeout.saturating_sub(asked.elapsed())).await;
                }
            }
        };
        if let Some(id) = &call.id {
            self.forget_wait(id.get());
        }
        if detach.is_set() {
            return self.settle_detached(&prompt, call, waited).await;
        }
        let gave_up = give_up.as_ref().and_then(GiveUp::why);
        let (outcome, text) = match waited {
            Waited::Answered(Answer::Approved { .. } | Answer::Routed { approved: true, .. }) if gave_up.is_some() => {
                return self.gone(call, gave_up.unwrap_or_default()).await;
            }
            Waited::Answered(answer @ (Answer::Approved { .. } | Answer::Routed { approved: true, .. })) => {
                call.record.approval = Some(Approval::Approved);
                call.record.approver = Some("self".into());
                if let Answer::Routed { by, request, .. } = &answer {
                    call.record.approver = Some(by.clone());
                    call.record.request_id = Some(request.clone());
                    call.record.reason = Some(format!(
                        "{} (approved by {by} through the hub, request {request})",
                        call.record.reason.clone().unwrap_or_default()
                    ));
                }
                if let Err(why) = self.still_allowed(&prompt, &call.server).await {
                    call.record.decision = Decision::Deny;
                    tracing::Span::current().record("decision", tracing::field::display(Decision::Deny.as_str()));
                    call.record.rule = Some("changed-while-waiting".into());
                    call.record.reason = Some(format!("approved, then refused: {why}"));
                    let text = format!(
                        "Countersign did not run `{qualified}`: it was approved, but this changed while it waited: {why}."
                    );
                    return self
                        .refuse(call.record, call.reply, call.id.as_deref(), Outcome::Denied, call.started, &text)
                        .await;
                }
                if let Answer::Approved { length, condition, similar, .. } = answer {
                    if length != GrantLength::Once || similar {
                        self.grant(&prompt, length, condition.as_deref(), similar, &mut call.record);
                    }
                }
                if let Some(task) = &call.task {
                    self.note_task(task, "approved; running".into());
                }
                return self.commit_and_forward(call).await;
            }
            Waited::Gone(why) => return self.gone(call, why).await,
            Waited::Superseded => return self.gone(call, "an identical call took its answer").await,
            Waited::NotAdmitted => {
                call.record.reason = Some("too many approval prompts from this client in the last minute".into());
                let text = format!(
                    "Countersign refused `{qualified}` without asking: this client asked for too many approvals in \
                     the last minute. Try again later."
                );
                return self
                    .refuse(call.record, call.reply, call.id.as_deref(), Outcome::Denied, call.started, &text)
                    .await;
            }
            Waited::TooManyWaiting => {
                call.record.reason = Some("too many of this client's calls wait for approval".into());
                let text = format!(
                    "Countersign refused `{qualified}` without asking: {} calls from this client already wait for \
                     approval. Answer or cancel those first.",
                    super::approvals::WAITING_PER_CLIENT
                );
                return self
                    .refuse(call.record, call.reply, call.id.as_deref(), Outcome::Denied, call.started, &text)
                    .await;
            }
            Waited::Answered(Answer::Denied) => {
                call.record.approval = Some(Approval::Denied);
                call.record.approver = Some("self".into());
                let text = match &prompt.route {
                    Some(to) => format!(
                        "Countersign withdrew its request to {} for `{qualified}` (denied on this computer); it was not run.",
                        to.route.who()
                    ),
                    None => format!("The user denied this call to `{qualified}` in Countersign; it was not run."),
                };
                (Outcome::Denied, text)
            }
            Waited::Answered(Answer::Routed { by, request, .. }) => {
                call.record.approval = Some(Approval::Denied);
                call.record.approver = Some(by.clone());
                call.record.request_id = Some(request.clone());
                call.record.reason = Some(format!(
                    "{} (denied by {by} through the hub, request {request})",
                    call.record.reason.clone().unwrap_or_default()
                ));
                (Outcome::Denied, format!("{by} denied this call to `{qualified}`; it was not run."))
            }
            Waited::Answered(Answer::Refused(why)) => {
                call.record.reason =
                    Some(format!("{} (not asked: {why})", call.record.reason.clone().unwrap_or_default()));
                let text = format!("Countersign refused `{qualified}`: {why}. It was not run.");
                return self
                    .refuse(call.record, call.reply, call.id.as_deref(), Outcome::Denied, call.started, &text)
                    .await;
            }
            Waited::TimedOut => {
                call.record.approval = Some(Approval::Timeout);
                let text = format!(
                    "Countersign asked for approval of `{qualified}` but got no answer within {}s, so it \
                     was not run. Try again and approve it when asked.",
                    timeout.as_secs()
                );
                (Outcome::Timeout, text)
            }
        };
        self.count_denial(&prompt);
        self.refuse(call.record, call.reply, call.id.as_deref(), outcome, call.started, &text).await;
    }

    /// The call has waited as long as its client would: it is answered "pending" (a tool
    /// error saying who answers and that the same call goes through once approved), its
    /// record committed, and it stays in the waiting room detached from its client.
    async fn answer_pending(&self, prompt: &Prompt, call: &mut Call, who: &str, left: Duration) {
        if let Some(id) = &call.id {
            self.forget_wait(id.get());
        }
        let waited = call.started.elapsed().as_secs();
        call.record.reason =
            Some(format!("{} (answered pending after {waited}s)", call.record.reason.clone().unwrap_or_default()));
        if let Err(e) = self.shared.journal.commit(call.record.clone()).await {
            tracing::error!(error = %e, "audit commit of a pending call failed");
        }
        tracing::info!(tool = %call.qualified, prompt = %prompt.id, "answered pending; the prompt stays up");
        let text = hold::pending_text(&call.qualified, who, &prompt.id, left);
        let reply = std::mem::replace(&mut call.reply, Reply::nobody());
        self.answer(reply, message::tool_error_result(call.id.as_deref(), &text));
    }

    /// How a call answered "pending" ends: an approval leaves a grant for its retry (a
    /// single-use one bound to these arguments, or what the person chose), a denial or
    /// no answer counts as one, and nothing is ever run. Its committed record gets the
    /// outcome.
    async fn settle_detached(&self, prompt: &Prompt, call: Call, waited: Waited) {
        let (record_id, started) = (call.record.id, call.started);
        let (outcome, detail) = match waited {
            Waited::Answered(answer @ (Answer::Approved { .. } | Answer::Routed { approved: true, .. })) => {
                // A routed approval covers the retry once, as an approval for once does.
                let (length, condition, similar) = match answer {
                    Answer::Approved { length, condition, similar, .. } => (length, condition, similar),
                    _ => (GrantLength::Once, None, false),
                };
                let issued = self.issue_grant(prompt, length, condition.as_deref(), similar, call.record.class);
                match issued {
                    Ok(grant) => {
                        if matches!(grant.scope, countersign_policy::GrantScope::Once { .. }) {
                            let (shared, id) = (self.shared.clone(), grant.id.clone());
                            tokio::spawn(async move {
                                tokio::time::sleep(hold::RETRY_WINDOW).await;
                                if shared.grants.lock().unwrap_or_else(|p| p.into_inner()).revoke(&id) {
                                    tracing::info!(grant = %id, "the retry window of an approved pending call ended");
                                }
                            });
                        }
                        self.shared.policy_event(crate::shared::PolicyEvent {
                            decision: countersign_audit::Decision::Allow,
                            rule: "grant-issued",
                            reason: format!(
                                "call {record_id} was approved after it was answered pending: grant {} ({}) for its retry",
                                grant.id,
                                length.as_str()
                            ),
                            server: Some(prompt.server.clone()),
                            tool: Some(prompt.tool.clone()),
                        });
                        (
                            Outcome::Cancelled,
                            format!("not run: answered pending; approved later, grant {} for its retry", grant.id),
                        )
                    }
                    Err(e) => {
                        (Outcome::Cancelled, format!("not run: answered pending; approved later, but no grant: {e}"))
                    }
                }
            }
            Waited::Answered(Answer::Denied | Answer::Routed { .. }) => {
                self.count_denial(prompt);
                (Outcome::Denied, "answered pending, then denied".to_string())
            }
            Waited::Answered(Answer::Refused(why)) => {
                (Outcome::Denied, format!("answered pending, then refused: {why}"))
            }
            Waited::TimedOut => {
                self.count_denial(prompt);
                (Outcome::Timeout, "answered pending, and no answer came".to_string())
            }
            Waited::Superseded => (Outcome::Cancelled, "not run: its retry took the answer".to_string()),
            Waited::Gone(why) => (Outcome::Cancelled, format!("not run: {why}")),
            Waited::NotAdmitted | Waited::TooManyWaiting => (Outcome::Denied, "not asked".to_string()),
        };
        tracing::info!(tool = %call.qualified, "pending call settled: {detail}");
        self.shared.outcome(crate::session::outcome(record_id, started, outcome, Some(&detail)));
    }

    /// A denial (or an unanswered prompt) counts towards locking the tool for its client.
    fn count_denial(&self, prompt: &Prompt) {
        let settings = self.shared.policy.load().grant_settings().0.clone();
        let locked = self.shared.grants.lock().unwrap_or_else(|p| p.into_inner()).record_denial(
            &prompt.client,
            &prompt.server,
            &prompt.tool,
            now_ms(),
            &settings,
        );
        if let Some(until) = locked {
            let secs = until.saturating_sub(now_ms()) / 1000;
            tracing::warn!(server = %prompt.server, tool = %prompt.tool, client = %prompt.client, "denied repeatedly; locked for {secs}s");
        }
    }

    /// Records a call whose client gave up before it ran; nothing is answered (the client
    /// no longer waits for it) and nothing is forwarded.
    async fn gone(&self, call: Call, why: &str) {
        let Call { mut record, started, qualified, .. } = call;
        record.reason = Some(format!("{} (not run: {why})", record.reason.clone().unwrap_or_default()));
        let record_id = record.id;
        if let Err(e) = self.shared.journal.commit(record).await {
            tracing::error!(error = %e, "audit commit of an abandoned call failed");
        }
        tracing::info!(tool = %qualified, "not run: {why}");
        let detail = format!("not run: {why}");
        self.shared.outcome(crate::session::outcome(record_id, started, Outcome::Cancelled, Some(&detail)));
    }

    /// Leaves a grant for an approval longer than once, within the policy's limits.
    fn grant(&self, prompt: &Prompt, length: GrantLength, condition: Option<&str>, similar: bool, record: &mut Record) {
        if self.stateless && length == GrantLength::Session {
            // No session to last for: the approval covers this call and leaves nothing.
            record.reason = Some(format!(
                "{} (approved for the session, but a stateless request has none: this call only)",
                record.reason.clone().unwrap_or_default()
            ));
            return;
        }
        match self.issue_grant(prompt, length, condition, similar, record.class) {
            Ok(g) => {
                let what = match &g.similar {
                    Some(scope) => format!("similar: {}", scope.offer.words),
                    None => format!("for {}", length.as_str()),
                };
                record.reason =
                    Some(format!("{} (approved {what}, grant {})", record.reason.clone().unwrap_or_default(), g.id));
                record.grant = Some(RecordGrant::Issued { id: g.id.clone(), length });
            }
            Err(e) => {
                tracing::warn!("approval kept to this call only: {e}");
                record.reason = Some(format!("{} (approved once: {e})", record.reason.clone().unwrap_or_default()));
            }
        }
    }

    /// Issues the grant an approval of `prompt` leaves, within the policy's limits.
    fn issue_grant(
        &self,
        prompt: &Prompt,
        length: GrantLength,
        condition: Option<&str>,
        similar: bool,
        class: Option<countersign_policy::ToolClass>,
    ) -> Result<countersign_policy::Grant, countersign_policy::GrantError> {
        let offer = match (similar, &prompt.similar) {
            (false, _) => None,
            (true, Some(offer)) => Some(offer),
            (true, None) => {
                return Err(countersign_policy::GrantError::Similar("none was offered for this call".into()));
            }
        };
        let policy = self.shared.policy.load_full();
        let (settings, _) = policy.grant_settings();
        let request = GrantRequest {
            id: format!("g-{}", &prompt.id[..12.min(prompt.id.len())]),
            client_token: &prompt.client,
            session: &prompt.session,
            server: &prompt.server,
            tool: &prompt.tool,
            arguments: &prompt.arguments,
            length,
            condition,
            similar: offer,
            plan: false,
        };
        self.shared.grants.lock().unwrap_or_else(|p| p.into_inner()).issue(
            request,
            settings,
            policy.once_only(),
            class.unwrap_or(countersign_policy::ToolClass::Write),
            now_ms(),
            end_of_day_ms(),
        )
    }

    /// Commits the decision record, then forwards with the permit the commit produced: no
    /// record, no forwarding.
    async fn commit_and_forward(&self, call: Call) {
        let Call { env, reply, record, server, qualified, id, started, .. } = call;
        let permit = match self.shared.journal.commit(record).await {
            Ok(committed) => Permit::from(committed),
            Err(e) => {
                tracing::error!(error = %e, "audit commit failed; refusing the call");
                return self.answer(reply, message::tool_error_result(id.as_deref(), &commit_failed(&e, &qualified)));
            }
        };
        self.forward(&server, env, reply, Release::Permit(permit, started)).await;
    }

    /// Records a refused call with its outcome and tells the client why.
    async fn refuse(
        &self,
        record: Record,
        reply: Reply,
        id: Option<&serde_json::value::RawValue>,
        outcome: Outcome,
        started: Instant,
        text: &str,
    ) {
        let record_id = record.id;
        if let Err(e) = self.shared.journal.commit(record).await {
            tracing::error!(error = %e, "audit commit of a refusal failed");
        }
        self.shared.outcome(crate::session::outcome(record_id, started, outcome, Some(text)));
        self.answer(reply, message::tool_error_result(id, text));
    }
}

/// Why a call that names a file in Countersign's own data folder (its tokens, journal,
/// pins) is refused, whatever any rule says: no AI tool reads or writes it.
fn in_data_folder(home: &crate::home::Home, files: &[Option<String>]) -> Option<(&'static str, String)> {
    if files.is_empty() {
        return None;
    }
    let folder = std::fs::canonicalize(home.dir()).unwrap_or_else(|_| home.dir().to_path_buf());
    files.iter().flatten().find(|f| std::path::Path::new(f).starts_with(&folder)).map(|f| {
        ("data-folder", format!("`{f}` is in Countersign's own data folder, which no AI tool may read or write"))
    })
}

/// What a client is told when its call's record could not be committed.
pub fn commit_failed(e: &countersign_audit::JournalError, what: &str) -> String {
    match e {
        countersign_audit::JournalError::Full => format!(
            "Countersign did not run `{what}`: its audit journal is full of records the company's hub has not \
             received yet, and policy says to stop rather than lose them. Calls work again once the hub is \
             reachable (check the network, or `countersign sync --now`)."
        ),
        _ => format!("Countersign could not record this call to `{what}` in its audit journal, so it was not run."),
    }
}

/// Why a call that asks may not be put to a person at all (case 15).
#[derive(Debug, PartialEq)]
enum Unfit {
    /// An argument the tool's input schema does not declare.
    Undeclared(String),
    /// Arguments of this many bytes (as JSON), more than [`MAX_PROMPT_ARGS_BYTES`].
    TooLarge(usize),
}

impl Unfit {
    /// The journal record's reason.
    fn reason(&self) -> String {
        match self {
            Unfit::Undeclared(name) => format!("argument `{name}` is not in the tool's input schema"),
            Unfit::TooLarge(size) => format!("arguments of {size} bytes are too large to approve"),
        }
    }

    /// What the client is told.
    fn text(&self, qualified: &str) -> String {
        match self {
            Unfit::Undeclared(name) => format!(
                "Countersign refused `{qualified}`: its argument `{name}` is not one the tool declares, so no \
                 approval was asked."
            ),
            Unfit::TooLarge(size) => format!(
                "Countersign refused `{qualified}`: its arguments ({size} bytes) are larger than the \
                 {MAX_PROMPT_ARGS_BYTES} bytes a person can review, so no approval was asked."
            ),
        }
    }
}

/// Decides, before any prompt, whether a call that asks may be shown to a person: an
/// argument its schema does not declare (when the schema lists its properties), or more
/// than [`MAX_PROMPT_ARGS_BYTES`] of arguments, refuses it, since a person approving it
/// could not know what it does.
fn unfit_to_ask(def: Option<&countersign_policy::ToolDef>, arguments: &Value) -> Option<Unfit> {
    if let Some(unknown) = def.and_then(|d| unknown_argument(d, arguments)) {
        return Some(Unfit::Undeclared(unknown));
    }
    let size = arguments.to_string().len();
    (size > MAX_PROMPT_ARGS_BYTES).then_some(Unfit::TooLarge(size))
}

/// An argument the tool's input schema does not declare, when the schema lists its
/// properties: a person approving the call would not know what it does (case 15).
fn unknown_argument(def: &countersign_policy::ToolDef, arguments: &Value) -> Option<String> {
    let declared = def.input_schema.get("properties")?.as_object()?;
    arguments.as_object()?.keys().find(|k| !declared.contains_key(*k)).cloned()
}

fn denial_text(verdict: &Verdict, qualified: &str, config: Option<&std::path::Path>) -> String {
    let place = config.map_or_else(|| "the Countersign configuration".to_string(), |p| p.display().to_string());
    format!(
        "Countersign blocked this call: {} (rule `{}`, policy {}). It was not run. To get access, ask your \
         administrator, or have `{qualified}` added to the `ask` or `allow` list under [policy] in {place}.",
        verdict.reason, verdict.rule, verdict.policy_version
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_policy::ToolDef;

    fn tool(schema: Value) -> ToolDef {
        ToolDef::from_json(&json!({"name": "write_file", "inputSchema": schema})).unwrap()
    }

    /// `{"content":"…"}` exactly `bytes` long as JSON.
    fn arguments_of(bytes: usize) -> Value {
        let args = json!({ "content": "a".repeat(bytes - r#"{"content":""}"#.len()) });
        assert_eq!(args.to_string().len(), bytes);
        args
    }

    #[test]
    fn sec_15_arguments_over_64_kib_are_refused_before_a_prompt() {
        let def = tool(json!({"type": "object", "properties": {"content": {"type": "string"}}}));
        for def in [Some(&def), None] {
            assert_eq!(unfit_to_ask(def, &arguments_of(64 * 1024)), None, "64 KiB exactly may be asked");
            assert_eq!(unfit_to_ask(def, &arguments_of(64 * 1024 + 1)), Some(Unfit::TooLarge(64 * 1024 + 1)));
        }
        // Many small values count as much as one large one.
        let many: serde_json::Map<String, Value> = (0..9000).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(matches!(unfit_to_ask(None, &Value::Object(many)), Some(Unfit::TooLarge(n)) if n > 64 * 1024));
        let text = Unfit::TooLarge(70_000).text("mcp__fs__write_file");
        assert!(text.contains("70000 bytes") && text.contains("65536") && text.contains("no approval was asked"));
    }

    #[test]
    fn sec_15_an_argument_the_schema_does_not_declare_is_refused_before_a_prompt() {
        let def = tool(json!({"type": "object", "properties": {"path": {}, "content": {}}}));
        assert_eq!(unfit_to_ask(Some(&def), &json!({"path": "/a", "content": "x"})), None);
        assert_eq!(
            unfit_to_ask(Some(&def), &json!({"path": "/a", "chmod": "777"})),
            Some(Unfit::Undeclared("chmod".into()))
        );
        // A schema that lists no properties declares nothing to hold the call to.
        assert_eq!(unfit_to_ask(Some(&tool(json!({"type": "object"}))), &json!({"chmod": "777"})), None);
        assert!(Unfit::Undeclared("chmod".into()).reason().contains("`chmod`"));
    }
}
