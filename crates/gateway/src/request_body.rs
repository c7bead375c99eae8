//! Every request's body is read to its end before its connection is reused. A route that
//! answers early (a refusal at the door, a missing token, a wrong content type, an
//! unknown session) drops the body unread; hyper then closes the connection under a
//! client that was about to reuse it (httpx, or an MCP client doing OAuth discovery
//! after a 401, saw "server disconnected"). This layer hands the route a body it can
//! read as usual, keeps hold of the rest, and after the route answered reads what is
//! left: a small remainder that arrives in time is discarded and the connection stays
//! open; anything else is answered with `Connection: close`, so the client knows.
//!
//! It never delays an answer by more than [`DRAIN_WITHIN`], never buffers what it drains,
//! and never reads more than [`DRAIN_BYTES`] of a body nobody wanted.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most of an unread body drained to keep its connection open.
pub(crate) const DRAIN_BYTES: u64 = 64 * 1024;
/// How long draining may take before the connection is closed instead.
pub(crate) const DRAIN_WITHIN: Duration = Duration::from_millis(500);

/// The layer: see the module docs.
pub(crate) async fn read_to_end(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let shared = Arc::new(Mutex::new(Some(body)));
    let lent = Body::new(Lent(shared.clone()));
    let mut resp = next.run(Request::from_parts(parts, lent)).await;
    let rest = shared.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(rest) = rest {
        if !drain(rest).await {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    resp
}

/// Reads and discards what is left of `body`; whether it all arrived within bounds.
async fn drain(mut body: Body) -> bool {
    if body.is_end_stream() {
        return true;
    }
    if body.size_hint().lower() > DRAIN_BYTES {
        return false;
    }
    let read = async {
        let mut seen = 0u64;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let Ok(frame) = frame else { return false };
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > DRAIN_BYTES {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_WITHIN, read).await.unwrap_or(false)
}

/// The body as the route sees it: the real one, still owned by the layer.
struct Lent(Arc<Mutex<Option<Body>>>);

impl HttpBody for Lent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(HttpBody::size_hint).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/early", post(|| async { "refused before reading" }))
            .route("/read", post(|body: Bytes| async move { format!("{} bytes", body.len()) }))
            .layer(axum::middleware::from_fn(read_to_end))
    }

    async fn send(path: &str, body: Body) -> Response {
        app().oneshot(Request::post(path).body(body).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn a_small_unread_body_is_drained_and_the_connection_kept() {
        let resp = send("/early", Body::from(vec![b'x'; 1000])).await;
        assert_eq!(resp.headers().get(header::CONNECTION), None);
    }

    #[tokio::test]
    async fn a_body_the_route_read_is_left_alone() {
        let resp = send("/read", Body::from(vec![b'x'; 200_000])).await;
        assert_eq!(resp.headers().get(header::CONNECTION), None);
        let body = axum::body::to_bytes(resp.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"200000 bytes");
    }

    #[tokio::test]
    async fn a_large_unread_body_closes_the_connection() {
        let resp = send("/early", Body::from(vec![b'x'; (DRAIN_BYTES + 1) as usize])).await;
        assert_eq!(resp.headers().get(header::CONNECTION).unwrap(), "close");
    }

    #[tokio::test]
    async fn a_body_that_never_ends_closes_the_connection_in_time() {
        let endless = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let resp = tokio::time::timeout(Duration::from_secs(30), send("/early", Body::from_stream(endless)))
            .await
            .expect("answered, not held by a body that never ends");
        assert_eq!(resp.headers().get(header::CONNECTION).unwrap(), "close");
    }
}
