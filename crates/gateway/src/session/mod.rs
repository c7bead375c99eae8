//! One client session: the client's view of one upstream (`/mcp/<server>`) or of all of
//! them (`/mcp`), with one upstream connection per server, started on first use and
//! restarted (with the client's `initialize` replayed) after it ends. A stdio server's
//! process is started only with room under `[limits] max_processes_per_server`, which
//! the session table makes by closing another, idle, session (table.rs); a closed session
//! never starts one.
//!
//! The session maps every id that crosses it: the client's request ids become the
//! gateway's own upstream ids (so gateway-made requests never collide with a client's),
//! progress tokens become gateway tokens, and an upstream's requests to the client
//! (sampling, elicitation, roots, ping) get ids in the client's space. Answers are routed
//! back to the exact stream they belong to. The lock on the session state is never held
//! across an await.

mod aggregate;
mod deadlines;
pub mod flow;
mod link_error;
mod links;
mod routing;
mod stateless;
mod streams;
mod table;
mod tasks;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
mod uri_template;

pub(crate) use crate::shared::outcome;
pub(crate) use deadlines::spawn_sweeper;
pub use deadlines::Deadlines;
pub use link_error::LinkError;
pub use streams::StreamEvent;
pub(crate) use table::{Full, Sessions};

/// What a client request gets back: the answer alone (JSON), a resumable event stream,
/// (a stateless request) the messages as they come, unlogged; or nothing here, because it
/// goes on the connection's one line ([`AnswerTo::Line`]).
pub enum Answer {
    Json(mpsc::UnboundedReceiver<String>),
    Stream(flow::Flow<StreamEvent>),
    Live(flow::Flow<String>),
    OnLine,
}

/// How a client request wants its answer.
pub enum AnswerTo {
    /// The answer alone, as one JSON body (HTTP).
    Json,
    /// A resumable event stream with the request's progress and related messages (HTTP).
    Stream,
    /// The connection's one ordered line of messages, which also carries everything the
    /// server sends on its own (the shim socket).
    Line(flow::FlowTx<String>),
}

/// Which face opened a session. A session answers only on the face that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The loopback HTTP face: the client is its token.
    Http,
    /// The shim socket: the client is the peer's user (checked by the OS) and the name the
    /// connection chose; there is no token to revoke, the connection is the credential.
    Socket,
}

/// Where the messages for one client request go.
pub(crate) enum ClientTx {
    /// The answer alone, as a JSON body.
    Json(mpsc::UnboundedSender<String>),
    /// A logged SSE stream that also carries the request's progress and related messages.
    Stream(streams::StreamSink),
    /// A stateless request's stream (2026-07-28): not logged, since nothing resumes it;
    /// the connection closing is the request's cancellation.
    Live(flow::FlowTx<String>),
    /// The connection's one line, in order with everything else the session sends it.
    Line(flow::FlowTx<String>),
}

impl ClientTx {
    /// Resolves when nobody can receive the answer any more: the client's connection for a
    /// JSON answer or a line closed. A stream can be resumed after a broken connection, so
    /// it never counts as closed here.
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (json, live, line) = match self {
            ClientTx::Json(tx) => (Some(tx.clone()), None, None),
            ClientTx::Stream(_) => (None, None, None),
            ClientTx::Live(tx) => (None, Some(tx.watch()), None),
            ClientTx::Line(tx) => (None, None, Some(tx.closed())),
        };
        async move {
            match (json, live, line) {
                (Some(tx), _, _) => tx.closed().await,
                (None, Some(live), _) => live.closed().await,
                (None, None, Some(line)) => line.await,
                (None, None, None) => std::future::pending().await,
            }
        }
    }

    pub(crate) fn send(&self, text: String) -> bool {
        match self {
            ClientTx::Json(tx) => tx.send(text).is_ok(),
            ClientTx::Stream(sink) => {
                sink.send(text);
                true
            }
            ClientTx::Live(tx) => tx.send(text).is_ok(),
            ClientTx::Line(tx) => tx.send(text).is_ok(),
        }
    }
}

pub use aggregate::split_name;

use crate::govern::approvals::GiveUp;
use crate::govern::{Outbound, OwnRequest, Permit};
use crate::message::{self, code, Envelope};
use crate::shared::Shared;
use crate::upstream::UpstreamLink;
use countersign_policy::ToolDef;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Which upstreams a session sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/mcp/<server>`: one server, names unchanged.
    Single(String),
    /// `/mcp`: every configured server, names namespaced `server__name`.
    Aggregate,
}

/// What lets a client request go upstream.
pub(crate) enum Release {
    /// A governed request: the permit its committed record produced, and when the
    /// request arrived (for its outcome's duration).
    Permit(Permit, Instant),
    /// A lifecycle request (`initialize`, `logging/setLevel`): no decision needed.
    Lifecycle,
}

/// Where an upstream's answer goes.
pub(crate) enum Reply {
    /// To the client, on the stream (or body) of the request that asked.
    Client { tx: ClientTx, _in_flight: Option<InFlight> },
    /// To the gateway itself (its own `tools/list`, a replayed `initialize`).
    Internal(oneshot::Sender<Envelope>),
}

impl Reply {
    /// A reply nobody waits for: what is sent to it goes nowhere (a call answered
    /// "pending" keeps waiting for its approval after its client was answered).
    pub(crate) fn nobody() -> Reply {
        Reply::Internal(oneshot::channel().0)
    }

    /// Sends a notification about the request (its progress) on the request's own stream;
    /// a JSON answer carries only the answer, so there it is dropped. Whether it was sent.
    pub(crate) fn notify(&self, text: String) -> bool {
        match self {
            Reply::Client { tx: tx @ (ClientTx::Stream(_) | ClientTx::Live(_)), .. } => tx.send(text),
            _ => false,
        }
    }

    /// Whether the answer goes to a stateless request's live stream.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self, Reply::Client { tx: ClientTx::Live(_), .. })
    }

    /// Resolves when nobody can receive this answer any more (see [`ClientTx::closed`]).
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tx = match self {
            Reply::Client { tx, .. } => Some(tx.closed()),
            Reply::Internal(_) => None,
        };
        async move {
            match tx {
                Some(closed) => closed.await,
                None => std::future::pending().await,
            }
        }
    }
}

/// Holds a client request id as in flight until the request's reply is dropped (answered
/// or abandoned). Its own lock, never the session state's, so dropping it is always safe.
pub(crate) struct InFlight {
    ids: Arc<Mutex<std::collections::HashSet<String>>>,
    id: String,
}

impl InFlight {
    /// Claims `id` (raw JSON, compared as JSON: `"a"` and `"\u0061"` are one id); `None`
    /// when a request with that id is already in flight.
    fn claim(ids: &Arc<Mutex<std::collections::HashSet<String>>>, id: &str) -> Option<InFlight> {
        let id = canonical_id(id);
        let mut set = ids.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(id.clone()).then(|| InFlight { ids: ids.clone(), id })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

pub(crate) struct Pending {
    server: String,
    client_id: Option<Box<RawValue>>,
    method: String,
    reply: Reply,
    progress: Option<String>,
    audit: Option<(uuid::Uuid, Instant)>,
    /// When the gateway gives up on the upstream; `None` for the gateway's own requests,
    /// which wait with their own timeout.
    deadline: Option<Instant>,
}

/// An aggregate listing as sent, and when it was made.
pub(crate) struct KeptListing {
    json: Arc<str>,
    at: Instant,
}

impl State {
    /// Forgets what `server` listed (its list changed, or it stopped): the next call
    /// lists it again, and that listing is learned and reviewed afresh.
    pub(crate) fn forget_tools(&mut self, server: &str) {
        self.tools.remove(server);
        self.classes.remove(server);
        self.reviewed.remove(server);
    }

    /// Forgets the aggregate listings (a server's list changed, or an upstream started).
    pub(crate) fn listings_stale(&mut self) {
        self.listings.clear();
        self.listing_generation += 1;
    }
}

#[derive(Default)]
pub(crate) struct State {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// Upstream requests to the client: the id the client sees → (server, upstream's id).
    server_requests: HashMap<u64, AskedByServer>,
    /// Gateway progress token → (the client's token, the pending request it belongs to).
    progress: HashMap<String, (Box<RawValue>, u64)>,
    get_stream: Option<flow::FlowTx<String>>,
    backlog: VecDeque<String>,
    backlog_bytes: usize,
    /// Tool definitions per server from the last `tools/list` that passed.
    tools: HashMap<String, HashMap<String, ToolDef>>,
    /// Each listed tool's class, with the policy version that classified it.
    classes: HashMap<String, HashMap<String, (String, countersign_policy::Classification)>>,
    /// Per server, the last `tools/list` result reviewed (a digest of its text, the pins'
    /// generation then) and what was passed on: an unchanged listing is not reviewed again.
    reviewed: HashMap<String, (u64, u64, Option<Value>)>,
    /// The aggregate endpoint's listings by method, and what makes them stale.
    listings: HashMap<String, KeptListing>,
    listing_generation: u64,
    alive: HashMap<String, bool>,
    client_name: Option<String>,
    client_version: Option<String>,
    init_params: Option<Value>,
    /// Each upstream's `initialize` result (aggregate sessions merge them).
    server_init: HashMap<String, Value>,
    /// Which server listed a resource URI (aggregate sessions route reads by it).
    resource_owner: HashMap<String, Option<String>>,
    /// Each server's resource templates from the last aggregate listing of them: a read
    /// of a URI no server listed goes to the one server whose template describes it.
    resource_templates: Vec<aggregate::TemplateOwner>,
    /// Tool calls the gateway runs as tasks for this session's client.
    tasks: tasks::TaskTable,
    /// Calls waiting for a person, by the client's request id: how to withdraw them when
    /// the client cancels or the session ends.
    waiting: HashMap<String, GiveUp>,
    /// The roots each server holds after the client answered its `roots/list` (a file
    /// server reads relative paths against them).
    client_roots: HashMap<String, Vec<std::path::PathBuf>>,
    protocol_version: Option<String>,
    streams: streams::Streams,
    last_seen: Option<Instant>,
    /// A stateless session: how each server's link speaks (see [`Speaks`]).
    speaks: HashMap<String, Speaks>,
    /// A stateless session: when each server's tool list was learned and how long the
    /// server said it stays fresh (its `ttlMs`, capped).
    tools_fresh_until: HashMap<String, Instant>,
    /// A stateless session: the `subscriptions/listen` streams the gateway serves itself
    /// for servers it reaches through a session (see [`Speaks::Handshake`]).
    listeners: Vec<stateless::Listener>,
}

/// How a stateless session's link to one server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speaks {
    /// The server speaks 2026-07-28: each request goes as it came, on its own POST.
    Stateless,
    /// The server speaks an older revision (or stdio): the gateway opened one session with
    /// it for this client token, and translates each stateless request onto it.
    Handshake,
}

/// A request a server sent to the client: which server, its own id, what it asked.
pub(crate) struct AskedByServer {
    server: String,
    id: Box<RawValue>,
    kind: crate::govern::server_requests::ServerRequest,
}

const BACKLOG_LIMIT: usize = 1000;
/// Most bytes of messages kept for a client with no stream open.
const BACKLOG_BYTES: usize = 16 * 1024 * 1024;

pub struct Session {
    pub id: String,
    pub token_name: String,
    pub route: Route,
    /// Serves a client token's stateless (2026-07-28) requests to one route: never found
    /// by a client's `Mcp-Session-Id`, and its requests share nothing but its upstream
    /// links (see `stateless.rs`).
    pub stateless: bool,
    /// The face that opened it, the only one it answers on.
    pub door: Door,
    pub(crate) shared: Arc<Shared>,
    /// The gateway's deadline sweeper, woken when a request with a deadline is added.
    deadlines: Arc<Deadlines>,
    /// The table it is in, which makes room for its processes.
    table: Weak<Sessions>,
    /// Set by [`Session::close`]: from then on no upstream starts for it.
    closed: AtomicBool,
    /// Upstream connections being started now (the session is busy meanwhile).
    starting: AtomicUsize,
    /// Messages its client has sent (each `touch`).
    requests: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
    links: HashMap<String, tokio::sync::Mutex<Option<UpstreamLink>>>,
    in_flight: Arc<Mutex<std::collections::HashSet<String>>>,
    me: Weak<Session>,
    /// `session{session, token}`: every request of the session, and what its servers
    /// send, is handled inside it, so log lines name the session. Never a secret in it.
    pub(crate) span: tracing::Span,
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        table: &Arc<Sessions>,
        token_name: String,
        route: Route,
        door: Door,
    ) -> Arc<Session> {
        Self::build(shared, table, token_name, route, false, door)
    }

    /// The session that carries one client token's stateless requests to `route`.
    pub(crate) fn new_stateless(
        shared: Arc<Shared>,
        table: &Arc<Sessions>,
        token_name: String,
        route: Route,
    ) -> Arc<Session> {
        let session = Self::build(shared, table, token_name, route, true, Door::Http);
        session.state().init_params = Some(stateless::handshake_params());
        session
    }

    fn build(
        shared: Arc<Shared>,
        table: &Arc<Sessions>,
        token_name: String,
        route: Route,
        stateless: bool,
        door: Door,
    ) -> Arc<Session> {
        let servers: Vec<String> = match &route {
            Route::Single(s) => vec![s.clone()],
            // A project's server is not even named to another client's session.
            Route::Aggregate => {
                shared.servers().iter().filter(|(_, s)| s.info.serves(&token_name)).map(|(n, _)| n.clone()).collect()
            }
        };
        let random: String = crate::home::random_token("").chars().take(32).collect();
        let id = if stateless { format!("stateless-{}", &random[..16]) } else { random };
        let span = tracing::info_span!(parent: None, "session", session = %id, token = %token_name);
        Arc::new_cyclic(|me| Session {
            id,
            span,
            token_name,
            route,
            stateless,
            door,
            shared,
            deadlines: table.deadlines.clone(),
            table: Arc::downgrade(table),
            closed: AtomicBool::new(false),
            starting: AtomicUsize::new(0),
            requests: Default::default(),
            state: Mutex::new(State { last_seen: Some(Instant::now()), ..State::default() }),
            links: servers.into_iter().map(|s| (s, tokio::sync::Mutex::new(None))).collect(),
            in_flight: Arc::default(),
            me: me.clone(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn has_server(&self, server: &str) -> bool {
        self.links.contains_key(server)
    }

    pub fn servers(&self) -> impl Iterator<Item = &String> {
        self.links.keys()
    }

    pub fn client(&self) -> (Option<String>, Option<String>) {
        let st = self.state();
        (st.client_name.clone(), st.client_version.clone())
    }

    pub fn touch(&self) {
        self.state().last_seen = Some(Instant::now());
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// How many messages its client has sent it.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How long the session has been idle: no request in flight, no open GET stream, and
    /// nothing received since. Zero while it is busy or listening.
    pub fn idle_for(&self) -> Duration {
        if self.busy() || self.listening() {
            return Duration::ZERO;
        }
        self.state().last_seen.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// In use now: a request in flight or waiting for its upstream, a call waiting for a
    /// person, or an upstream being started. A busy session is never closed for being
    /// idle, nor to make room for another's process.
    pub(crate) fn busy(&self) -> bool {
        if self.starting.load(Ordering::SeqCst) > 0 || self.in_flight.lock().map(|f| !f.is_empty()).unwrap_or(true) {
            return true;
        }
        let st = self.state();
        !st.pending.is_empty() || !st.waiting.is_empty()
    }

    /// Its client holds a GET stream open (it may hear from its servers at any time).
    pub(crate) fn listening(&self) -> bool {
        let st = self.state();
        st.get_stream.as_ref().is_some_and(|tx| !tx.is_closed()) || stateless::listening(&st)
    }

    /// When a client last sent it something.
    pub(crate) fn last_used(&self) -> Instant {
        self.state().last_seen.unwrap_or_else(Instant::now)
    }

    /// Whether it holds a live connection to `server` (for a stdio server: its process).
    /// False while the connection is being started (the session is busy then).
    pub(crate) fn runs(&self, server: &str) -> bool {
        self.state().alive.get(server).copied().unwrap_or(false)
            && self.links.get(server).and_then(|slot| slot.try_lock().ok()).is_some_and(|slot| slot.is_some())
    }

    pub fn pending_count(&self) -> usize {
        self.state().pending.len()
    }

    /// Client requests not yet answered (waiting for a person, or for their server).
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.lock().map_or(0, |f| f.len())
    }

    pub fn protocol_version(&self) -> Option<String> {
        self.state().protocol_version.clone()
    }

    pub(crate) fn set_protocol_version(&self, version: &str) {
        self.state().protocol_version = Some(version.to_string());
    }

    /// Remembers the client's `initialize` (to replay after an upstream restart).
    pub fn set_initialize(&self, params: &Value) {
        let mut st = self.state();
        let info = params.get("clientInfo");
        st.client_name = info.and_then(|i| i.get("name")).and_then(Value::as_str).map(str::to_string);
        st.client_version = info.and_then(|i| i.get("version")).and_then(Value::as_str).map(str::to_string);
        st.protocol_version = params.get("protocolVersion").and_then(Value::as_str).map(str::to_string);
        st.init_params = Some(params.clone());
    }

    /// Opens the client's GET stream; what waited in the backlog goes out first.
    pub fn open_get_stream(&self) -> flow::Flow<String> {
        let (tx, rx) = flow::flow();
        self.send_own_messages_to(tx);
        rx
    }

    /// Sends what the servers send on their own (and what waited in the backlog, first)
    /// to `tx`: a GET stream, or the shim socket's line.
    pub(crate) fn send_own_messages_to(&self, tx: flow::FlowTx<String>) {
        let mut st = self.state();
        st.backlog_bytes = 0;
        for text in st.backlog.drain(..) {
            let _ = tx.send(text);
        }
        st.get_stream = Some(tx);
    }

    /// Registers a call waiting for a person under the client's request id (as JSON).
    pub(crate) fn register_wait(&self, client_id: &str) -> GiveUp {
        let give_up = GiveUp::default();
        self.state().waiting.insert(canonical_id(client_id), give_up.clone());
        give_up
    }

    pub(crate) fn forget_wait(&self, client_id: &str) {
        self.state().waiting.remove(&canonical_id(client_id));
    }

    /// The roots `server` holds, when the client told it some.
    pub(crate) fn client_roots(&self, server: &str) -> Option<Vec<std::path::PathBuf>> {
        self.state().client_roots.get(server).cloned()
    }

    /// Withdraws the call waiting under `client_id`, if one waits; true when it did.
    pub(crate) fn give_up_wait(&self, client_id: &str, why: &'static str) -> bool {
        let waiting = self.state().waiting.remove(&canonical_id(client_id));
        waiting.map(|w| w.give_up(why)).is_some()
    }

    /// Sends a request of the gateway's own and waits for its answer.
    pub(crate) async fn internal_request(
        &self,
        server: &str,
        link: &UpstreamLink,
        own: OwnRequest,
        params: Value,
    ) -> Result<Envelope, LinkError> {
        let method = own.method();
        let mut params = params;
        if self.speaks(server) == Some(Speaks::Stateless) {
            stateless::add_own_meta(&mut params);
        }
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            server: server.to_string(),
            client_id: None,
            method: method.to_string(),
            reply: Reply::Internal(tx),
            progress: None,
            audit: None,
            deadline: None,
        };
        let id = self.register(pending, None);
        if link.send(Outbound::own_request(own, id, &params)).await.is_err() {
            self.state().pending.remove(&id);
            return Err(LinkError::NotRunning { server: server.to_string() });
        }
        let timeout = Duration::from_secs(self.shared.config.limits.request_timeout_secs.min(60));
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(env)) => Ok(env),
            Ok(Err(_)) => Err(LinkError::Stopped { server: server.to_string(), method }),
            Err(_) => {
                self.state().pending.remove(&id);
                Err(LinkError::NoAnswer { server: server.to_string(), method, secs: timeout.as_secs() })
            }
        }
    }

    /// Registers a request for its answer and returns the id the upstream sees.
    /// `progress` maps the gateway's progress token to the client's own.
    fn register(&self, mut pending: Pending, progress: Option<(String, Box<RawValue>)>) -> u64 {
        let mut st = self.state();
        st.next_id += 1;
        let id = st.next_id;
        pending.progress = progress.map(|(token, client_token)| {
            st.progress.insert(token.clone(), (client_token, id));
            token
        });
        st.pending.insert(id, pending);
        id
    }

    /// Forwards a client request to `server`, its answer going to `reply`: a governed one
    /// only with its permit.
    pub(crate) async fn forward(&self, server: &str, mut env: Envelope, reply: Reply, release: Release) {
        let client_id = env.id().map(|r| r.to_owned());
        let method = env.method().unwrap_or_default().to_string();
        let audit = match &release {
            Release::Permit(permit, started) => Some((permit.record_id(), *started)),
            Release::Lifecycle => None,
        };
        let link = match self.link(server).await {
            Ok(link) => link,
            Err(why) => return self.fail_reply(reply, client_id.as_deref(), &why.to_string(), audit),
        };
        if self.stateless && self.speaks(server) == Some(Speaks::Handshake) {
            stateless::to_handshake(&mut env);
        }
        // A stateless request is cancelled by closing its stream: watched from here on.
        let gone = reply.is_live().then(|| reply.closed());
        // Map the client's progress token to one of ours.
        let mut progress = None;
        if env.get("params").is_some_and(|p| p.get().contains("progressToken")) {
            if let Ok(mut params) = env.params() {
                if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
                    if let Some(token) = meta.get("progressToken").cloned() {
                        let ours = format!("cs-{}", uuid::Uuid::now_v7().simple());
                        meta.insert("progressToken".into(), Value::String(ours.clone()));
                        progress = Some((ours, message::raw(&token.to_string())));
                        env.set_params(&params);
                    }
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(self.shared.config.limits.request_timeout_secs);
        let pending = Pending {
            server: server.to_string(),
            client_id,
            method,
            reply,
            progress: None,
            audit,
            deadline: Some(deadline),
        };
        let id = self.register(pending, progress);
        self.deadlines.added();
        if let Some(gone) = gone {
            self.cancel_when_gone(server, id, gone);
        }
        env.set_id_u64(id);
        let outbound = match release {
            Release::Permit(permit, _) => Outbound::request(permit, &env),
            Release::Lifecycle => match Outbound::plain(&env) {
                Ok(out) => out,
                Err(why) => return self.fail_pending(id, &why),
            },
        };
        if link.send(outbound).await.is_err() {
            let why = format!("upstream server `{server}` is not running");
            self.fail_pending(id, &why);
        }
    }

    /// How a stateless session's link to `server` speaks, once it is up.
    pub(crate) fn speaks(&self, server: &str) -> Option<Speaks> {
        self.state().speaks.get(server).copied()
    }

    /// Answers a request that never reached its upstream.
    fn fail_reply(&self, reply: Reply, client_id: Option<&RawValue>, why: &str, audit: Option<(uuid::Uuid, Instant)>) {
        if let Some((record_id, started)) = audit {
            self.shared.outcome(outcome(record_id, started, countersign_audit::Outcome::Error, Some(why)));
        }
        if let Reply::Client { tx, .. } = reply {
            let _ = tx.send(message::error_response(client_id, code::UPSTREAM_ERROR, why));
        }
    }

    fn fail_pending(&self, id: u64, why: &str) {
        if let Some(p) = self.take_pending(id) {
            self.fail_reply(p.reply, p.client_id.as_deref(), why, p.audit);
        }
    }

    /// Drops a pending request without answering it (the client withdrew it).
    fn fail_pending_quietly(&self, id: u64, why: &str) {
        if let Some(p) = self.take_pending(id) {
            if let Some((record_id, started)) = p.audit {
                self.shared.outcome(outcome(record_id, started, countersign_audit::Outcome::Error, Some(why)));
            }
        }
    }

    fn take_pending(&self, id: u64) -> Option<Pending> {
        let pending = {
            let mut st = self.state();
            let p = st.pending.remove(&id);
            if let Some(token) = p.as_ref().and_then(|p| p.progress.as_ref()) {
                st.progress.remove(token);
            }
            p
        };
        pending
    }

    /// Sends a message the upstream originated to the client: on the GET stream if one is
    /// open, else on the newest open request stream, else into a bounded backlog that the
    /// next GET stream receives first.
    fn to_client(&self, st: &mut State, text: String) {
        if let Some(tx) = &st.get_stream {
            match tx.send(text) {
                Ok(()) => return,
                // Closed, or a client that stopped reading: let the stream go; what comes
                // next waits in the bounded backlog for the next GET stream.
                Err(refused) => {
                    st.get_stream = None;
                    return self.to_client(st, refused.into_inner());
                }
            }
        }
        let newest = st
            .pending
            .iter()
            .filter_map(|(id, p)| match &p.reply {
                Reply::Client { tx: tx @ ClientTx::Stream(_), .. } => Some((*id, tx)),
                _ => None,
            })
            .max_by_key(|(id, _)| *id);
        if let Some((_, tx)) = newest {
            let _ = tx.send(text);
            return;
        }
        st.backlog_bytes += text.len();
        st.backlog.push_back(text);
        while st.backlog.len() > BACKLOG_LIMIT || (st.backlog_bytes > BACKLOG_BYTES && st.backlog.len() > 1) {
            if let Some(old) = st.backlog.pop_front() {
                st.backlog_bytes -= old.len();
            }
            tracing::warn!(session = %short(&self.id), "client backlog full; dropped the oldest message");
        }
    }

    /// Ends the session: calls waiting for a person are withdrawn, pending requests fail,
    /// upstream connections close, and none starts again.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let waiting: Vec<GiveUp> = self.state().waiting.drain().map(|(_, w)| w).collect();
        for w in waiting {
            w.give_up("its session closed");
        }
        let pending: Vec<u64> = self.state().pending.keys().copied().collect();
        for id in pending {
            self.fail_pending(id, "the session was closed");
        }
        let mut st = self.state();
        st.get_stream = None;
        st.alive.clear();
        drop(st);
        for slot in self.links.values() {
            if let Ok(mut slot) = slot.try_lock() {
                *slot = None;
            }
        }
    }
}

/// A request id as JSON written one way (`"a\u0062"` and `"ab"` are one id).
fn canonical_id(raw: &str) -> String {
    serde_json::from_str::<Value>(raw).map_or_else(|_| raw.to_string(), |v| v.to_string())
}

/// The first characters of a session id, enough to tell sessions apart in logs.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}
