//! The stdio face: `countersign connect <server>`. A stdio-only client (Claude Desktop)
//! launches it as if it were the server; it relays each line of stdin to the gateway's
//! `/mcp/<server>` with the shim's own token and writes every message the gateway sends
//! back to stdout, one line each.
//!
//! When no gateway answers, it says so on stderr and answers each request with a
//! JSON-RPC error; it never hangs. It never prints its token.

use crate::home::Home;
use crate::message::{self, code, Envelope, Kind};
use crate::sse_client;
use crate::tokens::TokenStore;
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
    http: reqwest::Client,
    url: Option<String>,
    token: String,
    /// Why requests cannot be relayed, when `url` is missing.
    unreachable: String,
    session: Mutex<Option<String>>,
    out: mpsc::UnboundedSender<String>,
    get_started: Mutex<bool>,
    max_line: usize,
}

/// Runs the shim until stdin closes.
pub async fn run(home: &Home, server: &str, max_line: usize) -> Result<(), ShimError> {
    // Without its token (keychain locked or absent) the shim cannot connect: like a missing
    // gateway, that is said on stderr and in an error answer to every request.
    let (token, unreachable) = match TokenStore::shim_token(home).await {
        Ok(token) => (token, None),
        Err(e) => (String::new(), Some(format!("Countersign cannot connect: {e}"))),
    };
    let url =
        home.read_runtime().filter(|_| unreachable.is_none()).map(|r| format!("http://{}/mcp/{server}", r.listen));
    if let Some(why) = &unreachable {
        eprintln!("countersign: {why}");
    } else if url.is_none() {
        eprintln!(
            "countersign: no gateway is running for {} (start one with `countersign serve`)",
            home.dir().display()
        );
    }
    let unreachable =
        unreachable.unwrap_or_else(|| "Countersign gateway is not running; start it with `countersign serve`".into());
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
        http: reqwest::Client::builder().no_proxy().build().map_err(std::io::Error::other)?,
        url,
        token,
        unreachable,
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
    if let (Some(url), Some(session)) = (&link.url, link.session.lock().ok().and_then(|s| s.clone())) {
        let _ = link.http.delete(url).bearer_auth(&link.token).header("Mcp-Session-Id", session).send().await;
    }
    drop(link);
    let _ = writer.await;
    Ok(())
}

impl Link {
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
        let Some(url) = &self.url else {
            return fail(&self.unreachable);
        };
        let mut req = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(line);
        if let Some(s) = self.session.lock().ok().and_then(|s| s.clone()) {
            req = req.header("Mcp-Session-Id", s);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(_) => return fail("cannot reach the Countersign gateway; is `countersign serve` running?"),
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
        if status == reqwest::StatusCode::ACCEPTED {
            return;
        }
        let is_sse = sse_client::is_event_stream(resp.headers());
        let me = self.clone();
        tokio::spawn(async move {
            if is_sse {
                me.pipe_sse(resp).await;
            } else {
                match resp.text().await {
                    Ok(body) if body.trim_start().starts_with('{') => {
                        let _ = me.out.send(body);
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

    async fn pipe_sse(&self, resp: reqwest::Response) {
        sse_client::for_each_message(&mut sse_client::events(resp), self.max_line, |data| self.out.send(data).is_ok())
            .await;
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
            let (Some(url), Some(session)) = (&self.url, self.session.lock().ok().and_then(|s| s.clone())) else {
                return;
            };
            let resp = self
                .http
                .get(url)
                .bearer_auth(&self.token)
                .header("accept", "text/event-stream")
                .header("Mcp-Session-Id", session)
                .send()
                .await;
            if let Ok(resp) = resp {
                if resp.status().is_success() {
                    self.pipe_sse(resp).await;
                }
            }
        });
    }
}
