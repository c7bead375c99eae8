//! Why a message could not be delivered to a remote (HTTP) server, or its answer did not
//! come back. The text becomes the JSON-RPC error the client reads for its request, so it
//! says what the server did or what to do; it never carries the server's URL (which may
//! hold a secret in its query), a token, or anything of a body the server sent (only its
//! content type and size: a body that is not the answer may still hold secrets).

use countersign_vault::oauth::BearerError;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::StatusCode;
use std::fmt;

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
    #[error("upstream server `{server}` closed the stream before answering, and it could not be replayed: {why}")]
    Unanswered { server: String, why: Unreplayed },
    /// A request's POST was answered with something that is not its answer, and nothing
    /// more will come for it (no stream to resume).
    #[error("upstream server `{server}` {got}")]
    NotAnswered { server: String, got: NotAnswer },
}

/// What came back for a request instead of its answer (see [`RemoteError::NotAnswered`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum NotAnswer {
    #[error("answered HTTP {0} with an empty body, not the request's answer")]
    Empty(StatusCode),
    #[error("answered HTTP {0} with a body that is not JSON-RPC ({1}), not the request's answer")]
    NotJsonRpc(StatusCode, Body),
    #[error("answered HTTP {0} with JSON-RPC that holds no answer to the request ({1})")]
    NoResponse(StatusCode, Body),
    #[error("answered HTTP {status} with a body over the {}-byte limit ({content_type}); it was dropped", grouped(*.limit))]
    TooLarge { status: StatusCode, content_type: MediaType, limit: usize },
    #[error("answered 202 Accepted to a request, which must be answered")]
    Accepted,
    #[error("did not finish sending its answer within the request timeout ({0} s)")]
    TimedOut(u64),
}

impl NotAnswer {
    /// What a body that did not carry the request's answer was: empty, not JSON-RPC at
    /// all, or JSON-RPC (`messages` of them) with no answer among them.
    pub(super) fn of(status: StatusCode, content_type: MediaType, body: &[u8], messages: usize) -> Self {
        let shape = Body { content_type, bytes: body.len() };
        match (body.trim_ascii().is_empty(), messages) {
            (true, _) => NotAnswer::Empty(status),
            (false, 0) => NotAnswer::NotJsonRpc(status, shape),
            (false, _) => NotAnswer::NoResponse(status, shape),
        }
    }
}

/// A body the server sent, as an error may describe it: its content type and size, never
/// its content.
#[derive(Debug)]
pub(super) struct Body {
    content_type: MediaType,
    bytes: usize,
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.bytes == 1 { "byte" } else { "bytes" };
        write!(f, "{}, {} {unit}", self.content_type, grouped(self.bytes))
    }
}

/// A response's media type (`text/html`, without parameters such as `charset`), shown
/// only when it is a plain token pair of bounded length: the header is the server's text.
#[derive(Debug)]
pub(super) struct MediaType(Option<String>);

impl MediaType {
    const MAX: usize = 100;

    pub(super) fn of(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(CONTENT_TYPE) else { return MediaType(None) };
        let essence = value.to_str().ok().and_then(|v| v.split(';').next()).unwrap_or_default().trim();
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"!#$&-^_.+/".contains(&b);
        let shown = essence.len() <= Self::MAX && essence.bytes().filter(|&b| b == b'/').count() == 1;
        let shown = shown && essence.bytes().all(plain);
        MediaType(Some(if shown { essence.to_ascii_lowercase() } else { String::new() }))
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_deref() {
            None => f.write_str("no content type"),
            Some("") => f.write_str("an unreadable content type"),
            Some(media) => f.write_str(media),
        }
    }
}

/// `1234567` as `1,234,567`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
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
                RemoteError::Unanswered {
                    server: "up".into(),
                    why: Unreplayed::Refused(StatusCode::METHOD_NOT_ALLOWED),
                },
                "upstream server `up` closed the stream before answering, and it could not be replayed: the \
                 resumption was answered HTTP 405 Method Not Allowed",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    /// What a client reads when a request's POST brought no answer: the server's name,
    /// the status, and of the body only its media type and size.
    #[test]
    fn a_missing_answer_says_what_came_instead_and_nothing_of_the_body() {
        let headers = |value: &str| {
            let mut map = HeaderMap::new();
            map.insert(CONTENT_TYPE, value.parse().unwrap());
            map
        };
        let not = |got| RemoteError::NotAnswered { server: "up".into(), got }.to_string();
        let html = MediaType::of(&headers("text/HTML; charset=utf-8"));
        assert_eq!(
            not(NotAnswer::of(StatusCode::OK, html, &[b'x'; 1234], 0)),
            "upstream server `up` answered HTTP 200 OK with a body that is not JSON-RPC (text/html, 1,234 bytes), \
             not the request's answer"
        );
        assert_eq!(
            not(NotAnswer::of(StatusCode::OK, MediaType::of(&HeaderMap::new()), b" \r\n", 0)),
            "upstream server `up` answered HTTP 200 OK with an empty body, not the request's answer"
        );
        let json = MediaType::of(&headers("application/json"));
        assert_eq!(
            not(NotAnswer::of(StatusCode::OK, json, b"{}", 1)),
            "upstream server `up` answered HTTP 200 OK with JSON-RPC that holds no answer to the request \
             (application/json, 2 bytes)"
        );
        assert_eq!(
            not(NotAnswer::Accepted),
            "upstream server `up` answered 202 Accepted to a request, which must be answered"
        );
        let odd = MediaType::of(&headers("text/html token=s3cret"));
        assert_eq!(
            not(NotAnswer::TooLarge { status: StatusCode::OK, content_type: odd, limit: 4 << 20 }),
            "upstream server `up` answered HTTP 200 OK with a body over the 4,194,304-byte limit (an unreadable \
             content type); it was dropped"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
