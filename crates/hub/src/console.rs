//! The IT console: the static files of `console/` (Svelte, built by `make console`),
//! embedded in the binary at build time and served at `/` by the hub itself. Every
//! answer carries a strict Content-Security-Policy (scripts and styles from the hub only,
//! no inline code, no framing), so text from devices shown on a page can never run.
//! Everything the console shows it reads from the hub's own API with the person's
//! session cookie; the routes check roles, the console hides nothing it relies on.
//!
//! Must never: serve a file outside the embedded set, answer an API path with the
//! console's page, or let a page run inline script.

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};

static CONSOLE: Dir<'_> = include_dir!("$OUT_DIR/console");

/// The console's policy: its own scripts, styles, images and API; nothing inline, no
/// frames, no plugins, forms only to itself.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Paths that belong to the API or to devices (in any case, with or without a slash):
/// never answered with the console's page.
const NOT_CONSOLE: &[&str] = &["v1", "scim", "enroll", "healthz"];

fn api_path(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or_default().to_ascii_lowercase();
    NOT_CONSOLE.contains(&first.as_str())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn with_headers(status: StatusCode, content_type: &'static str, cache: &'static str, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// `GET /` and the console's files; any other page path (`/devices`) gets the console's
/// page, which routes itself.
pub(crate) async fn serve(method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if !(method == Method::GET || method == Method::HEAD) || api_path(path) {
        return crate::reply::error(StatusCode::NOT_FOUND, format!("no route `/{path}`"));
    }
    if let Some(file) = CONSOLE.get_file(path).filter(|_| !path.is_empty()) {
        // Built names carry a content hash: cached for good.
        let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        return with_headers(StatusCode::OK, content_type(path), cache, file.contents().to_vec());
    }
    if path.rsplit('/').next().is_some_and(|last| last.contains('.')) {
        return crate::reply::error(StatusCode::NOT_FOUND, format!("no file `/{path}`"));
    }
    match CONSOLE.get_file("index.html") {
        Some(index) => with_headers(StatusCode::OK, "text/html; charset=utf-8", "no-cache", index.contents().to_vec()),
        None => with_headers(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "no-cache",
            b"This hub was built without its console: run `make console`, then build the hub again.\n".to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let r = serve(Method::GET, path.parse().unwrap()).await;
        let (parts, body) = r.into_parts();
        (parts.status, parts.headers, String::from_utf8_lossy(&to_bytes(body, 1 << 24).await.unwrap()).into_owned())
    }

    #[tokio::test]
    async fn the_page_comes_with_a_strict_policy_and_no_inline_script() {
        let (status, headers, body) = get("/").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(body.contains("make console"), "{body}");
            return;
        }
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(!CSP.contains("unsafe"), "no unsafe-inline or unsafe-eval");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        // Every script the page loads is a file of its own.
        for tag in body.split("<script").skip(1) {
            assert!(tag.contains(" src=\"/assets/"), "an inline script: {tag}");
        }
        assert!(!body.contains("<style") && !body.contains("style="), "an inline style: {body}");
        let (status, _, again) = get("/devices").await;
        assert_eq!((status, again), (StatusCode::OK, body), "a page path gets the console, which routes itself");
    }

    #[tokio::test]
    async fn api_paths_and_unknown_files_are_never_the_console() {
        for path in [
            "/v1/nothing",
            "/scim/v2/x",
            "/enroll/x",
            "/healthz/x",
            "/assets/none.js",
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
        ] {
            let (status, headers, _) = get(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(headers.get(header::CONTENT_SECURITY_POLICY).is_none() || status == StatusCode::NOT_FOUND);
        }
    }

    #[tokio::test]
    async fn only_reads_get_the_console() {
        let r = serve(Method::POST, "/".parse().unwrap()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn files_have_their_types() {
        assert_eq!(content_type("assets/a.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("assets/a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
