//! Why a session could not reach an upstream server: not configured, kept from starting
//! by policy or by the cap on its processes, failed to start or to initialize, or did not
//! answer the gateway's own request. The text is what the client reads in its JSON-RPC error, so it names the
//! server and says what happened; it never carries a secret (an upstream's start error
//! names the command, never its environment).

use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("unknown server `{server}`")]
    UnknownServer { server: String },
    /// Policy lets this client reach nothing of the server, so it is not started.
    #[error("{reason}: it is not started (rule `{rule}`)")]
    NotStarted { reason: String, rule: String },
    #[error("upstream server `{server}` could not start: {source}")]
    Start { server: String, source: UpstreamError },
    /// The server runs as many processes as `[limits] max_processes_per_server` allows and
    /// every session holding one is busy.
    #[error(
        "upstream server `{server}` already runs {cap} processes, the most `[limits] max_processes_per_server` \
         allows, and every session using one is busy; close a session (DELETE) or raise the limit"
    )]
    AtCap { server: String, cap: usize },
    /// A session was closed to make room, and its process did not end in time.
    #[error(
        "upstream server `{server}` already runs {cap} processes, the most `[limits] max_processes_per_server` \
         allows, and none ended within {secs}s to make room"
    )]
    NoRoom { server: String, cap: usize, secs: u64 },
    /// The session closed (deleted, idle or to make room) while a request wanted a server.
    #[error("the session was closed")]
    SessionClosed,
    #[error("upstream server `{server}` refused initialize")]
    InitializeRefused { server: String },
    /// The connection closed while the gateway wrote to it.
    #[error(transparent)]
    Send(#[from] UpstreamError),
    #[error("upstream server `{server}` is not running")]
    NotRunning { server: String },
    #[error("upstream server `{server}` stopped before answering `{method}`")]
    Stopped { server: String, method: &'static str },
    #[error("upstream server `{server}` did not answer `{method}` in {secs}s")]
    NoAnswer { server: String, method: &'static str, secs: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients (and the e2e tests) read these words; they are the texts of the strings
    /// these errors replaced.
    #[test]
    fn messages_read_as_before() {
        let server = || "fs".to_string();
        let cases = [
            (LinkError::UnknownServer { server: server() }, "unknown server `fs`"),
            (
                LinkError::NotStarted { reason: "`fs` is off limits".into(), rule: "deny:mcp__fs".into() },
                "`fs` is off limits: it is not started (rule `deny:mcp__fs`)",
            ),
            (
                LinkError::Start { server: server(), source: UpstreamError::Closed },
                "upstream server `fs` could not start: the upstream connection is closed",
            ),
            (LinkError::InitializeRefused { server: server() }, "upstream server `fs` refused initialize"),
            (
                LinkError::AtCap { server: server(), cap: 8 },
                "upstream server `fs` already runs 8 processes, the most `[limits] max_processes_per_server` \
                 allows, and every session using one is busy; close a session (DELETE) or raise the limit",
            ),
            (
                LinkError::NoRoom { server: server(), cap: 8, secs: 10 },
                "upstream server `fs` already runs 8 processes, the most `[limits] max_processes_per_server` \
                 allows, and none ended within 10s to make room",
            ),
            (LinkError::SessionClosed, "the session was closed"),
            (LinkError::Send(UpstreamError::Closed), "the upstream connection is closed"),
            (LinkError::NotRunning { server: server() }, "upstream server `fs` is not running"),
            (
                LinkError::Stopped { server: server(), method: "tools/list" },
                "upstream server `fs` stopped before answering `tools/list`",
            ),
            (
                LinkError::NoAnswer { server: server(), method: "initialize", secs: 60 },
                "upstream server `fs` did not answer `initialize` in 60s",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
