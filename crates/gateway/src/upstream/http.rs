//! A remote MCP server over streamable HTTP (2025-06-18 and later): each message is a
//! POST; answers come back as JSON or as an SSE stream; the session id the server
//! assigns is sent on every later request; a GET stream carries what the server sends
//! unprompted. A server that refuses the POSTed `initialize` (400, 404, 405) is tried
//! with the 2024-11-05 HTTP+SSE transport instead: a GET stream that names, in its
//! `endpoint` event, a same-origin URL to POST messages to. Static headers come from
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

use super::remote_error::{RemoteError, Unreplayed};
use super::{EventSink, UpstreamError, UpstreamEvent, UpstreamLink};
use crate::config::Limits;
use crate::message::{self, Envelope, Kind};
use crate::sse_client;
use countersign_vault::oauth::{BearerError, ServerAuth};
use countersign_vault::Secret;
use futures::StreamExt;
use reqwest::header::AUTHORIZATION;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde_json::value::RawValue;
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
}

pub(super) fn open(
    name: &str,
    url: &str,
    headers: &[(String, Secret)],
    limits: &Limits,
    events: EventSink,
) -> Result<UpstreamLink, UpstreamError> {
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
        auth: (!map.contains_key(AUTHORIZATION)).then(|| ServerAuth::new(name, url)),
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
    });
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let server = name.to_string();
    let worker = remote.clone();
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
    Ok(UpstreamLink { writer: super::Writer::Channel(tx), _guard: Arc::new(()) })
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
        let method = Envelope::parse(text).ok().and_then(|e| e.method().map(str::to_string));
        matches!(method.as_deref(), Some("initialize" | "notifications/initialized"))
            || self.legacy.lock().map(|l| l.is_some()).unwrap_or(true)
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
            return Ok(());
        }
        if !status.is_success() {
            return Err(fail(RemoteError::Status(status)));
        }
        let is_sse = sse_client::is_event_stream(resp.headers());
        let request = env.filter(|e| e.kind() == Kind::Request).and_then(|e| e.id().map(ToOwned::to_owned));
        let me = self.clone();
        tokio::spawn(async move {
            if is_sse {
                me.follow(resp, Purpose::Answer { request, deadline }).await;
            } else {
                match resp.bytes().await {
                    Ok(body) if body.len() <= me.max_event => {
                        me.deliver(String::from_utf8_lossy(&body).into_owned(), &mut None);
                    }
                    Ok(_) => tracing::warn!("remote answer over the size limit dropped"),
                    Err(e) => tracing::warn!("remote answer unreadable: {}", without_url(e)),
                }
            }
        });
        Ok(())
    }

    /// Hands one message from the server on, and clears `awaited` when the message is
    /// that request's answer. False once nobody listens any more.
    fn deliver(&self, text: String, awaited: &mut Option<Box<RawValue>>) -> bool {
        let Ok(env) = Envelope::parse(&text) else { return true };
        if env.kind() == Kind::Response && awaited.as_deref().is_some_and(|id| same_id(id, env.id())) {
            *awaited = None;
        }
        if env.method() == Some("initialize") || env.kind() == Kind::Response {
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
        (self.events)(UpstreamEvent::Message(text))
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
                let why = RemoteError::Unanswered(why).to_string();
                (self.events)(UpstreamEvent::Message(message::error_response(
                    Some(&id),
                    message::code::UPSTREAM_ERROR,
                    &why,
                )));
            }
            None => tracing::debug!(server = self.name, "remote GET stream not resumed: {why}"),
        }
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

/// A reqwest error without the URL (which may carry a query with secrets).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
