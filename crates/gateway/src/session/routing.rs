//! Messages crossing a session: client requests in, upstream answers and upstream-made
//! messages out, each with its id or token mapped back to the side it came from.

use super::{outcome, Answer, AnswerTo, ClientTx, InFlight, Pending, Release, Reply, Route, Session};
use crate::govern::access::Subject;
use crate::govern::methods::{shorten, Listing, Operation};
use crate::govern::server_requests::{self, ServerRequest};
use crate::govern::{Outbound, OwnRequest};
use crate::message::{self, code, Envelope, Kind};
use countersign_audit::Outcome;
use countersign_policy::ToolDef;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

impl Session {
    /// Takes one client request, already found in the method table as `op`. Returns the
    /// stream its answer (and, for SSE, its progress and related server messages) arrives
    /// on; the stream ends after the answer. On a line, the answer goes on the line.
    pub async fn handle_request(self: &Arc<Self>, op: Operation, env: Envelope, to: AnswerTo) -> Answer {
        use tracing::Instrument;
        self.clone().handle_request_in_span(op, env, to).instrument(self.span.clone()).await
    }

    async fn handle_request_in_span(self: Arc<Self>, op: Operation, env: Envelope, to: AnswerTo) -> Answer {
        if self.stateless {
            // Stateless requests come only through the HTTP face.
            let sse = matches!(to, AnswerTo::Stream);
            return self.stateless_request(op, env, sse).await;
        }
        self.touch();
        let claim = env.id().map(|id| (id, InFlight::claim(&self.in_flight, id.get())));
        if let Some((id, None)) = claim {
            let msg = format!("request id {} is already in flight in this session", id.get());
            let refusal = message::error_response(Some(id), message::code::INVALID_REQUEST, &msg);
            if let AnswerTo::Line(line) = &to {
                let _ = line.send(refusal);
                return Answer::OnLine;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(refusal);
            return Answer::Json(rx);
        }
        let (tx, answer) = match to {
            AnswerTo::Stream => {
                let (sink, events) = self.open_stream();
                (ClientTx::Stream(sink), Answer::Stream(events))
            }
            AnswerTo::Json => {
                let (tx, rx) = mpsc::unbounded_channel();
                (ClientTx::Json(tx), Answer::Json(rx))
            }
            AnswerTo::Line(line) => (ClientTx::Line(line), Answer::OnLine),
        };
        let mut reply = Reply::Client { tx, _in_flight: claim.and_then(|(_, c)| c) };
        if let Operation::Task(method) = op {
            match self.answer_task_request(method, &env, reply) {
                Ok(()) => return answer,
                Err(not_ours) => reply = not_ours,
            }
        }
        match (&self.route, op) {
            (_, Operation::Ping) => {
                let id = env.id().map(|r| r.to_owned());
                self.answer(reply, message::result_response(id.as_deref(), &serde_json::json!({})));
            }
            (_, Operation::Plan) => self.clone().declare_plan(env, reply).await,
            // Decided inline; only a call that waits for a person runs on its own task.
            (_, Operation::CallTool) if self.wants_task(&env) => self.clone().call_tool_as_task(env, reply).await,
            (_, Operation::CallTool) => self.clone().call_tool(env, reply).await,
            (Route::Single(server), _) => {
                let server = server.clone();
                self.single_request(&server, op, env, reply).await;
            }
            (Route::Aggregate, _) => self.aggregate_request(op, env, reply).await,
        }
        answer
    }

    /// A request on `/mcp/<server>` other than a tool call: lifecycle requests go as they
    /// are (never to a server this client may not reach), governed ones with their permit.
    pub(super) async fn single_request(&self, server: &str, op: Operation, env: Envelope, reply: Reply) {
        let started = std::time::Instant::now();
        let id = env.id().map(|r| r.to_owned());
        if op.is_governed() {
            let params = env.params().unwrap_or(Value::Null);
            let subject = Subject::of(op, &params);
            return match self.govern_access(Some(server), &subject, started).await {
                Ok(permit) => self.forward(server, env, reply, Release::Permit(permit, started)).await,
                Err(text) => self.answer(reply, message::error_response(id.as_deref(), code::INVALID_REQUEST, &text)),
            };
        }
        match op {
            Operation::Initialize | Operation::SetLogLevel => {
                self.forward(server, env, reply, Release::Lifecycle).await;
            }
            _ => {
                let text = format!("`{}` is not answered on /mcp/{server}", env.method().unwrap_or_default());
                self.answer(reply, message::error_response(id.as_deref(), code::METHOD_NOT_FOUND, &text));
            }
        }
    }

    /// Takes one client notification, already found in the table's allow-list as `op`.
    /// Notifications go only to servers that are running: none starts a server.
    pub async fn handle_notification(&self, op: Operation, mut env: Envelope) {
        self.touch();
        tracing::debug!(session = %super::short(&self.id), method = ?env.method(), "client notification");
        if op == Operation::Cancelled {
            let Ok(mut params) = env.params() else { return };
            let Some(request_id) = params.get("requestId").map(Value::to_string) else { return };
            // A call still waiting for a person is withdrawn: it will never run.
            if self.give_up_wait(&request_id, "its client cancelled it") {
                return;
            }
            // Map the client's request id to ours and tell only that request's upstream.
            let target = {
                let st = self.state();
                st.pending
                    .iter()
                    .find(|(_, p)| p.client_id.as_ref().is_some_and(|c| super::canonical_id(c.get()) == request_id))
                    .map(|(id, p)| (*id, p.server.clone()))
            };
            let Some((id, server)) = target else { return };
            // The client gave up on this request: free it now, since an upstream that honours
            // the cancellation never answers it.
            self.fail_pending_quietly(id, "cancelled by the client");
            params["requestId"] = Value::from(id);
            env.set_params(&params);
            self.send_plain(&server, &env).await;
            return;
        }
        if op == Operation::Initialized && self.route == Route::Aggregate {
            // The gateway already completed each upstream's handshake.
            return;
        }
        let servers: Vec<String> = self.servers().cloned().collect();
        for server in servers {
            self.send_plain(&server, &env).await;
        }
    }

    /// Sends a client message that needs no decision to `server`, if it is running.
    async fn send_plain(&self, server: &str, env: &Envelope) {
        let Some(link) = self.live_link(server) else { return };
        match Outbound::plain(env) {
            Ok(out) => {
                let _ = link.send(out).await;
            }
            Err(why) => tracing::warn!(server, "not forwarded: {why}"),
        }
    }

    /// Takes the client's answer to a request an upstream made (sampling, elicitation...).
    pub async fn handle_response(&self, mut env: Envelope) {
        self.touch();
        let target = env.id_u64().and_then(|id| self.state().server_requests.remove(&id));
        let Some(asked) = target else {
            tracing::debug!(session = %super::short(&self.id), "client answered an unknown request id");
            return;
        };
        if asked.kind == ServerRequest::Roots {
            self.hold_roots(&asked.server, &mut env);
        }
        env.set("id", asked.id);
        self.send_plain(&asked.server, &env).await;
    }

    /// The client's answer to a server's `roots/list`. A file server replaces the folders
    /// it was configured with by these, so for a local server with configured folders
    /// only roots inside them are passed on (none left: the configured ones are); the
    /// session remembers what the server holds, to read relative paths as it will.
    fn hold_roots(&self, server: &str, env: &mut Envelope) {
        let servers = self.shared.servers();
        let Some(config) = servers.get(server) else { return };
        let roots = crate::govern::arguments::Roots::of(config);
        let Some(result) = env.get("result").and_then(|r| serde_json::from_str::<Value>(r.get()).ok()) else {
            return;
        };
        let given: Vec<Value> = result.get("roots").and_then(Value::as_array).cloned().unwrap_or_default();
        let (kept, held, dropped) = crate::govern::arguments::narrow_roots(&given, &roots);
        if !dropped.is_empty() {
            let why = format!(
                "roots outside the folders server `{server}` was given were not passed on: {}",
                dropped.join(", ")
            );
            tracing::warn!(server, "{why}");
            self.shared.policy_event(crate::shared::PolicyEvent {
                decision: countersign_audit::Decision::Deny,
                rule: "roots",
                reason: why,
                server: Some(server.to_string()),
                tool: None,
            });
        }
        self.state().client_roots.insert(server.to_string(), held);
        let mut result = result;
        result["roots"] = Value::Array(kept);
        env.set("result", message::raw(&result.to_string()));
    }

    pub(super) fn on_upstream_message(&self, server: &str, text: String) {
        let mut env = match Envelope::parse(&text) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(server, "upstream sent an invalid JSON-RPC message: {e}");
                return;
            }
        };
        let mut st = self.state();
        match env.kind() {
            Kind::Response => {
                let Some(id) = env.id_u64() else {
                    tracing::warn!(server, "upstream answered an id the gateway never sent");
                    return;
                };
                let Some(pending) = st.pending.remove(&id) else { return };
                if pending.server != server {
                    tracing::warn!(server, "upstream answered another server's request id; ignored");
                    st.pending.insert(id, pending);
                    return;
                }
                if let Some(token) = &pending.progress {
                    st.progress.remove(token);
                }
                // On /mcp the gateway answered the client's initialize itself; an upstream's
                // answer does not change what was agreed with the client.
                if pending.method == "initialize" && self.route != Route::Aggregate {
                    // The version the upstream agreed to is the session's version.
                    if let Some(v) = env.get("result").and_then(|r| {
                        serde_json::from_str::<Value>(r.get())
                            .ok()?
                            .get("protocolVersion")?
                            .as_str()
                            .map(str::to_string)
                    }) {
                        st.protocol_version = Some(v);
                    }
                    let result = env.get("result").and_then(|r| serde_json::from_str::<Value>(r.get()).ok());
                    if let Some(mut result) = result {
                        if self.offer_tasks(&mut st, &mut result) {
                            env.set("result", message::raw(&result.to_string()));
                        }
                    }
                }
                let unreadable = |r: &serde_json::value::RawValue| serde_json::from_str::<Value>(r.get()).is_err();
                if pending.method == "tools/list" && env.get("result").is_some_and(unreadable) {
                    // A listing the gateway cannot read (nested past its parser's depth, a
                    // number no double holds) cannot be reviewed: not relayed.
                    tracing::warn!(server, "a tool listing could not be read; refused");
                    let why =
                        format!("server `{server}` sent a tool listing Countersign cannot read; it was not relayed");
                    if let Ok(error) = Envelope::parse(&message::error_response(env.id(), code::UPSTREAM_ERROR, &why)) {
                        env = error;
                    }
                }
                if pending.method == "tools/list" {
                    let reviewed = env.get("result").and_then(|r| self.review_listing(&mut st, server, r.get()));
                    let listed = env.get("result").and_then(|r| serde_json::from_str::<Value>(r.get()).ok());
                    if let Some(result) = &listed {
                        self.tools_learned(&mut st, server, result);
                    }
                    let offered = st.tasks_offered();
                    let result = match (reviewed, offered) {
                        (Some(result), _) => Some(result),
                        (None, true) => listed,
                        (None, false) => None,
                    };
                    if let Some(mut result) = result {
                        if offered {
                            Session::tools_as_tasks(&mut result);
                        }
                        env.set("result", message::raw(&result.to_string()));
                    }
                }
                drop(st);
                if self.stateless {
                    return self.stateless_settle(server, pending, env);
                }
                self.settle(pending, env);
            }
            Kind::Request if self.stateless => {
                drop(st);
                self.refuse_for_stateless(server, &env);
            }
            Kind::Request => {
                drop(st);
                self.on_server_request(server, env);
            }
            Kind::Notification if self.stateless && env.method() != Some("notifications/progress") => {
                match env.method().unwrap_or_default() {
                    "notifications/tools/list_changed" => {
                        st.forget_tools(server);
                        st.listings_stale();
                    }
                    "notifications/prompts/list_changed" | "notifications/resources/list_changed" => {
                        st.listings_stale();
                    }
                    _ => {}
                }
                self.stateless_note(&mut st, server, &env);
            }
            Kind::Notification => match env.method().unwrap_or_default() {
                "notifications/progress" => {
                    let Ok(mut params) = env.params() else { return };
                    let token = params.get("progressToken").and_then(Value::as_str).unwrap_or_default().to_string();
                    let Some((client_token, owner)) = st.progress.get(&token).map(|(t, o)| (t.clone(), *o)) else {
                        return;
                    };
                    params["progressToken"] = serde_json::from_str(client_token.get()).unwrap_or(Value::Null);
                    env.set_params(&params);
                    let text = env.to_json();
                    let stateless = self.stateless;
                    match st.pending.get(&owner).map(|p| &p.reply) {
                        Some(Reply::Client { tx: tx @ (ClientTx::Stream(_) | ClientTx::Live(_)), .. }) => {
                            tx.send(text);
                        }
                        _ if stateless => {}
                        _ => self.to_client(&mut st, text),
                    }
                }
                "notifications/cancelled" => {
                    // The upstream withdrew one of its own requests to the client.
                    let Ok(mut params) = env.params() else { return };
                    let theirs = params.get("requestId").map(Value::to_string).unwrap_or_default();
                    let ours = st
                        .server_requests
                        .iter()
                        .find(|(_, asked)| asked.server == server && asked.id.get() == theirs)
                        .map(|(ours, _)| *ours);
                    if let Some(ours) = ours {
                        st.server_requests.remove(&ours);
                        params["requestId"] = Value::from(ours);
                        env.set_params(&params);
                        self.to_client(&mut st, env.to_json());
                    }
                }
                "notifications/tools/list_changed" => {
                    st.forget_tools(server);
                    st.listings_stale();
                    self.to_client(&mut st, text);
                }
                // On /mcp a log message says which server wrote it, so no server speaks as
                // Countersign or as another server.
                "notifications/message" if self.route == Route::Aggregate => {
                    if server_requests::attribute_log(&mut env, server) {
                        self.to_client(&mut st, env.to_json());
                    }
                }
                "notifications/prompts/list_changed" | "notifications/resources/list_changed" => {
                    st.listings_stale();
                    self.to_client(&mut st, text);
                }
                _ => self.to_client(&mut st, text),
            },
        }
    }

    /// Delivers an answer to whoever asked, and records the call's outcome.
    pub(super) fn settle(&self, pending: Pending, mut env: Envelope) {
        if let Some((record_id, started)) = pending.audit {
            let (result, detail) = classify_answer(&env);
            // A server's error may repeat the arguments: tokens in it are redacted too.
            let detail = detail.map(|d| self.shared.redactor.redact_text(&d).into_owned());
            self.shared.outcome(outcome(record_id, started, result, detail.as_deref()));
        }
        match pending.reply {
            Reply::Client { tx, .. } => {
                if let Some(id) = pending.client_id {
                    env.set("id", id);
                }
                let _ = tx.send(env.to_json());
            }
            Reply::Internal(tx) => {
                let _ = tx.send(env);
            }
        }
    }

    pub(super) fn on_upstream_closed(&self, server: &str, reason: &str) {
        let failed: Vec<u64> = {
            let mut st = self.state();
            st.alive.insert(server.to_string(), false);
            st.forget_tools(server);
            st.server_requests.retain(|_, asked| asked.server != server);
            st.pending.iter().filter(|(_, p)| p.server == server).map(|(id, _)| *id).collect()
        };
        let why =
            format!("upstream server `{server}` stopped before answering ({reason}); the next request starts it again");
        for id in failed {
            self.fail_pending(id, &why);
        }
    }

    /// A request the server sends to the client: relayed, with who asks, only when servers
    /// may send it and the policy lets this one; refused and recorded otherwise.
    fn on_server_request(&self, server: &str, mut env: Envelope) {
        let upstream_id = env.id().map(|r| r.to_owned()).unwrap_or_else(|| message::raw("null"));
        let method = env.method().unwrap_or_default().to_string();
        let Some(kind) = ServerRequest::of(&method) else {
            let why = format!("`{}` is not a request servers may send through Countersign", shorten(&method));
            return self.refuse_server_request(server, &method, upstream_id, "method", &why);
        };
        if kind.is_governed() {
            let verdict = self.decide_server_request(server, &method);
            if verdict.decision == countersign_policy::Decision::Deny {
                return self.refuse_server_request(server, &method, upstream_id, &verdict.rule, &verdict.reason);
            }
            if !server_requests::attribute(&mut env, kind, server) {
                let why = "its params cannot be read, so it cannot be marked with who asks";
                return self.refuse_server_request(server, &method, upstream_id, "unreadable", why);
            }
            // Relayed once its record is committed (on a task: the upstream's reader must
            // not wait on the journal); no record, no relaying.
            let record = self.server_request_record(
                server,
                &method,
                countersign_audit::Decision::Allow,
                &verdict.rule,
                &verdict.reason,
            );
            let Some(me) = self.me.upgrade() else { return };
            let server = server.to_string();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let record_id = record.id;
                match me.shared.journal.commit(record).await {
                    Ok(_) => {
                        me.shared.outcome(super::outcome(record_id, started, Outcome::Ok, None));
                        me.relay_server_request(&server, env, upstream_id, kind);
                    }
                    Err(e) => {
                        let why = format!("its record could not be committed ({e})");
                        me.refuse_server_request(&server, &method, upstream_id, "journal", &why);
                    }
                }
            });
            return;
        }
        self.relay_server_request(server, env, upstream_id, kind);
    }

    /// Passes a server's request on to the client, with an id in the client's space.
    fn relay_server_request(
        &self,
        server: &str,
        mut env: Envelope,
        upstream_id: Box<serde_json::value::RawValue>,
        kind: ServerRequest,
    ) {
        let mut st = self.state();
        st.next_id += 1;
        let ours = st.next_id;
        st.server_requests.insert(ours, super::AskedByServer { server: server.to_string(), id: upstream_id, kind });
        env.set_id_u64(ours);
        self.to_client(&mut st, env.to_json());
    }

    /// The policy's word on a request `server` sends to this session's client.
    pub(super) fn decide_server_request(&self, server: &str, method: &str) -> countersign_policy::Verdict {
        let servers = self.shared.servers();
        let info = servers
            .get(server)
            .map(|s| s.info.clone())
            .unwrap_or_else(|| countersign_policy::ServerInfo::named(server));
        let identity = self.identity();
        let paused = self.shared.paused.load(std::sync::atomic::Ordering::SeqCst);
        let input = countersign_policy::AccessInput {
            identity: &identity,
            server: &info,
            access: countersign_policy::Access::ServerRequest { method },
            paused,
        };
        self.shared.policy.load().decide_access(&input)
    }

    /// The record of a server's request to the client.
    pub(super) fn server_request_record(
        &self,
        server: &str,
        method: &str,
        decision: countersign_audit::Decision,
        rule: &str,
        reason: &str,
    ) -> countersign_audit::Record {
        let mut record = self.shared.record(countersign_audit::RecordKind::Call, decision);
        record.client = Some(self.token_name.clone());
        record.session = Some(self.record_session());
        record.server = Some(server.to_string());
        record.method = Some(shorten(method));
        record.rule = Some(rule.to_string());
        record.reason = Some(reason.to_string());
        record.policy_version = Some(self.shared.policy.load().version().to_string());
        record
    }

    /// Records a refused server request (on a task of its own: nothing waits for it).
    pub(super) fn record_refused_server_request(&self, server: &str, method: &str, rule: &str, reason: &str) {
        let shared = self.shared.clone();
        let record = self.server_request_record(server, method, countersign_audit::Decision::Deny, rule, reason);
        let (started, id) = (std::time::Instant::now(), record.id);
        let runtime = shared.runtime.clone();
        runtime.spawn(async move {
            match shared.journal.commit(record).await {
                Ok(_) => shared.outcome(super::outcome(id, started, Outcome::Denied, None)),
                Err(e) => tracing::error!(error = %e, "could not record a server's refused request"),
            }
        });
    }

    /// Answers a server's request with an error instead of relaying it, and records that.
    pub(super) fn refuse_server_request(
        &self,
        server: &str,
        method: &str,
        upstream_id: Box<serde_json::value::RawValue>,
        rule: &str,
        why: &str,
    ) {
        tracing::warn!(server, "refused a server's request: {why}");
        self.record_refused_server_request(server, method, rule, why);
        let Some(link) = self.live_link(server) else { return };
        let code = if rule == "method" { message::code::METHOD_NOT_FOUND } else { message::code::INVALID_REQUEST };
        let answer = Outbound::refusal(&upstream_id, code, &format!("Countersign refused this request: {why}"));
        tokio::spawn(async move {
            let _ = link.send(answer).await;
        });
    }

    /// The definition of `tool` on `server`, asking the upstream for its tool list when
    /// the session has not seen one. `None`: the server does not list that tool.
    /// `Err` when the list could not be read (the server did not start or answer).
    pub(crate) async fn tool_def(&self, server: &str, tool: &str) -> Result<Option<ToolDef>, super::LinkError> {
        {
            let st = self.state();
            if let Some(tools) = st.tools.get(server).filter(|_| self.tools_fresh(&st, server)) {
                return Ok(tools.get(tool).cloned());
            }
        }
        let link = self.link(server).await?;
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let params = match &cursor {
                Some(c) => serde_json::json!({ "cursor": c }),
                None => serde_json::json!({}),
            };
            // The answer is learned (and reviewed against the pins) on its way in.
            let reply = self.internal_request(server, &link, OwnRequest::List(Listing::Tools), params).await?;
            cursor = reply
                .get("result")
                .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
                .and_then(|r| r.get("nextCursor").and_then(Value::as_str).map(str::to_string));
            if cursor.is_none() {
                break;
            }
        }
        let mut st = self.state();
        Ok(st.tools.entry(server.to_string()).or_default().get(tool).cloned())
    }

    /// The class of a listed tool under `policy`, computed once per tool and policy
    /// version (classification reads the catalog and heuristics; a decision need not).
    pub(crate) fn tool_class(
        &self,
        policy: &countersign_policy::Policy,
        info: &countersign_policy::ServerInfo,
        tool: &str,
        def: Option<&ToolDef>,
    ) -> countersign_policy::Classification {
        if let Some((version, class)) = self.state().classes.get(&info.name).and_then(|m| m.get(tool)) {
            if version == policy.version() {
                return class.clone();
            }
        }
        let class = policy.classify(info, tool, def);
        if def.is_some() {
            self.state()
                .classes
                .entry(info.name.clone())
                .or_default()
                .insert(tool.to_string(), (policy.version().to_string(), class.clone()));
        }
        class
    }

    /// Learns a `tools/list` page's definitions and reviews them against the pins. Returns
    /// the result to pass on when quarantined tools had to be taken out of it. A listing
    /// identical to this session's last one from the server, with the pins as they were,
    /// is not parsed or reviewed again.
    fn review_listing(&self, st: &mut super::State, server: &str, result: &str) -> Option<Value> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        result.hash(&mut hasher);
        let digest = hasher.finish();
        let generation = self.shared.pins.lock().ok()?.generation();
        if let Some((d, g, passed)) = st.reviewed.get(server) {
            if *d == digest && *g == generation {
                return passed.clone();
            }
        }
        let passed = self.review_listing_afresh(st, server, result);
        let generation = self.shared.pins.lock().ok()?.generation();
        st.reviewed.insert(server.to_string(), (digest, generation, passed.clone()));
        passed
    }

    fn review_listing_afresh(&self, st: &mut super::State, server: &str, result: &str) -> Option<Value> {
        let mut result: Value = serde_json::from_str(result).ok()?;
        // A tool whose `x-mcp-header` marks break the rules is left out, as the revision
        // asks of a client (MCP 2026-07-28, SEP-2243): never shown, never learned, so a
        // call of it is refused as one of a tool never listed.
        let tools: Vec<Value> = result
            .get("tools")
            .and_then(Value::as_array)?
            .iter()
            .filter(|t| {
                match crate::param_headers::ParamHeaders::of_schema(t.get("inputSchema").unwrap_or(&Value::Null)) {
                    Ok(_) => true,
                    Err(why) => {
                        let tool = t.get("name").and_then(Value::as_str).unwrap_or_default();
                        tracing::warn!(
                            server,
                            tool,
                            "tool left out of the listing, its x-mcp-header marks break the rules: {why}"
                        );
                        false
                    }
                }
            })
            .cloned()
            .collect();
        st.classes.remove(server);
        let learned = st.tools.entry(server.to_string()).or_default();
        for def in tools.iter().filter_map(ToolDef::from_json) {
            learned.insert(def.name.clone(), def);
        }
        let origin = self.shared.servers().get(server)?.info.origin.clone();
        let (review, newly) = self.shared.pins.lock().ok()?.review(server, &origin, &tools);
        for b in newly {
            self.shared.policy_event(crate::shared::PolicyEvent {
                decision: countersign_audit::Decision::Deny,
                rule: b.rule,
                reason: b.why,
                server: Some(server.to_string()),
                tool: b.tool,
            });
        }
        let shown: Vec<Value> = tools
            .into_iter()
            .filter(|t| !review.hides(t.get("name").and_then(Value::as_str).unwrap_or_default()))
            .collect();
        let hidden = shown.len() != result["tools"].as_array().map_or(0, Vec::len);
        hidden.then(|| {
            result["tools"] = Value::Array(shown);
            // What this gateway took out is its own view: not to be shared from a cache.
            if self.stateless || result.get("cacheScope").is_some() {
                result["cacheScope"] = Value::String("private".into());
            }
            result
        })
    }

    /// Answers a client request from the gateway itself.
    pub(crate) fn answer(&self, reply: Reply, text: String) {
        // A stateless client reads every result's `resultType`, the gateway's own too.
        let text = match self.stateless {
            true => super::stateless::complete(text),
            false => text,
        };
        if let Reply::Client { tx, .. } = reply {
            let _ = tx.send(text);
        }
    }
}

/// Whether an answer was a success, and a short error text if not.
fn classify_answer(env: &Envelope) -> (Outcome, Option<String>) {
    if let Some(error) = env.get("error") {
        let msg = serde_json::from_str::<Value>(error.get())
            .ok()
            .and_then(|e| e.get("message").and_then(Value::as_str).map(str::to_string));
        return (Outcome::Error, msg);
    }
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    let is_error =
        env.get("result").and_then(|r| serde_json::from_str::<Flag>(r.get()).ok()).is_some_and(|f| f.is_error);
    if is_error {
        (Outcome::Error, Some("the tool reported an error".into()))
    } else {
        (Outcome::Ok, None)
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
