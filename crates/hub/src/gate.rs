//! The gate in front of every route that takes a request body: who may send it and how
//! large it may grow. The caller's credential is checked from the headers before one
//! byte of the body is read or inflated; then the body is read, inflated when it is gzip,
//! only up to the route's cap, and a larger one is answered 413 (the handler never runs,
//! so nothing is stored). Enrollment, whose credential (the single-use token) is the body
//! itself, has a cap of a few kilobytes instead.
//!
//! It must never read or inflate a body for a caller it has not authenticated, and never
//! hold more than a route's cap of any body, compressed or not.

use crate::callers;
use crate::reply::error;
use crate::roles::Permission;
use crate::state::Hub;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::MethodRouter;
use http_body_util::{LengthLimitError, Limited};
use std::convert::Infallible;
use std::sync::Arc;
use tower_http::decompression::RequestDecompressionLayer;

/// The largest enrollment request (a token and a device name).
pub const ENROLL_CAP: usize = 16 * 1024;
/// The largest request for a new enrollment token (`{"hours": N}`).
pub const ENROLLMENT_TOKEN_CAP: usize = 4 * 1024;
/// The largest SCIM request (a User, or a Group with its members).
pub const SCIM_CAP: usize = 1024 * 1024;
/// The largest routed approval request (the call's arguments, as records keep them).
pub const APPROVAL_CAP: usize = 256 * 1024;
/// The largest policy upload.
pub const POLICY_CAP: usize = 1024 * 1024;
/// The largest audit batch by default (`--max-ingest-bytes`), after decompression.
pub const DEFAULT_INGEST_CAP: usize = 64 * 1024 * 1024;
/// Routes that take no body never read one; a route added without a gate gets this.
pub const UNGATED_CAP: usize = 16 * 1024;

/// Who a route's body may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// An enrolled device, by the credential enrollment gave it.
    Device,
    /// A member of staff whose role permits this (an API token, or the break-glass token).
    Staff(Permission),
    /// Anyone: enrollment, whose credential is the body itself.
    Enrolling,
}

/// A route's gate: who may send a body, and its largest size after decompression.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub route: &'static str,
    pub caller: Caller,
    pub cap: usize,
}

/// `route` behind `gate`: authentication first, then the body, inflated within the cap.
pub fn gated(route: MethodRouter<Arc<Hub>>, hub: &Arc<Hub>, gate: Gate) -> MethodRouter<Arc<Hub>> {
    // The last layer added runs first.
    route
        .layer::<_, Infallible>(DefaultBodyLimit::max(gate.cap))
        .layer::<_, Infallible>(middleware::from_fn_with_state(gate, read_within_cap))
        .layer::<_, Infallible>(RequestDecompressionLayer::new())
        .layer::<_, Infallible>(middleware::from_fn_with_state((hub.clone(), gate), authenticate))
}

/// Checks the caller from the headers alone, refuses a body declared larger than the cap,
/// and bounds the raw body at the cap (a gzip body larger than what it may inflate to has
/// no business here). A member of staff goes to the handler as a [`callers::Staff`]
/// request extension.
async fn authenticate(State((hub, gate)): State<(Arc<Hub>, Gate)>, mut req: Request, next: Next) -> Response {
    let allowed = match gate.caller {
        Caller::Device => callers::device(&hub, req.headers()).await.map(drop),
        Caller::Staff(permission) => {
            let what = format!("{} {}", req.method(), gate.route);
            callers::staff(&hub, req.headers(), permission, &what).await.map(|staff| {
                req.extensions_mut().insert(staff);
            })
        }
        Caller::Enrolling => Ok(()),
    };
    if let Err(refused) = allowed {
        return refused;
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gate.cap as u64) {
        return too_large(gate);
    }
    next.run(req.map(|body| Body::new(Limited::new(body, gate.cap)))).await
}

/// Reads the (inflated) body up to the cap, so the handler gets it from memory.
async fn read_within_cap(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, gate.cap).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(e) if over_cap(&e) => too_large(gate),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("the request body could not be read: {e}")),
    }
}

fn over_cap(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn too_large(gate: Gate) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than the {}-byte limit of {} (after decompression)", gate.cap, gate.route),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes;
    use axum::http::Method;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    async fn hub(admin: Option<&str>) -> Arc<Hub> {
        let db = crate::db::Db::connect("sqlite::memory:").await.unwrap();
        Arc::new(Hub {
            db,
            admin_token_sha256: admin.map(crate::auth::digest),
            signing_key: None,
            bundle_valid_for: std::time::Duration::from_secs(60),
            published: Default::default(),
            siem: crate::siem::Siem::disabled(),
            max_ingest_bytes: 1024,
            sign_in: None,
            guesses: Default::default(),
            approvals_changed: Default::default(),
        })
    }

    /// A body that notes whether anyone ever polled it.
    fn watched_body(polled: Arc<AtomicBool>) -> Body {
        let stream = futures::stream::poll_fn(move |_| {
            polled.store(true, Ordering::SeqCst);
            std::task::Poll::Ready(None::<Result<axum::body::Bytes, std::io::Error>>)
        });
        Body::from_stream(stream)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[tokio::test]
    async fn no_body_is_read_before_the_caller_is_authenticated() {
        let hub = hub(Some("csa_right")).await;
        for (method, path) in routes::ROUTES {
            // Enrollment's routes are open: their credential (a token, a device code, a
            // confirmation) is in the body, which is capped at a few kilobytes.
            let open = ["/v1/enroll", "/v1/enroll/device_authorization", "/v1/enroll/token", "/enroll/confirm"];
            if open.contains(path) || !matches!(*method, "POST" | "PUT") {
                continue;
            }
            for auth in [None, Some("Bearer csd_wrong"), Some("Bearer csa_wrong")] {
                let polled = Arc::new(AtomicBool::new(false));
                let mut req = axum::http::Request::builder()
                    .method(Method::from_bytes(method.as_bytes()).unwrap())
                    .uri(path.replace("{id}", "some-id"))
                    .header("content-encoding", "gzip");
                if let Some(a) = auth {
                    req = req.header("authorization", a);
                }
                let req = req.body(watched_body(polled.clone())).unwrap();
                let status = routes::router(hub.clone()).oneshot(req).await.unwrap().status();
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} {auth:?}");
                assert!(!polled.load(Ordering::SeqCst), "{method} {path} {auth:?}: the body was read");
            }
        }
    }

    #[tokio::test]
    async fn an_authenticated_body_is_inflated_only_up_to_its_cap() {
        let hub = hub(Some("csa_right")).await;
        let send = |path: &'static str, body: Vec<u8>, gz: bool| {
            let mut req = axum::http::Request::builder()
                .method(if path == "/v1/policy" { "PUT" } else { "POST" })
                .uri(path)
                .header("authorization", "Bearer csa_right");
            if gz {
                req = req.header("content-encoding", "gzip");
            }
            let req = req.body(Body::from(body)).unwrap();
            let hub = hub.clone();
            async move {
                let resp = routes::router(hub).oneshot(req).await.unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        // A bomb: 64 MiB of zeros in about 64 KiB.
        let bomb = gzip(&vec![b' '; 64 << 20]);
        assert!(bomb.len() < POLICY_CAP);
        let (status, text) = send("/v1/policy", bomb, true).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        assert!(text.contains("1048576-byte limit of /v1/policy"), "{text}");
        // Declared too large: refused before reading.
        let (status, _) = send("/v1/enrollment-tokens", vec![b' '; ENROLLMENT_TOKEN_CAP + 1], false).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        // Within the cap, inflated for the handler (here: no signing key, so 422).
        let (status, text) = send("/v1/policy", gzip(b"[policy]\ndeny = []\n"), true).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
        // Not gzip at all, though it says so.
        let (status, text) = send("/v1/policy", b"not gzip".to_vec(), true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    }

    #[tokio::test]
    async fn enrollment_is_capped_small() {
        let hub = hub(None).await;
        let body = format!("{{\"token\":\"cse_x\",\"name\":\"{}\"}}", "a".repeat(ENROLL_CAP));
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/enroll")
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Body::from(gzip(body.as_bytes())))
            .unwrap();
        let status = routes::router(hub).oneshot(req).await.unwrap().status();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
