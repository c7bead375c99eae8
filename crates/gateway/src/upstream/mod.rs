//! Connections to upstream MCP servers. Each connection carries JSON-RPC text both ways
//! and reports what arrives, and its end, as [`UpstreamEvent`]s; it knows nothing of
//! sessions, ids or policy. Dropping the last [`UpstreamLink`] ends the connection (a
//! child process is killed with its process group and reaped).

mod http;
mod processes;
mod remote_error;
mod stdio;
mod translate;

pub use processes::{ProcessSlot, Processes};

use crate::config::{Limits, ServerConfig, Transport};
use crate::credentials;
use crate::govern::Outbound;
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum UpstreamEvent {
    /// One JSON-RPC message from the server, as text.
    Message(String),
    /// A notification that came on the stream of a stateless request (`request`, the id
    /// the link sent it with): its progress, log lines, or its listen stream's events.
    Related { request: Box<serde_json::value::RawValue>, text: String },
    /// The connection ended; no more messages follow. The text says why.
    Closed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot start `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("the upstream connection is closed")]
    Closed,
    #[error("{0}")]
    Credentials(String),
    #[error("cannot reach {url}: {message}")]
    Http { url: String, message: String },
}

/// How a connection takes outgoing messages.
#[derive(Clone)]
enum Writer {
    /// Through the connection's own task (remote servers: one request at a time).
    Channel(mpsc::Sender<String>),
    /// Straight into a child's stdin from the sending task: no hand-off on the hot path.
    Pipe(std::sync::Arc<tokio::sync::Mutex<tokio::process::ChildStdin>>),
}

/// The sending half of a connection.
#[derive(Clone)]
pub struct UpstreamLink {
    writer: Writer,
    _guard: std::sync::Arc<dyn Send + Sync>,
}

impl UpstreamLink {
    /// Sends one message. It takes an [`Outbound`], which only the one place that decides
    /// makes: a client's governed request needs the permit of its committed record.
    pub async fn send(&self, message: Outbound) -> Result<(), UpstreamError> {
        let message = message.into_text();
        match &self.writer {
            Writer::Channel(tx) => tx.send(message).await.map_err(|_| UpstreamError::Closed),
            Writer::Pipe(stdin) => {
                use tokio::io::AsyncWriteExt;
                let mut line = message.into_bytes();
                line.push(b'\n');
                let mut stdin = stdin.lock().await;
                stdin.write_all(&line).await.map_err(|_| UpstreamError::Closed)?;
                stdin.flush().await.map_err(|_| UpstreamError::Closed)
            }
        }
    }
}

/// Where a connection reports what arrives. Called on the connection's reader task, in
/// order; it must not block. Returns false once nobody listens any more.
pub type EventSink = std::sync::Arc<dyn Fn(UpstreamEvent) -> bool + Send + Sync>;

/// Opens a connection to `server`; its events go to `events`, one sink per connection.
/// Secrets the config refers to are read from the keychain first; when one cannot be
/// read the server does not start. A stdio server's process holds `slot` until it has
/// been reaped (it is given back at once if the process does not start); a remote server
/// needs none.
pub async fn connect(
    name: &str,
    server: &ServerConfig,
    limits: &Limits,
    events: EventSink,
    slot: Option<ProcessSlot>,
) -> Result<UpstreamLink, UpstreamError> {
    match &server.transport {
        Transport::Stdio { command, args, env, cwd } => {
            let env = credentials::resolve(env).await.map_err(UpstreamError::Credentials)?;
            stdio::spawn(name, command, args, &env, cwd.as_deref(), limits.max_line_bytes, events, slot)
        }
        Transport::Http { url, headers, oauth } => {
            let headers = credentials::resolve(headers).await.map_err(UpstreamError::Credentials)?;
            let enterprise = credentials::enterprise(oauth).await.map_err(UpstreamError::Credentials)?;
            http::open(name, url, &headers, enterprise, limits, events)
        }
    }
}

/// A connection for stateless (2026-07-28) requests to `server`, when it speaks that
/// revision: only a remote server can (it is asked first). `None` for any other server,
/// which is then reached through a session of the gateway's ([`connect`]).
pub async fn connect_stateless(
    name: &str,
    server: &ServerConfig,
    limits: &Limits,
    events: EventSink,
) -> Result<Option<UpstreamLink>, UpstreamError> {
    match &server.transport {
        Transport::Stdio { .. } => Ok(None),
        Transport::Http { url, headers, oauth } => {
            let headers = credentials::resolve(headers).await.map_err(UpstreamError::Credentials)?;
            let enterprise = credentials::enterprise(oauth).await.map_err(UpstreamError::Credentials)?;
            http::open_stateless(name, url, &headers, enterprise, limits, events).await
        }
    }
}
