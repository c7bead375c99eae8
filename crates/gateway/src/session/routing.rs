//! Messages crossing a session: client requests in, upstream answers and upstream-made
//! messages out, each with its id or token mapped back to the side it came from.

use super::{outcome, Answer, ClientTx, InFlight, Pending, Reply, Route, Session};
use crate::message::{self, Envelope, Kind};
use countersign_audit::Outcome;
use countersign_policy::ToolDef;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

impl Session {
    /// Takes one client request. Returns the stream its answer (and, for SSE, its
    /// progress and related server messages) arrives on; the stream ends after the answer.
    pub async fn handle_request(self: &Arc<Self>, env: Envelope, sse: bool) -> Answer {
        self.touch();
        let claim = env.id().map(|id| (id, InFlight::claim(&self.in_flight, id.get())));
        if let Some((id, None)) = claim {
            let (tx, rx) = mpsc::unbounded_channel();
            let msg = format!("request id {} is already in flight in this session", id.get());
            let _ = tx.send(message::error_response(Some(id), message::code::INVALID_REQUEST, &msg));
            return Answer::Json(rx);
        }
        let (tx, answer) = if sse {
            let (sink, events) = self.open_stream();
            (ClientTx::Stream(sink), Answer::Stream(events))
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            (ClientTx::Json(tx), Answer::Json(rx))
        };
        let reply = Reply::Client { tx, _in_flight: claim.and_then(|(_, c)| c) };
        let method = env.method().unwrap_or_default().to_string();
        match (&self.route, method.as_str()) {
            // Decided inline; only a call that waits for a person runs on its own task.
            (_, "tools/call") => self.clone().call_tool(env, reply).await,
            (Route::Single(server), _) => {
                let server = server.clone();
                self.forward(&server, env, reply, None).await;
            }
            (Route::Aggregate, _) => self.aggregate_request(env, reply).await,
        }
        answer
    }

    /// Takes one client notification.
    pub async fn handle_notification(&self, mut env: Envelope) {
        self.touch();
        let method = env.method().unwrap_or_default().to_string();
        tracing::debug!(session = %super::short(&self.id), %method, "client notification");
        if method == "notifications/cancelled" {
            // Map the client's request id to ours and tell only that request's upstream.
            let Ok(mut params) = env.params() else { return };
            let Some(request_id) = params.get("requestId").map(Value::to_string) else { return };
            let target = {
                let st = self.state();
                st.pending
                    .iter()
                    .find(|(_, p)| p.client_id.as_ref().is_some_and(|c| c.get() == request_id))
                    .map(|(id, p)| (*id, p.server.clone()))
            };
            let Some((id, server)) = target else { return };
            // The client gave up on this request: free it now, since an upstream that honours
            // the cancellation never answers it.
            self.fail_pending_quietly(id, "cancelled by the client");
            params["requestId"] = Value::from(id);
            env.set_params(&params);
            if let Ok(link) = self.link(&server).await {
                let _ = link.send(env.to_json()).await;
            }
            return;
        }
        if method == "notifications/initialized" && self.route == Route::Aggregate {
            // The gateway already completed each upstream's handshake.
            return;
        }
        let servers: Vec<String> = self.servers().cloned().collect();
        for server in servers {
            if let Ok(link) = self.link(&server).await {
                let _ = link.send(env.to_json()).await;
            }
        }
    }

    /// Takes the client's answer to a request an upstream made (sampling, elicitation...).
    pub async fn handle_response(&self, mut env: Envelope) {
        self.touch();
        let target = env.id_u64().and_then(|id| self.state().server_requests.remove(&id));
        let Some((server, upstream_id)) = target else {
            tracing::debug!(session = %super::short(&self.id), "client answered an unknown request id");
            return;
        };
        env.set("id", upstream_id);
        if let Ok(link) = self.link(&server).await {
            let _ = link.send(env.to_json()).await;
        }
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
                if pending.method == "initialize" {
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
                }
                if pending.method == "tools/list" {
                    let reviewed = env.get("result").and_then(|r| self.review_listing(&mut st, server, r.get()));
                    if let Some(result) = reviewed {
                        env.set("result", message::raw(&result.to_string()));
                    }
                }
                drop(st);
                self.settle(pending, env);
            }
            Kind::Request => {
                st.next_id += 1;
                let ours = st.next_id;
                let upstream_id = env.id().map(|r| r.to_owned()).unwrap_or_else(|| message::raw("null"));
                st.server_requests.insert(ours, (server.to_string(), upstream_id));
                env.set_id_u64(ours);
                self.to_client(&mut st, env.to_json());
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
                    match st.pending.get(&owner).map(|p| &p.reply) {
                        Some(Reply::Client { tx: tx @ ClientTx::Stream(_), .. }) => {
                            tx.send(text);
                        }
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
                        .find(|(_, (s, id))| s == server && id.get() == theirs)
                        .map(|(ours, _)| *ours);
                    if let Some(ours) = ours {
                        st.server_requests.remove(&ours);
                        params["requestId"] = Value::from(ours);
                        env.set_params(&params);
                        self.to_client(&mut st, env.to_json());
                    }
                }
                "notifications/tools/list_changed" => {
                    st.tools.remove(server);
                    st.classes.remove(server);
                    st.listings_stale();
                    self.to_client(&mut st, text);
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
    fn settle(&self, pending: Pending, mut env: Envelope) {
        if let Some((record_id, started)) = pending.audit {
            let (result, detail) = classify_answer(&env);
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
            st.tools.remove(server);
            st.classes.remove(server);
            st.server_requests.retain(|_, (s, _)| s != server);
            st.pending.iter().filter(|(_, p)| p.server == server).map(|(id, _)| *id).collect()
        };
        let why =
            format!("upstream server `{server}` stopped before answering ({reason}); the next request starts it again");
        for id in failed {
            self.fail_pending(id, &why);
        }
    }

    /// The definition of `tool` on `server`, asking the upstream for its tool list when
    /// the session has not seen one. `None`: the server does not list that tool.
    pub(crate) async fn tool_def(&self, server: &str, tool: &str) -> Option<ToolDef> {
        if let Some(tools) = self.state().tools.get(server) {
            return tools.get(tool).cloned();
        }
        let link = self.link(server).await.ok()?;
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let params = match &cursor {
                Some(c) => serde_json::json!({ "cursor": c }),
                None => serde_json::json!({}),
            };
            // The answer is learned (and reviewed against the pins) on its way in.
            let reply = self.internal_request(server, &link, "tools/list", params).await.ok()?;
            cursor = reply
                .get("result")
                .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
                .and_then(|r| r.get("nextCursor").and_then(Value::as_str).map(str::to_string));
            if cursor.is_none() {
                break;
            }
        }
        let mut st = self.state();
        st.tools.entry(server.to_string()).or_default().get(tool).cloned()
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
        let tools = result.get("tools").and_then(Value::as_array)?.clone();
        st.classes.remove(server);
        let learned = st.tools.entry(server.to_string()).or_default();
        for def in tools.iter().filter_map(ToolDef::from_json) {
            learned.insert(def.name.clone(), def);
        }
        let origin = self.shared.servers().get(server)?.info.origin.clone();
        let (review, newly) = self.shared.pins.lock().ok()?.review(server, &origin, &tools);
        for b in newly {
            self.shared.policy_event(crate::shared::PolicyEvent {
                decision: "deny",
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
            result
        })
    }

    /// Answers a client request from the gateway itself.
    pub(crate) fn answer(&self, reply: Reply, text: String) {
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
