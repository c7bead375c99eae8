//! The stdio face: `countersign connect <server>`. A stdio-only client (Claude Desktop)
//! launches it as if it were the server; it relays each line of stdin to the gateway's
//! `/mcp/<server>` and writes every message the gateway sends back to stdout, one line
//! each.
//!
//! Two ways to the gateway, tried in this order:
//! - **The shim socket** (`gateway.sock` in the data folder, a named pipe on Windows; see
//!   `shim_socket` and [`crate::shim_wire`]): the operating system tells the gateway that
//!   the shim runs as its own user, so no token is needed and the keychain is never
//!   opened; after the hello the shim only copies bytes both ways on two threads. It is
//!   used only if it is this user's socket, its peer runs as this user, and the peer
//!   proves with the data folder's control token that it is this folder's gateway; a
//!   hello the gateway answers with a refusal (an unknown server) is the answer, not a
//!   reason to try HTTP.
//! - **HTTP** (when there is no socket or nobody answers on it: an older gateway, or
//!   one that could not open it): `/mcp/<server>` with the shim's own token from the
//!   keychain, over a connection the gateway proved it owns (`gateway_link`): a process
//!   that took the gateway's port after a crash gets neither the token nor a message.
//!
//! When no gateway answers, or the one that answers cannot prove itself, it says so on
//! stderr and answers each request with a JSON-RPC error; it never hangs. It never prints
//! a token.
//!
//! Clients start it with a trimmed environment. So the entry `countersign clients
//! install` writes names the program by absolute path and the data folder as an argument
//! (`connect NAME --home DIR`); and when the environment has no session bus address, the
//! CLI adopts the one the running gateway recorded before this module opens the keychain
//! for the shim's token ([`crate::session_bus`]); the socket needs neither.
//!
//! A server added from a project's folder (`project = DIR` in the running gateway's
//! config) serves only that project's own entries: for it the shim connects as the
//! project's client (on the socket by naming the project in its hello; over HTTP with the
//! project's token, kept in the keychain, made on first use), for every other server as
//! its own. So a project's file names the shim and no credential, and no other client
//! reaches the project's servers. Whoever runs the shim as this user can name any
//! project, on either path: the OS user is the trust boundary (SECURITY.md).

use crate::gateway_link::{read_body, GatewayLink};
use crate::home::Home;
use crate::message::{self, code, Envelope, Kind};
use crate::shim_wire::{self, Hello, Welcome};
use crate::sse_client;
use crate::tokens::TokenStore;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body_util::Full;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// How the shim reaches the gateway (`countersign connect --transport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// The socket when the gateway answers on it, else HTTP.
    #[default]
    Auto,
    /// The socket only (no keychain, ever).
    Socket,
    /// HTTP only, with the token from the keychain.
    Http,
}

/// How long connecting to the socket and the hello may take.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Runs the shim until stdin closes (or, on the socket, until the gateway closes it).
pub async fn run(home: &Home, server: &str, max_line: usize, transport: Transport) -> Result<(), ShimError> {
    let project = project_of(home, server);
    if transport != Transport::Http {
        match socket::open(home, server, project.as_deref()).await {
            Ok(conn) => return socket::relay(conn).await.map_err(ShimError::Io),
            Err(Open::Refused(why)) => {
                return answer_errors(format!("Countersign cannot connect: {why}"), max_line).await
            }
            Err(Open::Absent(why)) if transport == Transport::Socket => return answer_errors(why, max_line).await,
            Err(Open::Absent(why)) => tracing::debug!("no shim socket, using HTTP: {why}"),
            Err(Open::Suspect(why)) if transport == Transport::Socket => return answer_errors(why, max_line).await,
            Err(Open::Suspect(why)) => eprintln!("countersign: not using the shim socket: {why}"),
        }
    }
    // No gateway recorded: nothing to ask the keychain for. Without its token (keychain
    // locked or absent) the shim cannot connect either: like a missing gateway, that is
    // said on stderr and in an error answer to every request.
    let gateway = match GatewayLink::for_home(home) {
        Ok(gateway) => {
            let token = match &project {
                Some(dir) => TokenStore::kept_token(home, &crate::tokens::project_token_name(dir), None).await,
                None => TokenStore::shim_token(home).await,
            };
            token.map(|t| (gateway, t)).map_err(|e| format!("Countersign cannot connect: {e}"))
        }
        Err(crate::gateway_link::LinkError::NotRunning(_)) => Err(format!(
            "no gateway is running for {}: the Countersign gateway is not running (start one with `countersign \
             serve`)",
            home.dir().display()
        )),
        Err(other) => Err(other.to_string()),
    };
    match gateway {
        Ok((gateway, token)) => relay_http(Ok(gateway), token, server, max_line).await,
        Err(why) => answer_errors(why, max_line).await,
    }
}

/// No way to the gateway: says why on stderr, and answers every request with it.
async fn answer_errors(why: String, max_line: usize) -> Result<(), ShimError> {
    eprintln!("countersign: {why}");
    relay_http(Err(why), String::new(), "", max_line).await
}

/// Relays stdin to `/mcp/<server>` over HTTP until stdin closes; with no gateway
/// (`Err`), answers every request with why.
async fn relay_http(
    gateway: Result<GatewayLink, String>,
    token: String,
    server: &str,
    max_line: usize,
) -> Result<(), ShimError> {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout.write_all(&shim_wire::frame(&line)).await.is_err() || stdout.flush().await.is_err() {
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

/// The folder of `server`'s project, when the running gateway's config adds it from a
/// project folder. Anything unreadable means none: the shim's own client, which the
/// gateway then refuses for a project's server (fail closed).
fn project_of(home: &Home, server: &str) -> Option<PathBuf> {
    let config = home.read_runtime()?.config?;
    let config = crate::config::Config::load(&config).ok()?;
    config.servers.get(server)?.project.clone()
}

/// Why the socket was not used.
enum Open {
    /// No socket, or nobody answers on it: HTTP is the way (quietly).
    Absent(String),
    /// Something answers that is not this folder's gateway, or the path is not this
    /// user's socket: not used, and said on stderr.
    Suspect(String),
    /// The gateway answered and refused (an unknown server): its answer stands.
    Refused(String),
}

/// Sends the hello on `stream` and checks the answer and its proof (made for `place`).
/// Returns what the gateway sent after its answer, if anything.
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    home: &Home,
    server: &str,
    project: Option<&Path>,
    place: &str,
) -> Result<Vec<u8>, Open> {
    let key = home
        .read_control_token()
        .ok_or_else(|| Open::Absent(format!("no control token in {}", home.dir().display())))?;
    let nonce = crate::home::random_token("");
    let exchange = async {
        stream.write_all(&Hello::new(server, project, &nonce).line()).await?;
        stream.flush().await?;
        let mut reader = BufReader::with_capacity(shim_wire::HELLO_MAX, &mut *stream);
        let mut line = Vec::new();
        let read = shim_wire::read_line(&mut reader, shim_wire::HELLO_MAX, &mut line).await?;
        let rest = reader.buffer().to_vec();
        Ok::<_, std::io::Error>((read, line, rest))
    };
    let (read, line, rest) = match tokio::time::timeout(SOCKET_TIMEOUT, exchange).await {
        Ok(Ok(got)) => got,
        Ok(Err(e)) => return Err(Open::Absent(format!("the shim socket broke during the hello: {e}"))),
        Err(_) => return Err(Open::Absent("the shim socket did not answer the hello within 5s".into())),
    };
    let not_gateway =
        || Open::Suspect("the peer on the shim socket did not answer as this data folder's gateway".into());
    if read != Some(shim_wire::Line::Text) {
        return Err(not_gateway());
    }
    match Welcome::parse(&line).map_err(|_| not_gateway())? {
        Welcome::Ok { proof, .. } if crate::gateway_link::check_at(&key, &nonce, place, &proof) => Ok(rest),
        Welcome::Ok { .. } => Err(Open::Suspect(
            "the peer on the shim socket did not prove it is this data folder's gateway; nothing was sent to it".into(),
        )),
        Welcome::Error { error } => Err(Open::Refused(error)),
    }
}

#[cfg(unix)]
mod socket {
    use super::{greet, Open, SOCKET_TIMEOUT};
    use crate::home::Home;
    use std::io::{Read, Write};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::Path;

    /// A connection to this folder's gateway, after its hello.
    pub(super) struct Conn {
        stream: tokio::net::UnixStream,
        early: Vec<u8>,
    }

    pub(super) async fn open(home: &Home, server: &str, project: Option<&Path>) -> Result<Conn, Open> {
        let path = home.shim_socket_path();
        let shown = path.display();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Open::Absent(format!("{shown}: {e}")))?;
        if !meta.file_type().is_socket() || meta.uid() != me {
            return Err(Open::Suspect(format!("{shown} is not a socket of this user's")));
        }
        let mut stream = match tokio::time::timeout(SOCKET_TIMEOUT, tokio::net::UnixStream::connect(&path)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Open::Absent(format!("{shown}: {e}"))),
            Err(_) => return Err(Open::Absent(format!("{shown}: no answer within 5s"))),
        };
        match stream.peer_cred() {
            Ok(peer) if peer.uid() == me => {}
            Ok(peer) => return Err(Open::Suspect(format!("{shown} is served by user {}, not this user", peer.uid()))),
            Err(e) => return Err(Open::Suspect(format!("{shown}: the peer's user cannot be read ({e})"))),
        }
        let early = greet(&mut stream, home, server, project, crate::shim_wire::SOCKET_PLACE).await?;
        Ok(Conn { stream, early })
    }

    /// Copies stdin to the gateway and the gateway to stdout, each on a thread of its own
    /// with blocking I/O (no runtime between the two pipes), until the gateway closes.
    /// stdin's end is passed on as the end of what the shim writes.
    pub(super) async fn relay(conn: Conn) -> std::io::Result<()> {
        let stream = conn.stream.into_std()?;
        stream.set_nonblocking(false)?;
        let early = conn.early;
        tokio::task::spawn_blocking(move || {
            let mut to_gateway = stream.try_clone()?;
            std::thread::spawn(move || {
                let _ = pump(std::io::stdin().lock(), &mut to_gateway);
                let _ = to_gateway.shutdown(std::net::Shutdown::Write);
            });
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&early)?;
            stdout.flush()?;
            pump(stream, stdout)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Copies until the end of `from`, each read passed on at once. Not `std::io::copy`:
    /// on Linux it splices, and a splice from a socket into a pipe holds the pipe's lock
    /// while it waits for the socket, so the client could not read the answer already in
    /// the pipe (and would wait, unkillably, for the next one).
    fn pump(mut from: impl Read, mut to: impl Write) -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            to.write_all(&buf[..n])?;
            to.flush()?;
        }
    }
}

#[cfg(windows)]
mod socket {
    //! NOT TESTED: written for Windows against tokio's named pipes and not built or run
    //! there (the project's machines run Linux); test it before relying on it. The pipe's
    //! DACL lets only its owner open it; the proof in the hello shows the pipe is this
    //! folder's gateway and not another user's process that took the name first.
    use super::{greet, Open, SOCKET_TIMEOUT};
    use crate::home::Home;
    use std::path::Path;
    use tokio::io::AsyncWriteExt;
    use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient};

    pub(super) struct Conn {
        pipe: NamedPipeClient,
        early: Vec<u8>,
    }

    pub(super) async fn open(home: &Home, server: &str, project: Option<&Path>) -> Result<Conn, Open> {
        let name = home.shim_pipe_name();
        let deadline = std::time::Instant::now() + SOCKET_TIMEOUT;
        let mut pipe = loop {
            match ClientOptions::new().open(&name) {
                Ok(pipe) => break pipe,
                Err(e)
                    if e.raw_os_error() == Some(windows_sys::Win32::Foundation::ERROR_PIPE_BUSY as i32)
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => return Err(Open::Absent(format!("{name}: {e}"))),
            }
        };
        let early = greet(&mut pipe, home, server, project, &name).await?;
        Ok(Conn { pipe, early })
    }

    pub(super) async fn relay(conn: Conn) -> std::io::Result<()> {
        let (mut from_gateway, mut to_gateway) = tokio::io::split(conn.pipe);
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut to_gateway).await;
            let _ = to_gateway.shutdown().await;
        });
        let mut stdout = tokio::io::stdout();
        stdout.write_all(&conn.early).await?;
        tokio::io::copy(&mut from_gateway, &mut stdout).await?;
        stdout.flush().await?;
        up.abort();
        Ok(())
    }
}

#[cfg(not(any(unix, windows)))]
mod socket {
    use super::Open;
    use crate::home::Home;
    use std::path::Path;

    pub(super) enum Conn {}

    pub(super) async fn open(_: &Home, _: &str, _: Option<&Path>) -> Result<Conn, Open> {
        Err(Open::Absent("no shim socket on this platform".into()))
    }

    pub(super) async fn relay(conn: Conn) -> std::io::Result<()> {
        match conn {}
    }
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
