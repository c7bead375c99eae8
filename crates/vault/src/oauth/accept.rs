//! The checks every token response passes before Countersign keeps or uses it: from the
//! code exchange at sign-in, from every refresh, and when a stored sign-in is read back
//! (one stored by an older version that did not check). One function, called by the
//! credential store (`store`), which is the only way tokens reach the keychain or rmcp
//! hands them out; so a refresh cannot bring in what a sign-in would have refused.
//!
//! It must never log or return the token; what it returns names only what was wrong.

use base64::Engine;
use oauth2::basic::BasicTokenType;
use oauth2::TokenResponse;
use rmcp::transport::auth::OAuthTokenResponse;

/// Why a token response was refused; the text reads after "the authorization server".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedToken {
    #[error("issued a token for another audience ({0})")]
    WrongAudience(String),
    #[error("issued a `{0}` token, not a bearer token")]
    NotBearer(String),
    #[error("issued an access token that is empty or holds characters a header cannot carry")]
    Malformed,
}

/// Accepts `token` as a bearer token for the protected resource at `resource` (the MCP
/// server's URL, RFC 8707), or says why not.
pub fn accept(resource: &str, token: &OAuthTokenResponse) -> Result<(), RefusedToken> {
    match token.token_type() {
        BasicTokenType::Bearer => {}
        other => return Err(RefusedToken::NotBearer(visible(other.as_ref(), 40))),
    }
    let access = token.access_token().secret();
    if access.is_empty() || !access.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RefusedToken::Malformed);
    }
    if let Some(audience) = foreign_audience(access, resource) {
        return Err(RefusedToken::WrongAudience(audience));
    }
    Ok(())
}

/// When the access token is a JWT whose `aud` does not name `resource`, that audience.
/// Opaque tokens cannot be checked here (the server checks them).
fn foreign_audience(token: &str, resource: &str) -> Option<String> {
    let payload = token.split('.').nth(1).filter(|_| token.split('.').count() == 3)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let aud = claims.get("aud")?;
    let audiences: Vec<&str> = match aud {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => return Some(visible(&aud.to_string(), 120)),
    };
    let same = |a: &str| a.trim_end_matches('/') == resource.trim_end_matches('/');
    if audiences.iter().any(|a| same(a)) {
        None
    } else {
        Some(visible(&audiences.join(", "), 120))
    }
}

/// Text from the token as a person may read it: printable ASCII, anything else escaped,
/// cut at `max` characters.
fn visible(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().take(max) {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            out.push_str(&c.escape_unicode().to_string());
        }
    }
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MCP: &str = "https://mcp.example.com/mcp";

    fn jwt(claims: serde_json::Value) -> String {
        let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!("{}.{}.sig", e(br#"{"alg":"none"}"#), e(claims.to_string().as_bytes()))
    }

    fn response(access: &str, token_type: &str) -> OAuthTokenResponse {
        serde_json::from_value(serde_json::json!({"access_token": access, "token_type": token_type})).unwrap()
    }

    #[test]
    fn sec_21_a_token_for_another_audience_is_spotted() {
        assert_eq!(foreign_audience(&jwt(serde_json::json!({"aud": MCP})), MCP), None);
        assert_eq!(
            foreign_audience(&jwt(serde_json::json!({"aud": ["x", "https://mcp.example.com/mcp/"]})), MCP),
            None
        );
        assert_eq!(
            foreign_audience(&jwt(serde_json::json!({"aud": "https://other.example.com"})), MCP).as_deref(),
            Some("https://other.example.com")
        );
        assert_eq!(foreign_audience("opaque-token", MCP), None);
    }

    #[test]
    fn i15_12_every_check_is_one_function() {
        assert_eq!(accept(MCP, &response("at_opaque", "Bearer")), Ok(()));
        assert_eq!(accept(MCP, &response(&jwt(serde_json::json!({"aud": MCP})), "bearer")), Ok(()));
        assert_eq!(
            accept(MCP, &response(&jwt(serde_json::json!({"aud": "https://another.example/mcp"})), "Bearer")),
            Err(RefusedToken::WrongAudience("https://another.example/mcp".into()))
        );
        assert_eq!(accept(MCP, &response("x", "DPoP")), Err(RefusedToken::NotBearer("dpop".into())));
        assert_eq!(accept(MCP, &response("", "Bearer")), Err(RefusedToken::Malformed));
        assert_eq!(accept(MCP, &response("a\r\nX-Evil: 1", "Bearer")), Err(RefusedToken::Malformed));
        assert_eq!(accept(MCP, &response("a b", "Bearer")), Err(RefusedToken::Malformed));
    }

    #[test]
    fn i15_12_what_a_refused_token_says_is_shown_inert() {
        let token = jwt(serde_json::json!({"aud": "https://x.example/\u{202e}lmth.\u{1b}[2J"}));
        let Err(RefusedToken::WrongAudience(shown)) = accept(MCP, &response(&token, "Bearer")) else {
            panic!("accepted")
        };
        assert!(shown.chars().all(|c| (' '..='~').contains(&c)), "{shown}");
        assert!(shown.contains("\\u{202e}") && shown.contains("\\u{1b}"), "{shown}");
    }
}
