//! A remote MCP server over streamable HTTP (2025-06-18 and later): each message is a
//! POST; answers come back as JSON or as an SSE stream; the session id the server
//! assigns is sent on every later request; a GET stream carries what the server sends
//! unprompted. A server that refuses the POSTed `initialize` (400, 404, 405) is asked
//! `server/discover`: one that speaks only 2026-07-28 gets the session translated onto
//! its stateless requests ([`super::translate`]); any other is tried with the 2024-11-05
//! HTTP+SSE transport instead: a GET stream that names, in its `endpoint` event, a
//! same-origin URL to POST messages to. Static headers come from
//! configuration (secrets already read from the keychain); when none of them is an
//! `Authorization` header and the server asks for a sign-in, the bearer token comes from
//! the server's OAuth sign-in in the keychain, refreshed as needed. A client's own
//! credentials never reach this module: it sends only what the configuration names.
//!
//! A server may close an SSE stream before it is done (MCP 2025-11-25, "Resumability and
//! Redelivery"): a POST's answer stream before the answer, or the GET stream at any time.
//! Such a stream is resumed with `GET` and `Last-Event-ID` (the last event id it gave)
//! after the server's `retry` delay, as long as it brings something new, and never past
//! the request timeout; a request whose answer cannot be replayed is answered at once
//! with an error that says so, never left to time out. Event data and ids are never
//! logged.
//!
//! Every request POSTed ends in its answer or, at once, in an error answer for its id
//! that names the server and says what came instead: `202 Accepted` (which only a
//! notification or an answer may get), an empty body, a body that is not JSON-RPC, or
//! JSON-RPC with no answer to it (any messages in it, a batch's too, are handed on
//! first). A body is described by its status, media type and size, never its content.

use super::remote_error::{MediaType, NotAnswer, RemoteError, Unreplayed};
use super::translate::{self, Outgoing};
use super::{EventSink, UpstreamError, UpstreamEvent, UpstreamLink};
use crate::config::Limits;
use crate::message::{self, Envelope, Kind};
use crate::param_headers::{encode_value, ParamHeaders};
use crate::sse_client;
use countersign_vault::oauth::{BearerError, Enterprise, ServerAuth};
use countersign_vault::Secret;
use futures::StreamExt;
use reqwest::header::AUTHORIZATION;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde_json::value::RawValue;
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Remote {
    /// The server's name in the configuration, for log lines.
    name: String,
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    /// The OAuth sign-in, for servers whose config sets no `Authorization` header.
    auth: Option<ServerAuth>,
    session: Mutex<Option<String>>,
    protocol: Mutex<Option<String>>,
    events: EventSink,
    max_event: usize,
    /// Set once the server turned out to speak the legacy HTTP+SSE transport: where to POST.
    legacy: Mutex<Option<reqwest::Url>>,
    legacy_stream: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// How long a request may wait for its answer (`limits.request_timeout_secs`): no
    /// stream is resumed for a request past it.
    answer_within: Duration,
    /// Cancelled when the link closes: streams stop being read and resumed.
    closing: CancellationToken,
    /// The server speaks 2026-07-28 and the link carries stateless requests: each its own
    /// exchange, with its routing headers read from its own body, no session, no GET
    /// stream (see [`Remote::exchange`]).
    stateless: bool,
    /// Stateless requests in flight by id: `notifications/cancelled` for one ends its
    /// exchange (on this wire, closing the stream is the cancellation).
    exchanges: Mutex<std::collections::HashMap<String, CancellationToken>>,
    /// The `x-mcp-header` marks of each tool this link listed that has some (2026-07-28):
    /// a stateless `tools/call` of it carries its marked arguments as `Mcp-Param-*`
    /// headers, written from the body that was decided on.
    tool_marks: Mutex<std::collections::HashMap<String, ParamHeaders>>,
    /// Set once the server refused the session's `initialize` and turned out to speak
    /// only 2026-07-28: the session's requests are translated onto stateless ones (see
    /// [`translate`]).
    translating: std::sync::atomic::AtomicBool,
    /// The log level the session's client last set, sent in each translated request.
    level: Mutex<Option<Value>>,
}

pub(super) fn open(
    name: &str,
    url: &str,
    headers: &[(String, Secret)],
    enterprise: Option<Enterprise>,
    limits: &Limits,
    events: EventSink,
) -> Result<UpstreamLink, UpstreamError> {
    Ok(run(remote(name, url, headers, enterprise, limits, events, false)?))
}

/// A link for stateless requests, when the server speaks 2026-07-28: asked with
/// `server/discover` (as the gateway, with no client capabilities) first. `None` when it
/// does not (it is then reached through a session of the gateway's).
pub(super) async fn open_stateless(
    name: &str,
    url: &str,
    headers: &[(String, Secret)],
    enterprise: Option<Enterprise>,
    limits: &Limits,
    events: EventSink,
) -> Result<Option<UpstreamLink>, UpstreamError> {
    let remote = remote(name, url, headers, enterprise, limits, events, true)?;
    let unreachable = |e: RemoteError| UpstreamError::Http { url: url.to_string(), message: e.to_string() };
    let speaks = remote.discover().await.map_err(unreachable)?.is_some();
    Ok(speaks.then(|| run(remote)))
}

fn remote(
    name: &str,
    url: &str,
    headers: &[(String, Secret)],
    enterprise: Option<Enterprise>,
    limits: &Limits,
    events: EventSink,
    stateless: bool,
) -> Result<Arc<Remote>, UpstreamError> {
    let bad = |message: String| UpstreamError::Http { url: url.to_string(), message };
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad(format!("bad header name `{k}`")))?;
        let mut value = HeaderValue::from_str(v.expose()).map_err(|_| bad(format!("bad value for header `{k}`")))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let remote = Arc::new(Remote {
        name: name.to_string(),
        client,
        url: url.to_string(),
        // A static Authorization header is sent as configured; otherwise the gateway's
        // own sign-in to the server, or (enterprise) the person's IdP sign-in traded for it.
        auth: (!map.contains_key(AUTHORIZATION)).then(|| match enterprise {
            Some(e) => ServerAuth::enterprise(name, url, e),
            None => ServerAuth::new(name, url),
        }),
        headers: map,
        session: Mutex::new(None),
        protocol: Mutex::new(None),
        events,
        max_event: limits.max_line_bytes,
        legacy: Mutex::new(None),
        legacy_stream: Mutex::new(None),
        // Capped so that a deadline never overflows an Instant, however large the setting.
        answer_within: Duration::from_secs(limits.request_timeout_secs.min(u64::from(u32::MAX))),
        closing: CancellationToken::new(),
        stateless,
        exchanges: Mutex::default(),
        tool_marks: Mutex::default(),
        translating: std::sync::atomic::AtomicBool::new(false),
        level: Mutex::new(None),
    });
    Ok(remote)
}

/// Starts the link's task: messages handed to the link are sent from it.
fn run(remote: Arc<Remote>) -> UpstreamLink {
    let name = remote.name.clone();
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let server = name;
    let worker = remote;
    tokio::spawn(async move {
        // A server may hold a POST's response headers until its answer is ready (a JSON
        // answer), so later messages must not queue behind it: once the session is set up,
        // each message goes in its own task (at most MAX_POSTS at once), as a client's
        // concurrent requests would. `initialize`, `notifications/initialized` and the
        // legacy transport keep their order.
        let posts = Arc::new(tokio::sync::Semaphore::new(MAX_POSTS as usize));
        while let Some(text) = rx.recv().await {
            if worker.in_order(&text) {
                if let Err(reason) = worker.post(&text).await {
                    tracing::warn!(server, "remote upstream: {reason}");
                }
                continue;
            }
            let Ok(permit) = posts.clone().acquire_owned().await else { break };
            let (me, server) = (worker.clone(), server.clone());
            tokio::spawn(async move {
                if let Err(reason) = me.post(&text).await {
                    tracing::warn!(server, "remote upstream: {reason}");
                }
                drop(permit);
            });
        }
        worker.close().await;
        (worker.events)(UpstreamEvent::Closed("the gateway closed it".into()));
    });
    UpstreamLink { writer: super::Writer::Channel(tx), _guard: Arc::new(()) }
}

/// POSTs to one remote server in flight at once, per upstream session.
const MAX_POSTS: u32 = 64;

/// Resumptions of one stream in a row that may bring nothing new (no new event id)
/// before it is given up.
const MAX_RESUMES: u32 = 5;

/// The longest event id sent back as `Last-Event-ID`; a stream with a longer one is not
/// resumed.
const MAX_EVENT_ID: usize = 1024;

/// What a stream the server opened is read for.
enum Purpose {
    /// The GET stream for what the server sends unprompted: resumed whenever it ends,
    /// while the link is open.
    Listen,
    /// A POST's answer stream: resumed until `request` (the request the POST carried, if
    /// it was one) has its answer, and no later than `deadline`.
    Answer { request: Option<Box<RawValue>>, deadline: Instant },
}

/// How bounded work ended.
enum Bounded<T> {
    Done(T),
    /// The link is closing.
    Closing,
    /// The deadline passed.
    Late,
}

impl Remote {
    /// Whether `text` must be sent only after every message before it was answered: the
    /// handshake, and everything on the legacy transport (whose POSTs answer at once).
    fn in_order(&self, text: &str) -> bool {
        if self.stateless {
            return false;
        }
        let method = Envelope::parse(text).ok().and_then(|e| e.method().map(str::to_string));
        matches!(method.as_deref(), Some("initialize" | "notifications/initialized"))
            || self.legacy.lock().map(|l| l.is_some()).unwrap_or(true)
    }

    /// Asks the server `server/discover` (as the gateway, with no client capabilities):
    /// its result when it speaks 2026-07-28, `None` when it refuses or does not list
    /// that revision. `Err` only when it cannot be reached.
    async fn discover(&self) -> Result<Option<Value>, RemoteError> {
        let probe = serde_json::json!({
            "jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {"_meta": crate::modern::own_meta()},
        })
        .to_string();
        let resp = self.send(self.stateless_post(&probe)).await?;
        if !resp.status().is_success() {
            tracing::debug!(server = %self.name, status = %resp.status(), "server/discover refused: not a 2026-07-28 server");
            return Ok(None);
        }
        let answer = match sse_client::is_event_stream(resp.headers()) {
            true => {
                let mut first = None;
                let mut events = sse_client::events(resp);
                let mut position = sse_client::Position::default();
                let read = sse_client::follow(&mut events, self.max_event, &mut position, |data| {
                    first = Some(data);
                    false
                });
                let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
                first.unwrap_or_default()
            }
            false => match tokio::time::timeout(Duration::from_secs(10), resp.bytes()).await {
                Ok(Ok(body)) if body.len() <= self.max_event => String::from_utf8_lossy(&body).into_owned(),
                _ => String::new(),
            },
        };
        let result = serde_json::from_str::<Value>(&answer).ok().and_then(|mut v| v.get_mut("result").map(Value::take));
        let speaks = result
            .as_ref()
            .and_then(|r| r.get("supportedVersions").and_then(Value::as_array))
            .is_some_and(|versions| versions.iter().any(|v| v.as_str() == Some(crate::modern::VERSIONS[0])));
        tracing::debug!(server = %self.name, speaks, "server/discover asked: whether the server speaks 2026-07-28");
        Ok(result.filter(|_| speaks))
    }

    fn translating(&self) -> bool {
        self.translating.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One message of a session whose server speaks only 2026-07-28: answered here,
    /// dropped, or sent statelessly with the revision's envelope ([`translate::outgoing`]).
    async fn post_translated(self: &Arc<Self>, text: &str) -> Result<(), RemoteError> {
        let Ok(env) = Envelope::parse(text) else { return Ok(()) };
        let outgoing = {
            let mut level = self.level.lock().unwrap_or_else(|p| p.into_inner());
            translate::outgoing(&self.name, &env, text, &mut level)
        };
        match outgoing {
            Outgoing::Answer(answer) => {
                (self.events)(UpstreamEvent::Message(answer));
                Ok(())
            }
            Outgoing::Drop => Ok(()),
            Outgoing::Send(text) => self.post_stateless(&text).await,
        }
    }

    /// Hands one message from the server on to the session: as it came, or, when this
    /// link translates for an older client, as that client can take it.
    fn hand_on(&self, text: String) -> bool {
        let text = match self.translating() {
            true => translate::incoming(&self.name, text),
            false => text,
        };
        (self.events)(UpstreamEvent::Message(text))
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, &self.url).headers(self.headers.clone());
        if let Some(id) = self.session.lock().ok().and_then(|s| s.clone()) {
            req = req.header("Mcp-Session-Id", id);
        }
        if let Some(v) = self.protocol.lock().ok().and_then(|s| s.clone()) {
            req = req.header("MCP-Protocol-Version", v);
        }
        req
    }

    /// Sends one message; answers are delivered as events. A failure to deliver a request
    /// becomes an error response for it, so the caller never waits in vain.
    async fn post(self: &Arc<Self>, text: &str) -> Result<(), RemoteError> {
        if self.stateless {
            return self.post_stateless(text).await;
        }
        if self.translating() {
            return self.post_translated(text).await;
        }
        let deadline = Instant::now() + self.answer_within;
        let env = Envelope::parse(text).ok();
        let is_request = env.as_ref().is_some_and(|e| e.kind() == Kind::Request);
        let is_initialized = env.as_ref().and_then(Envelope::method) == Some("notifications/initialized");
        let fail = |why: RemoteError| {
            if let (true, Some(env)) = (is_request, env.as_ref()) {
                let reply = message::error_response(env.id(), message::code::UPSTREAM_ERROR, &why.to_string());
                (self.events)(UpstreamEvent::Message(reply));
            }
            why
        };
        let legacy = self.legacy.lock().ok().and_then(|l| l.clone());
        if let Some(endpoint) = legacy {
            return self.post_legacy(endpoint, text).await.map_err(fail);
        }
        let is_initialize = env.as_ref().and_then(Envelope::method) == Some("initialize");
        let req = self
            .request(reqwest::Method::POST)
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(text.to_string());
        let resp = self.send(req).await.map_err(fail)?;
        if let Some(id) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            if let Ok(mut s) = self.session.lock() {
                *s = Some(id.to_string());
            }
        }
        let status = resp.status();
        if is_initialize && matches!(status.as_u16(), 400 | 404 | 405) {
            // A server that speaks only 2026-07-28 refuses `initialize` too: the session
            // is translated onto its stateless requests, before the legacy transport is tried.
            if let (Some(env), Ok(Some(found))) = (env.as_ref(), self.discover().await) {
                self.translating.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(server = %self.name, "the server speaks only MCP 2026-07-28: this session is translated");
                (self.events)(UpstreamEvent::Message(translate::initialize_answer(env, &found)));
                return Ok(());
            }
            return match self.open_legacy().await {
                Ok(endpoint) => self.post_legacy(endpoint, text).await.map_err(fail),
                Err(why) => Err(fail(RemoteError::NeitherTransport { status, legacy: Box::new(why) })),
            };
        }
        if status == reqwest::StatusCode::ACCEPTED {
            if is_initialized {
                let me = self.clone();
                tokio::spawn(async move { me.listen().await });
            }
            // 202 acknowledges a notification or an answer; a request must be answered.
            return match is_request {
                true => Err(fail(self.not_answered(NotAnswer::Accepted))),
                false => Ok(()),
            };
        }
        if !status.is_success() {
            return Err(fail(RemoteError::Status(status)));
        }
        let request = env.as_ref().filter(|e| e.kind() == Kind::Request).and_then(|e| e.id().map(ToOwned::to_owned));
        if sse_client::is_event_stream(resp.headers()) {
            let me = self.clone();
            tokio::spawn(async move { me.follow(resp, Purpose::Answer { request, deadline }).await });
            return Ok(());
        }
        self.relay_body(resp, request, deadline).await.map_err(fail)
    }

    /// Reads a POST's JSON body (within the size limit and the request's `deadline`) and
    /// hands on every message in it: one message, or each of a batch's. When the POST
    /// carried a request (`request`, its id) and none of them is its answer, says what
    /// came instead (status, content type and size, never the content).
    async fn relay_body(
        &self,
        mut resp: reqwest::Response,
        request: Option<Box<RawValue>>,
        deadline: Instant,
    ) -> Result<(), RemoteError> {
        let status = resp.status();
        let content_type = MediaType::of(resp.headers());
        let limit = self.max_event;
        let read = async {
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(RemoteError::reach)? {
                if body.len() + chunk.len() > limit {
                    return Ok(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Some(body))
        };
        let body = match self.bounded(Some(deadline), read).await {
            Bounded::Done(Ok(Some(body))) => body,
            Bounded::Done(Ok(None)) => {
                return Err(self.not_answered(NotAnswer::TooLarge { status, content_type, limit }))
            }
            Bounded::Done(Err(why)) => return Err(why),
            Bounded::Closing => return Ok(()),
            Bounded::Late => return Err(self.not_answered(NotAnswer::TimedOut(self.answer_within.as_secs()))),
        };
        let mut awaited = request;
        let messages = self.deliver_body(&String::from_utf8_lossy(&body), &mut awaited);
        match awaited {
            None => Ok(()),
            Some(_) => Err(self.not_answered(NotAnswer::of(status, content_type, &body, messages))),
        }
    }

    /// Hands on the JSON-RPC messages of a JSON body (a single message, or each of a
    /// batch's, in order), clearing `awaited` when one is its answer; anything else in it
    /// is dropped. Returns how many were JSON-RPC messages.
    fn deliver_body(&self, text: &str, awaited: &mut Option<Box<RawValue>>) -> usize {
        let items: Vec<String> = match text.trim_start().starts_with('[') {
            true => serde_json::from_str::<Vec<Box<RawValue>>>(text)
                .map(|batch| batch.iter().map(|item| item.get().to_string()).collect())
                .unwrap_or_default(),
            false => vec![text.to_string()],
        };
        let mut messages = 0;
        for text in items {
            let Ok(env) = Envelope::parse(&text) else { continue };
            messages += 1;
            if !self.deliver_parsed(env, text, awaited) {
                break;
            }
        }
        messages
    }

    /// A request's answer that will not come: `got` is what came instead.
    fn not_answered(&self, got: NotAnswer) -> RemoteError {
        RemoteError::NotAnswered { server: self.name.clone(), got }
    }

    /// Hands one message from the server on, and clears `awaited` when the message is
    /// that request's answer. False once nobody listens any more.
    fn deliver(&self, text: String, awaited: &mut Option<Box<RawValue>>) -> bool {
        let Ok(env) = Envelope::parse(&text) else { return true };
        self.deliver_parsed(env, text, awaited)
    }

    /// [`Remote::deliver`] of a message already parsed (`env`, from `text`).
    fn deliver_parsed(&self, env: Envelope, text: String, awaited: &mut Option<Box<RawValue>>) -> bool {
        if env.kind() == Kind::Response && awaited.as_deref().is_some_and(|id| same_id(id, env.id())) {
            *awaited = None;
        }
        if !self.stateless && (env.method() == Some("initialize") || env.kind() == Kind::Response) {
            // Remember the negotiated protocol version for the header on later requests.
            if let Some(v) = env
                .get("result")
                .and_then(|r| serde_json::from_str::<serde_json::Value>(r.get()).ok())
                .and_then(|r| r.get("protocolVersion").and_then(|v| v.as_str()).map(str::to_string))
            {
                if let Ok(mut p) = self.protocol.lock() {
                    *p = Some(v);
                }
            }
        }
        self.hand_on(text)
    }

    /// A POST of one stateless message, with the routing headers its body implies (the
    /// HTTP face checked the client's own against the body; the body is what was
    /// decided on, so the headers are read from it again here).
    fn stateless_post(&self, text: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(text.to_string());
        let env = Envelope::parse(text).ok();
        let params = env.as_ref().and_then(|e| e.params().ok()).unwrap_or_default();
        let version = params
            .pointer(&format!("/_meta/{}", crate::modern::META_VERSION.replace('/', "~1")))
            .and_then(|v| v.as_str())
            .unwrap_or(crate::modern::VERSIONS[0]);
        let method = env.as_ref().and_then(Envelope::method).unwrap_or_default();
        for (name, value) in [("MCP-Protocol-Version", Some(version)), ("Mcp-Method", Some(method))] {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                req = req.header(name, v);
            }
        }
        let named = match method {
            "tools/call" | "prompts/get" => params.get("name"),
            "resources/read" => params.get("uri"),
            _ => None,
        };
        if let Some(v) = named.and_then(|n| n.as_str()).and_then(|n| HeaderValue::from_str(&encode_value(n)).ok()) {
            req = req.header("Mcp-Name", v);
        }
        if method == "tools/call" {
            let tool = params.get("name").and_then(Value::as_str).unwrap_or_default();
            let marks = self.tool_marks.lock().ok().and_then(|m| m.get(tool).cloned());
            let arguments = params.get("arguments").unwrap_or(&Value::Null);
            for (name, value) in marks.map(|m| m.mirror(arguments)).unwrap_or_default() {
                req = req.header(name, value);
            }
        }
        req
    }

    /// Learns the `x-mcp-header` marks of the tools in a `tools/list` answer (`text`).
    /// A tool whose marks break the rules mirrors nothing (a conforming server checks
    /// nothing for it either) and is named in the log.
    fn learn_tools(&self, text: &str) {
        let Ok(answer) = serde_json::from_str::<Value>(text) else { return };
        let Some(tools) = answer.pointer("/result/tools").and_then(Value::as_array) else { return };
        let Ok(mut known) = self.tool_marks.lock() else { return };
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else { continue };
            match ParamHeaders::of_schema(tool.get("inputSchema").unwrap_or(&Value::Null)) {
                Ok(marks) if !marks.is_empty() => {
                    known.insert(name.to_string(), marks);
                }
                Ok(_) => {
                    known.remove(name);
                }
                Err(why) => {
                    tracing::warn!(server = %self.name, tool = name, "tool's x-mcp-header marks ignored: {why}");
                    known.remove(name);
                }
            }
        }
    }

    /// One stateless message: a request is one exchange, ended early when the gateway
    /// cancels it; `notifications/cancelled` is not sent but ends the exchange it names;
    /// other notifications and answers have nowhere to go on this wire and are dropped.
    async fn post_stateless(self: &Arc<Self>, text: &str) -> Result<(), RemoteError> {
        let Ok(env) = Envelope::parse(text) else { return Ok(()) };
        if env.kind() != Kind::Request {
            if env.method() == Some("notifications/cancelled") {
                let id = env.params().ok().and_then(|p| p.get("requestId").map(|v| v.to_string()));
                if let Some(token) = id.and_then(|id| self.exchanges.lock().ok()?.remove(&id)) {
                    token.cancel();
                }
            }
            return Ok(());
        }
        let id = env.id().map(|i| i.get().to_string()).unwrap_or_default();
        let cancel = self.closing.child_token();
        if let Ok(mut exchanges) = self.exchanges.lock() {
            exchanges.insert(id.clone(), cancel.clone());
        }
        let result = tokio::select! {
            r = self.exchange(&env, text) => r,
            () = cancel.cancelled() => Ok(()),
        };
        if let Ok(mut exchanges) = self.exchanges.lock() {
            exchanges.remove(&id);
        }
        result
    }

    /// Sends one stateless request and relays what comes back: notifications on its
    /// stream as related to it, then the answer. An error answer with an HTTP error status
    /// (400, 404...) is still the server's answer and goes back as it is.
    async fn exchange(&self, env: &Envelope, text: &str) -> Result<(), RemoteError> {
        let request = env.id().map(ToOwned::to_owned);
        let fail = |why: RemoteError| {
            let reply = message::error_response(env.id(), message::code::UPSTREAM_ERROR, &why.to_string());
            (self.events)(UpstreamEvent::Message(reply));
            why
        };
        let resp = self.send(self.stateless_post(text)).await.map_err(fail)?;
        let status = resp.status();
        let listing = env.method() == Some("tools/list");
        if sse_client::is_event_stream(resp.headers()) && status.is_success() {
            let deadline = Instant::now() + self.answer_within;
            let mut awaited = request.clone();
            let mut position = sse_client::Position::default();
            let read = async {
                let mut events = sse_client::events(resp);
                sse_client::follow(&mut events, self.max_event, &mut position, |data| {
                    if listing {
                        self.learn_tools(&data);
                    }
                    self.deliver_related(data, request.as_deref(), &mut awaited)
                })
                .await
            };
            return match self.bounded(Some(deadline), read).await {
                Bounded::Done(_) | Bounded::Closing if awaited.is_none() => Ok(()),
                Bounded::Closing => Ok(()),
                Bounded::Done(_) => Err(fail(self.unanswered(Unreplayed::NoEventId))),
                Bounded::Late => Err(fail(self.unanswered(Unreplayed::TimedOut(self.answer_within.as_secs())))),
            };
        }
        let content_type = MediaType::of(resp.headers());
        let body = match resp.bytes().await {
            Ok(body) if body.len() <= self.max_event => String::from_utf8_lossy(&body).into_owned(),
            Ok(_) if status.is_success() => {
                let too_large = NotAnswer::TooLarge { status, content_type, limit: self.max_event };
                return Err(fail(self.not_answered(too_large)));
            }
            Ok(_) => return Err(fail(RemoteError::Status(status))),
            Err(e) => return Err(fail(RemoteError::reach(e))),
        };
        let parsed = Envelope::parse(&body).ok();
        let answers = parsed
            .as_ref()
            .is_some_and(|a| a.kind() == Kind::Response && request.as_deref().is_some_and(|id| same_id(id, a.id())));
        if !answers {
            // A success that is not the answer says what came instead, as for a session's POST.
            let why = match status {
                reqwest::StatusCode::ACCEPTED => self.not_answered(NotAnswer::Accepted),
                _ if status.is_success() => {
                    let messages = usize::from(parsed.is_some());
                    self.not_answered(NotAnswer::of(status, content_type, body.as_bytes(), messages))
                }
                _ => RemoteError::Status(status),
            };
            return Err(fail(why));
        }
        if listing && status.is_success() {
            self.learn_tools(&body);
        }
        self.hand_on(body);
        Ok(())
    }

    /// A message from a stateless request's stream: a notification is handed on as
    /// related to that request (its progress, its log lines, its listen stream's events).
    fn deliver_related(&self, text: String, request: Option<&RawValue>, awaited: &mut Option<Box<RawValue>>) -> bool {
        let is_note = Envelope::parse(&text).is_ok_and(|e| e.kind() == Kind::Notification);
        match (is_note, request) {
            (true, Some(id)) => (self.events)(UpstreamEvent::Related { request: id.to_owned(), text }),
            _ => self.deliver(text, awaited),
        }
    }

    /// Relays an SSE stream the server opened. When it ends or breaks while it is still
    /// needed (the GET stream, or an answer stream whose request is unanswered), it is
    /// resumed with `GET` and `Last-Event-ID` after the server's `retry` delay (bounded,
    /// see [`sse_client::Position::delay`]), from the newest event id each time. It is
    /// given up when it gave no usable event id, when [`MAX_RESUMES`] resumptions in a
    /// row bring no new event id, when the server refuses a resumption (a failure, 5xx or
    /// unreachable, counts as one fruitless resumption instead), and for an answer stream
    /// at the request timeout. A resumed answer stream is read only until the answer. A
    /// request whose answer is not replayed gets an error response saying why.
    async fn follow(&self, first: reqwest::Response, purpose: Purpose) {
        let (mut awaited, deadline) = match purpose {
            Purpose::Listen => (None, None),
            Purpose::Answer { request, deadline } => (request, Some(deadline)),
        };
        let listen = deadline.is_none();
        let late = || Unreplayed::TimedOut(self.answer_within.as_secs());
        let mut position = sse_client::Position::default();
        let mut resp = first;
        let mut resumed = false;
        let mut fruitless = 0;
        let why = 'follow: loop {
            let before = position.last_id.clone();
            let mut listening = true;
            let read = async {
                let mut events = sse_client::events(resp);
                sse_client::follow(&mut events, self.max_event, &mut position, |data| {
                    listening = self.deliver(data, &mut awaited);
                    // A resumed answer stream has done its work once the answer is through.
                    listening && (listen || !resumed || awaited.is_some())
                })
                .await
            };
            let end = match self.bounded(deadline, read).await {
                Bounded::Done(end) => end,
                Bounded::Closing => return,
                Bounded::Late => break late(),
            };
            if !listening || (!listen && awaited.is_none()) {
                return;
            }
            if position.last_id != before {
                fruitless = 0;
            }
            tracing::debug!(server = self.name, ?end, listen, "remote SSE stream ended early");
            resp = loop {
                let Some(last) = position.last_id.as_deref() else { break 'follow Unreplayed::NoEventId };
                let Some(last) = HeaderValue::from_str(last).ok().filter(|_| last.len() <= MAX_EVENT_ID) else {
                    break 'follow Unreplayed::BadEventId;
                };
                if fruitless >= MAX_RESUMES {
                    break 'follow Unreplayed::Exhausted(MAX_RESUMES);
                }
                fruitless += 1;
                match self.bounded(deadline, tokio::time::sleep(position.delay())).await {
                    Bounded::Done(()) => {}
                    Bounded::Closing => return,
                    Bounded::Late => break 'follow late(),
                }
                match self.bounded(deadline, self.resume(last)).await {
                    Bounded::Done(Ok(resp)) => break resp,
                    Bounded::Done(Err(why)) if why.is_transient() => {
                        tracing::debug!(server = self.name, "remote SSE stream not resumed yet: {why}");
                    }
                    Bounded::Done(Err(why)) => break 'follow why,
                    Bounded::Closing => return,
                    Bounded::Late => break 'follow late(),
                }
            };
            resumed = true;
        };
        match awaited {
            Some(id) => {
                tracing::warn!(server = self.name, "remote upstream: an answer stream was cut short: {why}");
                let why = self.unanswered(why).to_string();
                (self.events)(UpstreamEvent::Message(message::error_response(
                    Some(&id),
                    message::code::UPSTREAM_ERROR,
                    &why,
                )));
            }
            None => tracing::debug!(server = self.name, "remote GET stream not resumed: {why}"),
        }
    }

    /// A request's answer stream ended without the answer, and `why` it was not replayed.
    fn unanswered(&self, why: Unreplayed) -> RemoteError {
        RemoteError::Unanswered { server: self.name.clone(), why }
    }

    /// Asks the server to replay a stream after the event `last_id` on a new GET stream.
    async fn resume(&self, last_id: HeaderValue) -> Result<reqwest::Response, Unreplayed> {
        let req =
            self.request(reqwest::Method::GET).header(ACCEPT, "text/event-stream").header("Last-Event-ID", last_id);
        let resp = self.send(req).await.map_err(|why| Unreplayed::Unsent(Box::new(why)))?;
        if !resp.status().is_success() {
            return Err(Unreplayed::Refused(resp.status()));
        }
        if !sse_client::is_event_stream(resp.headers()) {
            return Err(Unreplayed::NotAStream);
        }
        Ok(resp)
    }

    /// Runs `work` until it is done, the link closes, or `deadline` (if any) passes.
    async fn bounded<T>(&self, deadline: Option<Instant>, work: impl Future<Output = T>) -> Bounded<T> {
        let late = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = work => Bounded::Done(done),
            () = self.closing.cancelled() => Bounded::Closing,
            () = late => Bounded::Late,
        }
    }

    /// Sends `req`, with the sign-in's bearer token when the server uses one. A 401 gets
    /// one more try with a refreshed token; when there is none, the error tells the user
    /// how to sign in.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, RemoteError> {
        let reach = RemoteError::reach;
        let Some(auth) = &self.auth else { return req.send().await.map_err(reach) };
        let retry = req.try_clone();
        let token = match auth.bearer().await {
            Ok(token) => token,
            Err(e @ BearerError::NeedsSignIn { .. }) => return Err(e.into()),
            Err(e) => {
                tracing::debug!("no sign-in token used: {e}");
                None
            }
        };
        let first = with_bearer(req, token.as_ref()).send().await.map_err(reach)?;
        if first.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let Some(retry) = retry else { return Ok(first) };
        let fresh = auth.after_refusal(token.as_ref()).await?;
        with_bearer(retry, Some(&fresh)).send().await.map_err(reach)
    }

    /// The GET stream for messages the server sends on its own. 405 means it has none.
    async fn listen(&self) {
        let resp = self.send(self.request(reqwest::Method::GET).header(ACCEPT, "text/event-stream")).await;
        match resp {
            Ok(r) if r.status().is_success() => self.follow(r, Purpose::Listen).await,
            Ok(r) => tracing::debug!(status = %r.status(), "remote server offers no GET stream"),
            Err(e) => tracing::debug!("remote GET stream failed: {e}"),
        }
    }

    /// Opens the legacy SSE stream and waits for its `endpoint` event; the stream then
    /// keeps delivering the server's messages.
    async fn open_legacy(self: &Arc<Self>) -> Result<reqwest::Url, RemoteError> {
        let resp = self
            .send(self.client.get(&self.url).headers(self.headers.clone()).header(ACCEPT, "text/event-stream"))
            .await?;
        if !resp.status().is_success() {
            return Err(RemoteError::LegacyGet(resp.status()));
        }
        let base = reqwest::Url::parse(&self.url).map_err(RemoteError::Url)?;
        let mut stream = sse_client::events(resp);
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Some(item) = stream.next().await {
                let event = item.map_err(RemoteError::Stream)?;
                if event.event.as_deref() == Some("endpoint") {
                    return Ok(event.data.unwrap_or_default());
                }
            }
            Err(RemoteError::NoEndpoint)
        })
        .await
        .map_err(|_| RemoteError::EndpointTimeout)??;
        let endpoint = base.join(first.trim()).map_err(RemoteError::BadEndpoint)?;
        if endpoint.origin() != base.origin() {
            return Err(RemoteError::ForeignEndpoint);
        }
        let me = self.clone();
        let relay = tokio::spawn(async move {
            sse_client::for_each_message(&mut stream, me.max_event, |data| {
                me.deliver(data, &mut None);
                true
            })
            .await;
            (me.events)(UpstreamEvent::Closed("the legacy SSE stream ended".into()));
        });
        if let Ok(mut l) = self.legacy_stream.lock() {
            *l = Some(relay);
        }
        if let Ok(mut l) = self.legacy.lock() {
            *l = Some(endpoint.clone());
        }
        tracing::info!("remote server speaks the legacy HTTP+SSE transport");
        Ok(endpoint)
    }

    /// One message to a legacy server; its answer arrives on the SSE stream.
    async fn post_legacy(&self, endpoint: reqwest::Url, text: &str) -> Result<(), RemoteError> {
        let resp = self
            .send(
                self.client
                    .post(endpoint)
                    .headers(self.headers.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(text.to_string()),
            )
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(RemoteError::Status(resp.status()))
        }
    }

    async fn close(&self) {
        self.closing.cancel();
        if let Some(relay) = self.legacy_stream.lock().ok().and_then(|mut l| l.take()) {
            relay.abort();
        }
        if self.session.lock().ok().and_then(|s| s.clone()).is_some() {
            let _ = self.send(self.request(reqwest::Method::DELETE)).await;
        }
    }
}

/// A value as an HTTP header carries it (2026-07-28): printable ASCII with no space at
/// either end as it is, anything else as `=?base64?...?=`.
/// `req` with the sign-in's token as its bearer (marked sensitive, so never logged).
fn with_bearer(req: reqwest::RequestBuilder, token: Option<&Secret>) -> reqwest::RequestBuilder {
    match token.and_then(|t| HeaderValue::from_str(&format!("Bearer {}", t.expose())).ok()) {
        Some(mut value) => {
            value.set_sensitive(true);
            req.header(AUTHORIZATION, value)
        }
        None => req,
    }
}

/// Whether a response's `id` is the request id `sent`: the same JSON, however written.
fn same_id(sent: &RawValue, id: Option<&RawValue>) -> bool {
    let Some(id) = id else { return false };
    let parse = |raw: &RawValue| serde_json::from_str::<serde_json::Value>(raw.get()).ok();
    id.get() == sent.get() || parse(id).zip(parse(sent)).is_some_and(|(id, sent)| id == sent)
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
