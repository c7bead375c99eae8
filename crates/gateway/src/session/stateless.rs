//! Stateless (2026-07-28) requests: one client token's requests to one route (a server's
//! `/mcp/<server>`, or the aggregate `/mcp`, served as the aggregate serves a session)
//! share a session of this kind, which holds nothing of theirs but the upstream links
//! (so no request starts a server of its own, and a token never reaches another token's
//! link).
//! Each request is looked up, decided, recorded and (for a tool call that asks)
//! approved exactly as a session's request is; it is answered on its own connection,
//! and closing that connection cancels it.
//!
//! A server that speaks 2026-07-28 gets each request as it came (its `_meta`, its
//! answer's `resultType`, `input_required` rounds, `ttlMs`/`cacheScope`, listen streams:
//! all relayed). An `input_required` answer asks of the client what a server's request
//! asks in a session, so each of its input requests is decided, recorded and labelled
//! with the server's name exactly as a server's sampling, elicitation or roots request
//! is; one the policy refuses refuses the answer. The client's follow-up (the same call
//! with `inputResponses`) is a new call, decided again. Any other server (stdio, or an older revision) is reached through one
//! session of the gateway's, opened for this token with no client capabilities, and
//! each request is translated onto it: the per-request `_meta` envelope taken off, the
//! answer marked `resultType: "complete"`, `server/discover` answered from the server's
//! `initialize`, `subscriptions/listen` served by the gateway from the server's
//! list-changed notifications. What cannot be translated is refused with a JSON-RPC
//! error that says so: a server's request to the client (sampling, elicitation, roots:
//! a stateless client has no channel for one), and a listen stream's resource
//! subscriptions.
//!
//! Must never: serve a stateless session to a client by its session id, hand a request
//! to another token's link, or let a grant of length `session` outlive the one call
//! approved (a stateless request has no session; such an approval runs that call only).

use super::{outcome, Answer, ClientTx, Release, Reply, Route, Session, Speaks, State};
use crate::govern::access::Subject;
use crate::govern::methods::{shorten, Operation};
use crate::govern::server_requests::{self, ServerRequest};
use crate::message::{self, code, Envelope};
use crate::modern;
use countersign_audit::Outcome;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most resource URIs one listen stream may name.
const MAX_LISTEN_URIS: usize = 64;
/// Most listen streams the gateway serves itself for one stateless session.
const MAX_LISTENERS: usize = 64;
/// The longest a stateless session trusts a server's tool list before listing again (a
/// 2026-07-28 server says how long in `ttlMs`; no list-changed notice reaches a session
/// that is not listening).
const TOOLS_MAX_FRESH: Duration = Duration::from_secs(60);

/// The `initialize` the gateway sends a server it reaches through a session for
/// stateless clients: the newest handshake revision, no client capabilities (a stateless
/// client cannot answer a server's request), the gateway as the client.
pub(crate) fn handshake_params() -> Value {
    json!({
        "protocolVersion": modern::HANDSHAKE_VERSIONS[modern::HANDSHAKE_VERSIONS.len() - 1],
        "capabilities": {},
        "clientInfo": { "name": "countersign-stateless", "version": env!("CARGO_PKG_VERSION") },
    })
}

/// Adds the per-request envelope to a request the gateway makes of a 2026-07-28 server.
pub(crate) fn add_own_meta(params: &mut Value) {
    if !params.is_object() {
        *params = json!({});
    }
    let own = modern::own_meta();
    let meta = params.as_object_mut().map(|p| p.entry("_meta").or_insert_with(|| json!({})));
    if let Some(Value::Object(meta)) = meta {
        for (k, v) in own.as_object().into_iter().flatten() {
            meta.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// A stateless request as a server in a session reads it: the per-request envelope's
/// keys taken out of `_meta` (the session already carries what they say).
pub(crate) fn to_handshake(env: &mut Envelope) {
    let Ok(mut params) = env.params() else { return };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else { return };
    let before = meta.len();
    for key in [modern::META_VERSION, modern::META_CAPABILITIES, modern::META_CLIENT_INFO, modern::META_LOG_LEVEL] {
        meta.remove(key);
    }
    if meta.len() != before {
        if meta.is_empty() {
            params.as_object_mut().map(|p| p.remove("_meta"));
        }
        env.set_params(&params);
    }
}

/// An answer the gateway makes itself, as a stateless client reads it (see
/// [`to_stateless_answer`]).
pub(crate) fn complete(text: String) -> String {
    match Envelope::parse(&text) {
        Ok(mut env) if env.get("result").is_some() => {
            to_stateless_answer(&mut env);
            env.to_json()
        }
        _ => text,
    }
}

/// An answer from a server in a session, as a stateless client reads it: a result says
/// it is complete.
fn to_stateless_answer(env: &mut Envelope) {
    let Some(mut result) = env.get("result").and_then(|r| serde_json::from_str::<Value>(r.get()).ok()) else {
        return;
    };
    if let Some(obj) = result.as_object_mut().filter(|o| !o.contains_key("resultType")) {
        obj.insert("resultType".into(), json!("complete"));
        env.set("result", message::raw(&result.to_string()));
    }
}

/// Results a 2026-07-28 client may cache, by the hints they carry.
const CACHEABLE: &[&str] =
    &["tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"];

/// A cacheable result from a server of an older revision, which gives no caching hints,
/// or one the gateway put together from several servers (filtered by this client's
/// policy): said to be stale at once and for this client only (`ttlMs: 0`, `cacheScope:
/// "private"`), the one reading that promises nothing the server did not.
pub(super) fn without_cache_hints(method: &str, env: &mut Envelope) {
    if !CACHEABLE.contains(&method) {
        return;
    }
    let Some(mut result) = env.get("result").and_then(|r| serde_json::from_str::<Value>(r.get()).ok()) else {
        return;
    };
    if let Some(obj) = result.as_object_mut() {
        obj.entry("ttlMs").or_insert(json!(0));
        obj.entry("cacheScope").or_insert(json!("private"));
        env.set("result", message::raw(&result.to_string()));
    }
}

/// A listen stream the gateway serves itself (the server is reached through a session).
pub(crate) struct Listener {
    server: String,
    client_id: Box<RawValue>,
    tx: ClientTx,
    tools: bool,
    prompts: bool,
    resources: bool,
}

impl Session {
    /// Takes one stateless request, already checked by the HTTP face and found in the
    /// method table as `op`.
    pub(super) async fn stateless_request(self: Arc<Self>, op: Operation, env: Envelope, sse: bool) -> Answer {
        self.touch();
        let (tx, answer) = if sse {
            let (tx, rx) = super::flow::flow();
            (ClientTx::Live(tx), Answer::Live(rx))
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            (ClientTx::Json(tx), Answer::Json(rx))
        };
        let reply = Reply::Client { tx, _in_flight: None };
        let id = env.id().map(ToOwned::to_owned);
        let Route::Single(server) = self.route.clone() else {
            self.stateless_aggregate(op, env, reply).await;
            return answer;
        };
        match op {
            Operation::CallTool => self.clone().call_tool(env, reply).await,
            Operation::Discover => self.discover(&server, env, reply).await,
            Operation::Listen => self.listen(&server, env, reply).await,
            op if op.is_governed() => self.single_request(&server, op, env, reply).await,
            _ => {
                let text = format!("`{}` is not a stateless request", env.method().unwrap_or_default());
                self.answer(reply, message::error_response(id.as_deref(), code::METHOD_NOT_FOUND, &text));
            }
        }
        answer
    }

    /// One stateless request on the aggregate `/mcp`: a tool call and what the aggregate
    /// serves in a session (listings across servers, prompts, resources, completions by
    /// their namespaced names or URIs), each decided and recorded as there; `server/discover`
    /// answered for the gateway. A listen stream is served per server, on `/mcp/<server>`.
    async fn stateless_aggregate(self: &Arc<Self>, op: Operation, env: Envelope, reply: Reply) {
        let id = env.id().map(ToOwned::to_owned);
        match op {
            Operation::CallTool => self.clone().call_tool(env, reply).await,
            Operation::Discover => {
                let mut result = json!({
                    "supportedVersions": modern::VERSIONS,
                    "capabilities": {"tools": {}, "prompts": {}, "resources": {}, "completions": {}},
                    "resultType": "complete",
                });
                let servers: Vec<String> = self.servers().cloned().collect();
                result["instructions"] = json!(format!(
                    "Countersign gateway for: {}. Names are `server__name`.",
                    if servers.is_empty() { "no servers".to_string() } else { servers.join(", ") }
                ));
                result["_meta"] =
                    json!({ modern::META_SERVER_INFO: {"name": "countersign", "version": env!("CARGO_PKG_VERSION")} });
                self.answer(reply, message::result_response(id.as_deref(), &result));
            }
            Operation::Listen => {
                let text = "subscriptions/listen is served per server, on /mcp/<server>";
                self.answer(reply, message::error_response(id.as_deref(), code::INVALID_REQUEST, text));
            }
            op if op.is_governed() => self.aggregate_request(op, env, reply).await,
            _ => {
                let text = format!("`{}` is not a stateless request", env.method().unwrap_or_default());
                self.answer(reply, message::error_response(id.as_deref(), code::METHOD_NOT_FOUND, &text));
            }
        }
    }

    /// `server/discover`: the server's own answer when it speaks 2026-07-28; otherwise
    /// what its `initialize` said, as a discover result.
    async fn discover(&self, server: &str, env: Envelope, reply: Reply) {
        let id = env.id().map(ToOwned::to_owned);
        if let Err(why) = self.link(server).await {
            let text = why.to_string();
            return self.answer(reply, message::error_response(id.as_deref(), code::UPSTREAM_ERROR, &text));
        }
        if self.speaks(server) == Some(Speaks::Stateless) {
            return self.forward(server, env, reply, Release::Lifecycle).await;
        }
        let init = self.state().server_init.get(server).cloned().unwrap_or_default();
        let mut result = json!({
            "supportedVersions": modern::VERSIONS,
            "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            "resultType": "complete",
        });
        if let Some(info) = init.get("serverInfo") {
            result["_meta"] = json!({ modern::META_SERVER_INFO: info });
        }
        if let Some(text) = init.get("instructions") {
            result["instructions"] = text.clone();
        }
        self.answer(reply, message::result_response(id.as_deref(), &result));
    }

    /// `subscriptions/listen`: decided and recorded like a listing, each resource it names
    /// like a subscription; then relayed to a 2026-07-28 server, or served by the gateway
    /// from a session's list-changed notifications.
    async fn listen(&self, server: &str, env: Envelope, reply: Reply) {
        let started = Instant::now();
        let id = env.id().map(ToOwned::to_owned);
        let refuse = |code, text: &str| message::error_response(id.as_deref(), code, text);
        let params = env.params().unwrap_or(Value::Null);
        let filter = params.get("notifications").cloned().unwrap_or(Value::Null);
        let uris: Vec<String> = match filter.get("resourceSubscriptions") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) if a.len() <= MAX_LISTEN_URIS && a.iter().all(Value::is_string) => {
                a.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            Some(_) => {
                let text = format!("notifications.resourceSubscriptions must be at most {MAX_LISTEN_URIS} URIs");
                return self.answer(reply, refuse(code::INVALID_PARAMS, &text));
            }
        };
        let listen = Subject::of(Operation::Listen, &params);
        let permit = match self.govern_access(Some(server), &listen, started).await {
            Ok(permit) => permit,
            Err(text) => return self.answer(reply, refuse(code::INVALID_REQUEST, &text)),
        };
        for uri in &uris {
            // Each resource's record carries the request's trace too.
            let mut subject = Subject::of(Operation::Subscribe, &json!({ "uri": uri }));
            subject.trace.clone_from(&listen.trace);
            if let Err(text) = self.govern_access(Some(server), &subject, started).await {
                self.shared.outcome(outcome(permit.record_id(), started, Outcome::Denied, Some(&text)));
                return self.answer(reply, refuse(code::INVALID_REQUEST, &text));
            }
        }
        if let Err(why) = self.link(server).await {
            let text = why.to_string();
            self.shared.outcome(outcome(permit.record_id(), started, Outcome::Error, Some(&text)));
            return self.answer(reply, refuse(code::UPSTREAM_ERROR, &text));
        }
        if self.speaks(server) == Some(Speaks::Stateless) {
            return self.forward(server, env, reply, Release::Permit(permit, started)).await;
        }
        let record = permit.record_id();
        if !uris.is_empty() {
            let text = format!(
                "server `{server}` is reached through a session of an older revision: resource subscriptions on a \
                 listen stream cannot be translated for it; list changes can"
            );
            self.shared.outcome(outcome(record, started, Outcome::Error, Some(&text)));
            return self.answer(reply, refuse(code::INVALID_PARAMS, &text));
        }
        let Reply::Client { tx, .. } = reply else { return };
        let (Some(client_id), ClientTx::Live(_)) = (id.clone(), &tx) else {
            let text = "subscriptions/listen answers with a stream: send Accept: text/event-stream";
            self.shared.outcome(outcome(record, started, Outcome::Error, Some(text)));
            return self.answer(Reply::Client { tx, _in_flight: None }, refuse(code::INVALID_REQUEST, text));
        };
        let wants = |key: &str| filter.get(key).and_then(Value::as_bool).unwrap_or(false);
        let listener = Listener {
            server: server.to_string(),
            client_id: client_id.clone(),
            tx,
            tools: wants("toolsListChanged"),
            prompts: wants("promptsListChanged"),
            resources: wants("resourcesListChanged"),
        };
        let honored = json!({
            "toolsListChanged": listener.tools,
            "promptsListChanged": listener.prompts,
            "resourcesListChanged": listener.resources,
        });
        let ack = json!({
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": { "notifications": honored, "_meta": { modern::META_SUBSCRIPTION: listener_id(&client_id) } },
        });
        listener.tx.send(ack.to_string());
        let gone = listener.tx.closed();
        {
            let mut st = self.state();
            st.listeners.retain(|l| !l.tx_closed());
            if st.listeners.len() >= MAX_LISTENERS {
                drop(st);
                let text = format!("this client already has {MAX_LISTENERS} listen streams open");
                self.shared.outcome(outcome(record, started, Outcome::Error, Some(&text)));
                return;
            }
            st.listeners.push(listener);
        }
        let (me, shared) = (self.me.clone(), self.shared.clone());
        tokio::spawn(async move {
            gone.await;
            if let Some(me) = me.upgrade() {
                me.state().listeners.retain(|l| !l.tx_closed());
            }
            shared.outcome(outcome(record, started, Outcome::Ok, Some("the listen stream closed")));
        });
    }

    /// When a stateless request's connection closes before its answer, the request is
    /// cancelled: dropped here, and the server told (a 2026-07-28 link ends its exchange).
    pub(super) fn cancel_when_gone(
        &self,
        server: &str,
        id: u64,
        gone: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let me = self.me.clone();
        let server = server.to_string();
        tokio::spawn(async move {
            gone.await;
            let Some(me) = me.upgrade() else { return };
            if !me.state().pending.contains_key(&id) {
                return;
            }
            me.fail_pending_quietly(id, "its client closed the stream");
            if let Some(link) = me.live_link(&server) {
                let _ = link.send(crate::govern::Outbound::cancel(id, "the client closed the stream")).await;
            }
        });
    }

    /// A notification that came on a stateless request's own stream: to that request's
    /// client (a listen stream's events with the client's id as their subscription id).
    pub(super) fn on_related(&self, server: &str, request: &RawValue, text: String) {
        let Some(ours) = request.get().parse::<u64>().ok() else { return self.on_upstream_message(server, text) };
        let Ok(mut env) = Envelope::parse(&text) else { return };
        let mut st = self.state();
        let Some(pending) = st.pending.get(&ours).filter(|p| p.server == server) else {
            drop(st);
            return self.on_upstream_message(server, text);
        };
        let client_id = pending.client_id.clone();
        // What a list change means for the gateway holds whichever stream carried it.
        match env.method().unwrap_or_default() {
            "notifications/tools/list_changed" => {
                st.forget_tools(server);
                st.listings_stale();
            }
            "notifications/prompts/list_changed" | "notifications/resources/list_changed" => st.listings_stale(),
            "notifications/progress" => {
                drop(st);
                return self.on_upstream_message(server, text);
            }
            _ => {}
        }
        if let (Some(client_id), Ok(mut params)) = (client_id, env.params()) {
            let tagged = params.pointer(&format!("/_meta/{}", modern::META_SUBSCRIPTION.replace('/', "~1"))).is_some();
            if tagged {
                params["_meta"][modern::META_SUBSCRIPTION] = serde_json::from_str(client_id.get()).unwrap_or_default();
                env.set_params(&params);
            }
        }
        if let Some(p) = st.pending.get(&ours) {
            p.reply.notify(env.to_json());
        }
    }

    /// A notification a server sent on its own: for a stateless session, to the listen
    /// streams the gateway serves that asked for it (nothing else would read it).
    pub(super) fn stateless_note(&self, st: &mut State, server: &str, env: &Envelope) {
        let method = env.method().unwrap_or_default();
        for l in st.listeners.iter().filter(|l| l.server == server) {
            let wanted = match method {
                "notifications/tools/list_changed" => l.tools,
                "notifications/prompts/list_changed" => l.prompts,
                "notifications/resources/list_changed" => l.resources,
                _ => false,
            };
            if wanted {
                let note = json!({
                    "jsonrpc": "2.0",
                    "method": method,
                    "params": { "_meta": { modern::META_SUBSCRIPTION: listener_id(&l.client_id) } },
                });
                l.tx.send(note.to_string());
            }
        }
        if !matches!(method, m if m.ends_with("/list_changed")) {
            tracing::debug!(server, method, "a server's notification no stateless client asked for; not relayed");
        }
    }

    /// Delivers a server's answer to a stateless request. An `input_required` result asks
    /// the client what a server's requests ask in a session (sampling, elicitation,
    /// roots), so each of its input requests is decided, recorded and labelled with the
    /// server's name as such a request is, and the answer goes out only once their
    /// records are committed; one the policy refuses refuses the whole answer.
    pub(super) fn stateless_settle(&self, server: &str, pending: super::Pending, mut env: Envelope) {
        self.stateless_answer(server, &pending.method, pending.client_id.as_deref(), &mut env);
        let Some(raw) = env.get("result") else { return self.settle(pending, env) };
        // A result the gateway cannot read (nested past its parser's depth, a number no
        // double holds) could be asking for input the policy never saw: not relayed.
        let Ok(mut result) = serde_json::from_str::<Value>(raw.get()) else {
            tracing::warn!(server, "a server's answer could not be read; refused");
            let why = format!("server `{server}` sent an answer Countersign cannot read; it was not relayed");
            let error = message::error_response(env.id(), code::UPSTREAM_ERROR, &why);
            return match Envelope::parse(&error) {
                Ok(error) => self.settle(pending, error),
                Err(_) => drop(pending),
            };
        };
        let asks = match result.get("inputRequests") {
            Some(Value::Object(asks)) if result.get("resultType") == Some(&json!("input_required")) => asks.clone(),
            _ => return self.settle(pending, env),
        };
        let mut records = Vec::new();
        for (key, ask) in asks {
            let method = ask.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
            let verdict = match ServerRequest::of(&method) {
                Some(kind) if kind.is_governed() => (kind, self.decide_server_request(server, &method)),
                _ => {
                    let why = format!("`{}` is not a request servers may send through Countersign", shorten(&method));
                    return self.refuse_input(server, pending, &method, "method", &why);
                }
            };
            let (kind, verdict) = verdict;
            if verdict.decision == countersign_policy::Decision::Deny {
                return self.refuse_input(server, pending, &method, &verdict.rule, &verdict.reason);
            }
            let decision = countersign_audit::Decision::Allow;
            records.push(self.server_request_record(server, &method, decision, &verdict.rule, &verdict.reason));
            let Some(params) = ask.get("params").filter(|p| p.is_object()) else { continue };
            let shown = json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": params});
            if let Ok(mut shown) = Envelope::parse(&shown.to_string()) {
                if !server_requests::attribute(&mut shown, kind, server) {
                    let why = "its params cannot be read, so it cannot be marked with who asks";
                    return self.refuse_input(server, pending, &method, "unreadable", why);
                }
                if let (Ok(params), Some(slot)) = (shown.params(), result["inputRequests"].get_mut(&key)) {
                    slot["params"] = params;
                }
            }
        }
        env.set("result", message::raw(&result.to_string()));
        let (me, server) = (self.me.clone(), server.to_string());
        tokio::spawn(async move {
            let Some(me) = me.upgrade() else { return };
            for record in records {
                let (id, started) = (record.id, Instant::now());
                if let Err(e) = me.shared.journal.commit(record).await {
                    let why = format!("its record could not be committed ({e})");
                    return me.refuse_input(&server, pending, "input request", "journal", &why);
                }
                me.shared.outcome(outcome(id, started, Outcome::Ok, None));
            }
            me.settle(pending, env);
        });
    }

    /// Answers a stateless request whose server asked the client for something policy
    /// refuses: an error naming the rule, and a record of the refusal.
    fn refuse_input(&self, server: &str, pending: super::Pending, method: &str, rule: &str, why: &str) {
        tracing::warn!(server, "refused a server's input request: {why}");
        self.record_refused_server_request(server, method, rule, why);
        let text = format!(
            "Countersign refused what server `{server}` asked of the client: {why} (rule `{rule}`). Nothing was \
             asked."
        );
        let id = pending.client_id.clone().unwrap_or_else(|| message::raw("0"));
        match Envelope::parse(&message::error_response(Some(&id), code::INVALID_REQUEST, &text)) {
            Ok(error) => self.settle(pending, error),
            Err(_) => drop(pending),
        }
    }

    /// An answer from a server to a stateless request, as the client reads it.
    fn stateless_answer(&self, server: &str, method: &str, client_id: Option<&RawValue>, env: &mut Envelope) {
        if self.speaks(server) == Some(Speaks::Handshake) {
            to_stateless_answer(env);
            return without_cache_hints(method, env);
        }
        // A listen stream's closing result names its subscription by the client's id.
        let Some(client_id) = client_id else { return };
        let Some(mut result) = env.get("result").and_then(|r| serde_json::from_str::<Value>(r.get()).ok()) else {
            return;
        };
        if let Some(meta) = result.get_mut("_meta").and_then(Value::as_object_mut) {
            if meta.contains_key(modern::META_SUBSCRIPTION) {
                meta.insert(
                    modern::META_SUBSCRIPTION.into(),
                    serde_json::from_str(client_id.get()).unwrap_or_default(),
                );
                env.set("result", message::raw(&result.to_string()));
            }
        }
    }

    /// Whether the tool list learned from `server` is still fresh for a stateless session.
    pub(super) fn tools_fresh(&self, st: &State, server: &str) -> bool {
        !self.stateless
            || self.speaks_in(st, server) != Some(Speaks::Stateless)
            || st.tools_fresh_until.get(server).is_some_and(|t| Instant::now() < *t)
    }

    fn speaks_in(&self, st: &State, server: &str) -> Option<Speaks> {
        st.speaks.get(server).copied()
    }

    /// Notes how long a 2026-07-28 server said its tool list stays fresh.
    pub(super) fn tools_learned(&self, st: &mut State, server: &str, result: &Value) {
        if !self.stateless {
            return;
        }
        let ttl = result.get("ttlMs").and_then(Value::as_u64).map_or(Duration::ZERO, Duration::from_millis);
        st.tools_fresh_until.insert(server.to_string(), Instant::now() + ttl.min(TOOLS_MAX_FRESH));
    }

    /// A server's request to a stateless client: refused (a stateless client has no
    /// channel to answer one), with a record.
    pub(super) fn refuse_for_stateless(&self, server: &str, env: &Envelope) {
        let upstream_id = env.id().map(ToOwned::to_owned).unwrap_or_else(|| message::raw("null"));
        let method = env.method().unwrap_or_default().to_string();
        let why = format!(
            "`{}` cannot reach a stateless (2026-07-28) client through a session: it has no channel for a \
             server's request",
            crate::govern::methods::shorten(&method)
        );
        self.refuse_server_request(server, &method, upstream_id, "stateless", &why);
    }

    /// What a record says of this session: its id, or `stateless` for a stateless
    /// request's (which had none).
    pub(crate) fn record_session(&self) -> String {
        if self.stateless {
            "stateless".to_string()
        } else {
            self.id.clone()
        }
    }
}

impl Listener {
    fn tx_closed(&self) -> bool {
        match &self.tx {
            ClientTx::Live(tx) => tx.is_closed(),
            _ => true,
        }
    }
}

/// Whether a listen stream the gateway serves itself is still open (the session is busy).
pub(super) fn listening(st: &State) -> bool {
    st.listeners.iter().any(|l| !l.tx_closed())
}

/// A listen stream's subscription id: the client's request id, as JSON.
fn listener_id(client_id: &RawValue) -> Value {
    serde_json::from_str(client_id.get()).unwrap_or(Value::Null)
}

#[cfg(test)]
#[path = "stateless_tests.rs"]
mod tests;
