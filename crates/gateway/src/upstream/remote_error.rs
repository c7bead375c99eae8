//! Why a message could not be delivered to a remote (HTTP) server. The text becomes the
//! JSON-RPC error the client reads for its request, so it says what the server did or
//! what to do; it never carries the server's URL (which may hold a secret in its query)
//! or a token.

use countersign_vault::oauth::BearerError;
use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
pub(super) enum RemoteError {
    /// The request never got an answer (the error has its URL removed).
    #[error("cannot reach the remote server: {0}")]
    Reach(reqwest::Error),
    /// No usable sign-in token (the message says how to sign in).
    #[error(transparent)]
    SignIn(#[from] BearerError),
    #[error("the remote server answered HTTP {0}")]
    Status(StatusCode),
    #[error("the remote server refused streamable HTTP (HTTP {status}) and legacy SSE: {legacy}")]
    NeitherTransport { status: StatusCode, legacy: Box<RemoteError> },
    /// The legacy transport's GET stream was refused.
    #[error("GET answered HTTP {0}")]
    LegacyGet(StatusCode),
    #[error(transparent)]
    Url(url::ParseError),
    #[error(transparent)]
    Stream(sse_stream::Error),
    #[error("the stream ended before naming an endpoint")]
    NoEndpoint,
    #[error("no endpoint event within 10s")]
    EndpointTimeout,
    #[error("bad endpoint: {0}")]
    BadEndpoint(url::ParseError),
    #[error("the endpoint is on another origin; refused")]
    ForeignEndpoint,
    /// A request's answer stream ended before the answer, and was not replayed.
    #[error("the remote server closed the stream before answering, and it could not be replayed: {0}")]
    Unanswered(Unreplayed),
}

/// Why a stream cut short was not resumed (with `GET` and `Last-Event-ID`).
#[derive(Debug, thiserror::Error)]
pub(super) enum Unreplayed {
    #[error("the stream gave no event id to resume from")]
    NoEventId,
    #[error("its last event id cannot be sent back in a header")]
    BadEventId,
    #[error("the resumption was answered HTTP {0}")]
    Refused(StatusCode),
    #[error("the resumption was not answered with an event stream")]
    NotAStream,
    /// The resumption could not be sent (the server is gone, or a sign-in is missing).
    #[error("{0}")]
    Unsent(Box<RemoteError>),
    #[error("{0} resumptions in a row brought nothing new")]
    Exhausted(u32),
    #[error("no answer within the request timeout ({0} s)")]
    TimedOut(u64),
}

impl Unreplayed {
    /// Whether trying again later may help: the server failed (5xx) or was not reached.
    /// A refusal, a missing sign-in or a stream of another kind is final.
    pub(super) fn is_transient(&self) -> bool {
        match self {
            Unreplayed::Refused(status) => status.is_server_error(),
            Unreplayed::Unsent(why) => matches!(**why, RemoteError::Reach(_)),
            _ => false,
        }
    }
}

impl RemoteError {
    /// A request that got no answer, with the URL taken out of the error.
    pub(super) fn reach(e: reqwest::Error) -> Self {
        RemoteError::Reach(e.without_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts clients read, as they were when these errors were strings.
    #[test]
    fn messages_read_as_before() {
        let cases = [
            (RemoteError::Status(StatusCode::BAD_GATEWAY), "the remote server answered HTTP 502 Bad Gateway"),
            (
                RemoteError::NeitherTransport {
                    status: StatusCode::NOT_FOUND,
                    legacy: Box::new(RemoteError::LegacyGet(StatusCode::NOT_FOUND)),
                },
                "the remote server refused streamable HTTP (HTTP 404 Not Found) and legacy SSE: GET answered HTTP \
                 404 Not Found",
            ),
            (RemoteError::NoEndpoint, "the stream ended before naming an endpoint"),
            (RemoteError::EndpointTimeout, "no endpoint event within 10s"),
            (RemoteError::BadEndpoint(url::ParseError::EmptyHost), "bad endpoint: empty host"),
            (RemoteError::ForeignEndpoint, "the endpoint is on another origin; refused"),
            (
                RemoteError::Unanswered(Unreplayed::Refused(StatusCode::METHOD_NOT_ALLOWED)),
                "the remote server closed the stream before answering, and it could not be replayed: the resumption \
                 was answered HTTP 405 Method Not Allowed",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
