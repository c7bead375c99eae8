//! Reading SSE answers as an MCP client: used by the stdio shim (talking to this
//! gateway) and by remote upstream connections. One place decides what counts as a
//! message: events with no type or type `message`, with non-empty data (a priming event
//! has none), no larger than the line limit. It also keeps a stream's [`Position`] (the
//! last event id and the server's `retry` delay), which is what resuming a stream with
//! `Last-Event-ID` needs; whether and when to resume is the caller's. It never logs an
//! event's data or id.

use futures::{Stream, StreamExt};
use std::time::Duration;

/// Whether a response is an SSE stream.
pub fn is_event_stream(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The events of an SSE response body.
pub fn events(resp: reqwest::Response) -> impl Stream<Item = Result<sse_stream::Sse, sse_stream::Error>> + Unpin {
    sse_stream::SseStream::from_bytes_stream(resp.bytes_stream())
}

/// Where a reader is in a server's SSE stream, kept across reconnections as the SSE
/// specification keeps it: the id of the last event that named one (an empty `id:`
/// clears it), and the reconnection delay the server last asked for with `retry:`.
/// Every event counts, messages or not (a priming event has an id and no data).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Position {
    pub last_id: Option<String>,
    pub retry: Option<Duration>,
}

impl Position {
    /// The wait before a reconnection when the server asked for none.
    pub const DEFAULT_DELAY: Duration = Duration::from_secs(1);
    /// The longest wait before a reconnection, whatever the server asked for.
    pub const MAX_DELAY: Duration = Duration::from_secs(30);

    fn observe(&mut self, event: &sse_stream::Sse) {
        if let Some(id) = &event.id {
            self.last_id = (!id.is_empty()).then(|| id.clone());
        }
        if let Some(ms) = event.retry {
            self.retry = Some(Duration::from_millis(ms));
        }
    }

    /// How long to wait before reconnecting: the server's `retry`, at most
    /// [`Self::MAX_DELAY`]; [`Self::DEFAULT_DELAY`] when it gave none.
    pub fn delay(&self) -> Duration {
        self.retry.unwrap_or(Self::DEFAULT_DELAY).min(Self::MAX_DELAY)
    }
}

/// How reading a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server ended the stream.
    Finished,
    /// The stream broke (a transport or decoding error).
    Broke,
    /// The caller's `deliver` returned false.
    Stopped,
}

/// Hands each message of `stream` to `deliver` until the stream ends, breaks, or
/// `deliver` returns false; `position` follows every event read (including those that
/// are not messages, or are dropped). Messages over `max_bytes` are dropped with a
/// warning.
pub async fn follow<S, E>(
    stream: &mut S,
    max_bytes: usize,
    position: &mut Position,
    mut deliver: impl FnMut(String) -> bool,
) -> End
where
    S: Stream<Item = Result<sse_stream::Sse, E>> + Unpin,
    E: std::fmt::Display,
{
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("SSE stream broke: {e}");
                return End::Broke;
            }
        };
        position.observe(&event);
        if !matches!(event.event.as_deref(), None | Some("message")) {
            continue;
        }
        let Some(data) = event.data.filter(|d| !d.is_empty()) else { continue };
        if data.len() > max_bytes {
            tracing::warn!(bytes = data.len(), "SSE message over the {max_bytes}-byte limit dropped");
            continue;
        }
        if !deliver(data) {
            return End::Stopped;
        }
    }
    End::Finished
}

/// [`follow`] for a reader that never resumes: the position is not kept.
pub async fn for_each_message<S, E>(stream: &mut S, max_bytes: usize, deliver: impl FnMut(String) -> bool)
where
    S: Stream<Item = Result<sse_stream::Sse, E>> + Unpin,
    E: std::fmt::Display,
{
    follow(stream, max_bytes, &mut Position::default(), deliver).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_stream::Sse;

    #[tokio::test]
    async fn only_bounded_message_events_with_data_are_delivered() {
        let events = vec![
            Ok::<_, String>(Sse::default().id("1-0").data("")),
            Ok(Sse::default().event("endpoint").data("/message")),
            Ok(Sse::default().data("{\"a\":1}")),
            Ok(Sse::default().event("message").data("x".repeat(100))),
            Ok(Sse::default().event("message").data("{\"b\":2}")),
            Ok(Sse::default().data("{\"c\":3}")),
        ];
        let mut stream = futures::stream::iter(events);
        let mut got = Vec::new();
        for_each_message(&mut stream, 50, |d| {
            got.push(d);
            got.len() < 2
        })
        .await;
        assert_eq!(
            got,
            vec!["{\"a\":1}".to_string(), "{\"b\":2}".to_string()],
            "priming, typed, oversized skipped; stops on false"
        );
    }

    #[tokio::test]
    async fn a_broken_stream_ends_delivery() {
        let events =
            vec![Ok(Sse::default().data("{}")), Err("reset".to_string()), Ok(Sse::default().data("{\"late\":1}"))];
        let mut got = Vec::new();
        for_each_message(&mut futures::stream::iter(events), 1024, |d| {
            got.push(d);
            true
        })
        .await;
        assert_eq!(got, vec!["{}".to_string()]);
    }

    #[tokio::test]
    async fn the_position_follows_every_event_and_an_empty_id_clears_it() {
        let events = vec![
            Ok::<_, String>(Sse::default().id("s-1").retry(50).data("")),
            Ok(Sse::default().event("ping").id("s-2")),
            Ok(Sse::default().data("x".repeat(100)).id("s-3")),
        ];
        let mut position = Position::default();
        let end = follow(&mut futures::stream::iter(events), 50, &mut position, |_| true).await;
        assert_eq!(end, End::Finished);
        assert_eq!(position.last_id.as_deref(), Some("s-3"), "priming, typed and dropped events all count");
        assert_eq!(position.retry, Some(Duration::from_millis(50)));
        assert_eq!(position.delay(), Duration::from_millis(50));

        let events = vec![Ok::<_, String>(Sse::default().data("{}")), Ok(Sse::default().id("").data("{}"))];
        let end = follow(&mut futures::stream::iter(events), 50, &mut position, |_| true).await;
        assert_eq!(end, End::Finished);
        assert_eq!(position.last_id, None, "an empty id clears the last one; an event with no id keeps it");
        assert_eq!(position.retry, Some(Duration::from_millis(50)), "the delay outlives the stream");

        let events = vec![Ok(Sse::default().id("s-4").data("{}")), Err("reset".to_string())];
        let end = follow(&mut futures::stream::iter(events), 50, &mut position, |_| true).await;
        assert_eq!((end, position.last_id.as_deref()), (End::Broke, Some("s-4")));
        let events = vec![Ok::<_, String>(Sse::default().id("s-5").data("{}"))];
        let end = follow(&mut futures::stream::iter(events), 50, &mut position, |_| false).await;
        assert_eq!((end, position.last_id.as_deref()), (End::Stopped, Some("s-5")));
    }

    #[test]
    fn the_reconnection_delay_is_the_servers_within_bounds() {
        let at = |retry: Option<u64>| Position { last_id: None, retry: retry.map(Duration::from_millis) }.delay();
        assert_eq!(at(None), Position::DEFAULT_DELAY);
        assert_eq!(at(Some(0)), Duration::ZERO);
        assert_eq!(at(Some(1500)), Duration::from_millis(1500));
        assert_eq!(at(Some(u64::MAX)), Position::MAX_DELAY);
    }
}
