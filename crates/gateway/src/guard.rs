//! Checks every HTTP request passes before anything else looks at it: the Host must be
//! this loopback listener, a browser Origin must be allowed explicitly, no CORS preflight
//! is ever honoured, and no token may travel in a URL. A refusal is audited and says why;
//! this module never echoes a token or reflects an Origin.

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal { status, reason: reason.into() }
}

/// The checks that apply before authentication.
pub fn check_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    listen: SocketAddr,
    allowed_origins: &[String],
) -> Result<(), Refusal> {
    // HTTP/1.1 names the host in `Host`; HTTP/2 in `:authority`, which arrives in the URI.
    let host = match headers.get("host") {
        Some(h) => h.to_str().unwrap_or_default(),
        None => uri.authority().map_or("", |a| a.as_str()),
    };
    if !host_is_ours(host, listen.port()) {
        return Err(refuse(StatusCode::FORBIDDEN, "foreign Host header: only loopback names are served"));
    }
    if let Some(origin) = headers.get("origin") {
        let origin = origin.to_str().unwrap_or_default();
        // The gateway's own origin is allowed: it serves no pages, so no other site can
        // be it (a rebinding attacker's page keeps its own origin).
        let own = origin.strip_prefix("http://").is_some_and(|host| host_is_ours(host, listen.port()));
        if !own && !allowed_origins.iter().any(|o| o == origin) {
            return Err(refuse(StatusCode::FORBIDDEN, "requests from a browser origin are refused"));
        }
    }
    if method == Method::OPTIONS {
        return Err(refuse(StatusCode::FORBIDDEN, "CORS preflight requests are refused"));
    }
    if let Some(query) = uri.query() {
        let has_secret = query.split('&').any(|pair| {
            let key = pair.split('=').next().unwrap_or_default().to_ascii_lowercase();
            ["token", "access_token", "auth", "key", "api_key", "apikey", "bearer"].contains(&key.as_str())
        });
        if has_secret {
            return Err(refuse(StatusCode::UNAUTHORIZED, "tokens in the URL are refused; send Authorization: Bearer"));
        }
    }
    Ok(())
}

fn host_is_ours(host: &str, port: u16) -> bool {
    let (name, host_port) = match host.rsplit_once(':') {
        Some((name, p)) => (name, p.parse::<u16>().ok()),
        _ => (host, None),
    };
    let loopback = matches!(name.to_ascii_lowercase().as_str(), "127.0.0.1" | "localhost" | "[::1]");
    loopback && host_port == Some(port)
}

/// The bearer token of a request, if it carries one in the Authorization header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Whether a POST body is declared as JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 47800);

    fn check(method: Method, uri: &str, h: &[(&'static str, &str)]) -> Result<(), Refusal> {
        check_request(&method, &uri.parse().unwrap(), &headers(h), LISTEN, &[])
    }

    #[test]
    fn sec_01_foreign_hosts_and_origins_are_refused() {
        assert!(check(Method::POST, "/mcp", &[("host", "127.0.0.1:47800")]).is_ok());
        assert!(check(Method::POST, "/mcp", &[("host", "localhost:47800")]).is_ok());
        assert!(check(Method::POST, "/mcp", &[("host", "[::1]:47800")]).is_ok());
        for host in ["evil.test", "evil.test:47800", "127.0.0.1:1", "127.0.0.1", "localhost.evil.test:47800", ""] {
            assert_eq!(
                check(Method::POST, "/mcp", &[("host", host)]).unwrap_err().status,
                StatusCode::FORBIDDEN,
                "{host}"
            );
        }
        for origin in [
            "https://evil.test",
            "null",
            "file://",
            "chrome-extension://abc",
            "http://localhost:1",
            "https://localhost:47800",
            "http://evil.test:47800",
            "http://localhost:47800/x",
        ] {
            let r = check(Method::POST, "/mcp", &[("host", "127.0.0.1:47800"), ("origin", origin)]);
            assert_eq!(r.unwrap_err().status, StatusCode::FORBIDDEN, "{origin}");
        }
        let own = check(Method::POST, "/mcp", &[("host", "localhost:47800"), ("origin", "http://localhost:47800")]);
        assert!(own.is_ok(), "the gateway's own origin");
        let allowed = check_request(
            &Method::POST,
            &"/mcp".parse().unwrap(),
            &headers(&[("host", "127.0.0.1:47800"), ("origin", "http://localhost:6274")]),
            LISTEN,
            &["http://localhost:6274".to_string()],
        );
        assert!(allowed.is_ok());
    }

    #[test]
    fn sec_04_preflight_is_refused() {
        let r = check(Method::OPTIONS, "/mcp", &[("host", "127.0.0.1:47800")]);
        assert_eq!(r.unwrap_err().status, StatusCode::FORBIDDEN);
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(is_json(&headers(&[("content-type", "application/json; charset=utf-8")])));
    }

    #[test]
    fn sec_03_tokens_in_urls_are_refused() {
        let r = check(Method::POST, "/mcp?token=abc", &[("host", "127.0.0.1:47800")]);
        assert_eq!(r.unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer abc")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
    }
}
