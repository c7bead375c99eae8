//! Reading SSE answers as an MCP client: used by the stdio shim (talking to this
//! gateway) and by remote upstream connections. One place decides what counts as a
//! message: events with no type or type `message`, with non-empty data (a priming event
//! has none), no larger than the line limit. It never logs an event's data.

use futures::{Stream, StreamExt};

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

/// Hands each message of `stream` to `deliver` until the stream ends, breaks, or
/// `deliver` returns false. Messages over `max_bytes` are dropped with a warning.
pub async fn for_each_message<S, E>(stream: &mut S, max_bytes: usize, mut deliver: impl FnMut(String) -> bool)
where
    S: Stream<Item = Result<sse_stream::Sse, E>> + Unpin,
    E: std::fmt::Display,
{
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("SSE stream broke: {e}");
                return;
            }
        };
        if !matches!(event.event.as_deref(), None | Some("message")) {
            continue;
        }
        let Some(data) = event.data.filter(|d| !d.is_empty()) else { continue };
        if data.len() > max_bytes {
            tracing::warn!(bytes = data.len(), "SSE message over the {max_bytes}-byte limit dropped");
            continue;
        }
        if !deliver(data) {
            return;
        }
    }
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
}
