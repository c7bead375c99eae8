//! The stdio face: `countersign connect <server>`. A stdio-only client (Claude Desktop)
//! launches it as if it were the server; it relays each line of stdin to the gateway's
//! `/mcp/<server>` with the shim's own token and writes every message the gateway sends
//! back to stdout, one line each.
//!
//! It talks to the gateway only over a connection the gateway proved it owns
//! (`gateway_link`): a process that took the gateway's port after a crash gets neither
//! the token nor a message. When no gateway answers, or the one that answers cannot
//! prove itself, it says so on stderr and answers each request with a JSON-RPC error; it
//! never hangs. It never prints its token.
//!
//! Clients start it with a trimmed environment. So the entry `countersign clients
//! install` writes names the program by absolute path and the data folder as an argument
//! (`connect NAME --home DIR`); and when the environment has no session bus address, the
//! CLI adopts the one the running gateway recorded before this module opens the keychain
//! for the shim's token ([`crate::session_bus`]).
//!
//! A server added from a project's folder (`project = DIR` in the running gateway's
//! config) serves only that project's own entries: for it the shim connects with the
//! project's client token (kept in the keychain, made on first use), for every other
//! server with its own. So a project's file names the shim and no credential, and no
//! other client's token reaches the project's servers.

use crate::gateway_link::{read_body, GatewayLink};
use crate::home::Home;
use crate::message::{self, code, Envelope, Kind};
use crate::sse_client;
use crate::tokens::TokenStore;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body_util::Full;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(transparent)]
    Home(#[from] crate::home::HomeError),
    #[error(transparent)]
    Token(#[from] crate::tokens::TokenError),
    #[error("stdio: {0}")]
    Io(#[from] std::io::Error),
}

struct Link {
    /// The proven connection to the gateway, or why there is none.
    gateway: Result<GatewayLink, String>,
    path: String,
    token: String,
    session: Mutex<Option<String>>,
    out: mpsc::UnboundedSender<String>,
    get_started: Mutex<bool>,
    max_line: usize,
}

/// Runs the shim until stdin closes.
pub async fn run(home: &Home, server: &str, max_line: usize) -> Result<(), ShimError> {
    // Without its token (keychain locked or absent) the shim cannot connect: like a missing
    // gateway, that is said on stderr and in an error answer to every request.
    let token = match project_token(home, server) {
        Some(name) => TokenStore::kept_token(home, &name, None).await,
        None => TokenStore::shim_token(home).await,
    };
    let gateway = match token {
        Ok(token) => GatewayLink::for_home(home).map(|g| (g, token)).map_err(|e| match e {
            crate::gateway_link::LinkError::NotRunning(_) => format!(
                "no gateway is running for {}: the Countersign gateway is not running (start one with \
                 `countersign serve`)",
                home.dir().display()
            ),
            other => other.to_string(),
        }),
        Err(e) => Err(format!("Countersign cannot connect: {e}")),
    };
    if let Err(why) = &gateway {
        eprintln!("countersign: {why}");
    }
    let (gateway, token) = match gateway {
        Ok((g, t)) => (Ok(g), t),
        Err(why) => (Err(why), String::new()),
    };
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            let mut bytes = line.replace('\n', " ").into_bytes();
            bytes.push(b'\n');
            if stdout.write_all(&bytes).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let link = Arc::new(Link {
        gateway,
        path: format!("/mcp/{server}"),
        token,
        session: Mutex::new(None),
        out: out_tx,
        get_started: Mutex::new(false),
        max_line,
    });

    let mut lines = BufReader::with_capacity(64 * 1024, tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > max_line {
            let _ = link.out.send(message::error_response(None, code::INVALID_REQUEST, "message over the line limit"));
            continue;
        }
        link.clone().relay(line).await;
    }
    if let (Ok(gateway), Some(session)) = (&link.gateway, link.session.lock().ok().and_then(|s| s.clone())) {
        if let Ok(req) = link.request("DELETE", &session, Bytes::new()) {
            let _ = gateway.send(req).await;
        }
    }
    drop(link);
    let _ = writer.await;
    Ok(())
}

/// The client token name of `server`'s project, when the running gateway's config adds
/// it from a project folder. Anything unreadable means none: the shim's own token, which
/// the gateway then refuses for a project's server (fail closed).
fn project_token(home: &Home, server: &str) -> Option<String> {
    let config = home.read_runtime()?.config?;
    let config = crate::config::Config::load(&config).ok()?;
    config.servers.get(server)?.info.scope.as_ref().map(|s| s.client_token.clone())
}

impl Link {
    fn request(&self, method: &str, session: &str, body: Bytes) -> Result<Request<Full<Bytes>>, String> {
        let gateway = self.gateway.as_ref().map_err(String::clone)?;
        let mut req = Request::builder()
            .method(method)
            .uri(gateway.url(&self.path))
            .header("authorization", format!("Bearer {}", self.token));
        if method == "POST" {
            req =
                req.header("content-type", "application/json").header("accept", "application/json, text/event-stream");
        } else if method == "GET" {
            req = req.header("accept", "text/event-stream");
        }
        if !session.is_empty() {
            req = req.header("mcp-session-id", session);
        }
        req.body(Full::new(body)).map_err(|e| e.to_string())
    }

    /// Sends one message and starts relaying its answer; returns once the gateway has
    /// taken it, so messages reach the gateway in the order the client wrote them.
    async fn relay(self: Arc<Self>, line: String) {
        let env = Envelope::parse(&line).ok();
        let id = env.as_ref().and_then(|e| e.id()).map(|r| r.to_owned());
        let is_request = env.as_ref().is_some_and(|e| e.kind() == Kind::Request);
        let fail = |why: &str| {
            if is_request {
                let _ = self.out.send(message::error_response(id.as_deref(), code::UPSTREAM_ERROR, why));
            }
        };
        let gateway = match &self.gateway {
            Ok(g) => g,
            Err(why) => return fail(why),
        };
        let session = self.session.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
        let req = match self.request("POST", &session, Bytes::from(line)) {
            Ok(req) => req,
            Err(why) => return fail(&why),
        };
        let resp = match gateway.send(req).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("countersign: {e}");
                return fail(&e.to_string());
            }
        };
        if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            if let Ok(mut slot) = self.session.lock() {
                *slot = Some(s.to_string());
            }
        }
        let is_initialized = env.as_ref().and_then(Envelope::method) == Some("notifications/initialized");
        if is_initialized {
            self.clone().start_get_stream();
        }
        let status = resp.status();
        if status == StatusCode::ACCEPTED {
            return;
        }
        let is_sse = sse_client::is_event_stream(resp.headers());
        let me = self.clone();
        tokio::spawn(async move {
            if is_sse {
                me.pipe_sse(resp.into_body()).await;
            } else {
                match read_body(resp.into_body(), me.max_line).await {
                    Ok(body) if body.trim_ascii_start().starts_with(b"{") => {
                        let _ = me.out.send(String::from_utf8_lossy(&body).into_owned());
                    }
                    _ if is_request => {
                        let why = format!("the gateway answered HTTP {status}");
                        let _ = me.out.send(message::error_response(id.as_deref(), code::UPSTREAM_ERROR, &why));
                    }
                    _ => {}
                }
            }
        });
    }

    async fn pipe_sse(&self, body: hyper::body::Incoming) {
        let mut events = sse_stream::SseStream::new(body);
        sse_client::for_each_message(&mut events, self.max_line, |data| self.out.send(data).is_ok()).await;
    }

    /// Opens the GET stream for messages the server sends on its own.
    fn start_get_stream(self: Arc<Self>) {
        if let Ok(mut started) = self.get_started.lock() {
            if *started {
                return;
            }
            *started = true;
        }
        tokio::spawn(async move {
            let (Ok(gateway), Some(session)) = (&self.gateway, self.session.lock().ok().and_then(|s| s.clone())) else {
                return;
            };
            let Ok(req) = self.request("GET", &session, Bytes::new()) else { return };
            if let Ok(resp) = gateway.send(req).await {
                if resp.status().is_success() {
                    self.pipe_sse(resp.into_body()).await;
                }
            }
        });
    }
}
