//! Checks on every URL that OAuth metadata hands us before anything uses it (case 20):
//! the authorization endpoint the browser is sent to, and the token, registration and
//! revocation endpoints the gateway itself calls. Only `https`, or `http` to a loopback
//! host, passes; no user info, no control characters or spaces, nothing that could pass
//! for a command-line flag, and never a link-local or cloud metadata address.
//! A URL that passes is opened without a shell (see `browser`), so these checks are a
//! second wall, not the only one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{what} `{shown}` is refused: {why}")]
pub struct UnsafeUrl {
    pub what: String,
    pub shown: String,
    pub why: String,
}

/// Host names that reach cloud instance metadata services.
const METADATA_HOSTS: &[&str] = &["metadata", "metadata.google.internal", "metadata.azure.internal", "instance-data"];

/// Checks `raw` as an endpoint named `what` (such as "authorization_endpoint").
pub fn check_endpoint(what: &str, raw: &str) -> Result<Url, UnsafeUrl> {
    let refuse = |why: &str| UnsafeUrl { what: what.into(), shown: shown(raw), why: why.into() };
    if raw.is_empty() {
        return Err(refuse("it is empty"));
    }
    if raw.starts_with('-') {
        return Err(refuse("it starts with `-` and could pass for a command-line flag"));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse("it holds spaces or control characters"));
    }
    if raw.contains(['`', '$', '"', '\'', '\\', '<', '>', '|', ';']) {
        return Err(refuse("it holds shell or markup characters no endpoint needs"));
    }
    let url = Url::parse(raw).map_err(|e| refuse(&format!("it is not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it carries user credentials"));
    }
    let host = url.host().ok_or_else(|| refuse("it has no host"))?;
    let loopback = is_loopback(&host);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(refuse("plain http is allowed only to this machine (loopback); use https")),
        other => return Err(refuse(&format!("scheme `{other}` is not https"))),
    }
    if let Some(why) = forbidden_host(&host) {
        return Err(refuse(why));
    }
    if url.fragment().is_some() && what != "authorization URL" {
        return Err(refuse("it has a fragment"));
    }
    Ok(url)
}

fn shown(raw: &str) -> String {
    let mut s: String = raw.chars().filter(|c| !c.is_control()).take(120).collect();
    if raw.chars().count() > 120 {
        s.push('…');
    }
    s
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn forbidden_host(host: &Host<&str>) -> Option<&'static str> {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            METADATA_HOSTS.contains(&d.as_str()).then_some("it names a cloud metadata service")
        }
        Host::Ipv4(ip) => forbidden_ip(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => forbidden_ip(IpAddr::V6(*ip)),
    }
}

fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    if let Some(v4) = v4 {
        if v4.is_link_local() {
            return Some("it is a link-local address (where cloud metadata services live)");
        }
        if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4 == Ipv4Addr::new(100, 100, 100, 200) {
            return Some("it is not an address a server can have");
        }
        return None;
    }
    if let IpAddr::V6(v6) = ip {
        if (v6.segments()[0] & 0xffc0) == 0xfe80 {
            return Some("it is a link-local address (where cloud metadata services live)");
        }
        if v6.is_unspecified() || v6.is_multicast() || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
            return Some("it is not an address a server can have");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec_20_hostile_authorization_endpoints_are_refused() {
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "$(id)",
            "https://example.com/$(id)",
            "--flag",
            "-o/tmp/x https://example.com",
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.169.254/",
            "https://[fe80::1]/authorize",
            "https://[::ffff:169.254.169.254]/authorize",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://example.com/authorize",
            "https://user:pw@example.com/authorize",
            "https://example.com/a b",
            "data:text/html,<script>",
            "",
        ] {
            assert!(check_endpoint("authorization_endpoint", bad).is_err(), "{bad} passed");
        }
    }

    #[test]
    fn https_and_loopback_http_pass() {
        for good in
            ["https://auth.example.com/authorize?x=1", "http://127.0.0.1:9000/authorize", "http://localhost:8080/a"]
        {
            assert!(check_endpoint("authorization_endpoint", good).is_ok(), "{good}");
        }
        let e = check_endpoint("token_endpoint", "http://10.0.0.5/token").unwrap_err();
        assert!(e.to_string().contains("plain http is allowed only to this machine"), "{e}");
    }
}
