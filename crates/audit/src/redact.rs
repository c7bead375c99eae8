//! Redaction of tool arguments before they reach the journal, and of free text (a
//! server's error or log line) before it reaches the journal or the log.
//!
//! Values under keys that name secrets, and strings shaped like tokens or keys, are
//! replaced with a salted hash (`[redacted:<12 hex>]`), so two records holding the same
//! secret still correlate while the secret itself is never stored. A token inside a
//! longer string (`key=cst_…`, a URL's query, a JSON document held in a string, a
//! `Bearer …` header line) has just that token replaced. Countersign's own token kinds
//! (`cst_` client, `csc_` control, `csd_` device, `cse_` enrollment, `csa_` admin) are
//! among the shapes known. Never logs a value.

use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct Redactor {
    salt: Vec<u8>,
}

const SECRET_KEYS: [&str; 12] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "authorization",
    "credential",
    "private_key",
    "privatekey",
    "cookie",
];

const TOKEN_PREFIXES: [&str; 17] = [
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "github_pat_",
    "sk-",
    "xoxb-",
    "xoxp-",
    "xapp-",
    "AKIA",
    "glpat-",
    "cs_",
    // Countersign's own: client, control, device, enrollment and admin tokens.
    "cst_",
    "csc_",
    "csd_",
    "cse_",
    "csa_",
];

/// Characters a token's body is made of (base64url, hex and the like).
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl Redactor {
    pub fn new(salt: &[u8]) -> Self {
        Redactor { salt: salt.to_vec() }
    }

    pub fn redact(&self, value: &Value) -> Value {
        self.walk(value, false)
    }

    /// [`Redactor::redact`], and the values under the top-level argument names `fields`
    /// (the tool's classification marks them sensitive) hashed too, whatever they hold.
    pub fn redact_fields(&self, value: &Value, fields: &[String]) -> Value {
        match value {
            Value::Object(map) if !fields.is_empty() => Value::Object(
                map.iter().map(|(k, v)| (k.clone(), self.walk(v, fields.iter().any(|f| f == k)))).collect(),
            ),
            other => self.walk(other, false),
        }
    }

    fn walk(&self, value: &Value, secret_context: bool) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let lower = k.to_ascii_lowercase();
                        let secret = secret_context || SECRET_KEYS.iter().any(|s| lower.contains(s));
                        (k.clone(), self.walk(v, secret))
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.walk(v, secret_context)).collect()),
            Value::String(s) if secret_context || looks_like_secret(s) => Value::String(self.mask(s)),
            Value::String(s) => Value::String(self.redact_text(s).into_owned()),
            Value::Number(n) if secret_context => Value::String(self.mask(&n.to_string())),
            Value::Bool(b) if secret_context => Value::String(self.mask(&b.to_string())),
            other => other.clone(),
        }
    }

    /// `text` with every token found inside it replaced by its salted hash; the rest of
    /// the text is kept. For a server's error message or log line, and for string values
    /// that are not a secret as a whole.
    pub fn redact_text<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        replace_tokens(text, |t| self.mask(t))
    }

    fn mask(&self, secret: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update(secret.as_bytes());
        format!("[redacted:{}]", &hex::encode(h.finalize())[..12])
    }
}

fn looks_like_secret(s: &str) -> bool {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("Bearer ").or_else(|| t.strip_prefix("bearer ")) {
        return rest.len() >= 8;
    }
    if TOKEN_PREFIXES.iter().any(|p| t.starts_with(p)) && t.len() >= 16 && !t.contains(char::is_whitespace) {
        return true;
    }
    // A JWT: three base64url parts, the first a JSON header.
    if t.starts_with("eyJ") && t.split('.').count() == 3 && t.len() >= 32 {
        return true;
    }
    t.contains("-----BEGIN") && t.contains("PRIVATE KEY")
}

/// `text` for a log line: every token in it (or the whole text, when it is one secret)
/// replaced by `[redacted]`. No hash: a log is not where records are correlated.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    replace_tokens(text, |_| "[redacted]".to_string())
}

fn replace_tokens<'a>(text: &'a str, mask: impl Fn(&str) -> String) -> std::borrow::Cow<'a, str> {
    if looks_like_secret(text) {
        return std::borrow::Cow::Owned(mask(text));
    }
    let found = embedded_tokens(text);
    if found.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for range in found {
        out.push_str(&text[at..range.start]);
        out.push_str(&mask(&text[range.clone()]));
        at = range.end;
    }
    out.push_str(&text[at..]);
    std::borrow::Cow::Owned(out)
}

/// Where tokens sit inside a longer text: a known prefix at a word boundary followed by
/// at least 12 token characters, a JWT, or what follows `Bearer `. In order, not
/// overlapping.
fn embedded_tokens(text: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !text.is_char_boundary(i) || (i > 0 && token_char(text[..i].chars().next_back().unwrap_or(' '))) {
            i += 1;
            continue;
        }
        let rest = &text[i..];
        let body_end = |from: usize| from + rest[from..].find(|c: char| !token_char(c)).unwrap_or(rest.len() - from);
        let hit = if let Some(p) = TOKEN_PREFIXES.iter().find(|p| rest.starts_with(**p)) {
            let end = body_end(p.len());
            (end - p.len() >= 12).then_some(end)
        } else if rest.starts_with("eyJ") {
            // header.payload.signature, each part base64url.
            let mut end = 0;
            let mut parts = 0;
            loop {
                let part_end = body_end(end);
                if part_end == end {
                    break;
                }
                parts += 1;
                end = part_end;
                if parts == 3 || !rest[end..].starts_with('.') {
                    break;
                }
                end += 1;
            }
            (parts == 3 && end >= 32).then_some(end)
        } else if rest.len() > 7 && rest.as_bytes()[..7].eq_ignore_ascii_case(b"bearer ") {
            let end = 7 + rest[7..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
                .unwrap_or(rest.len() - 7);
            if end - 7 >= 8 {
                found.push(i + 7..i + end);
            }
            i += end.max(1);
            continue;
        } else {
            None
        };
        match hit {
            Some(end) => {
                found.push(i..i + end);
                i += end;
            }
            None => i += 1,
        }
    }
    found
}

#[cfg(test)]
mod field_tests {
    use super::*;

    #[test]
    fn fields_the_classification_marks_are_hashed_whatever_they_hold() {
        let r = Redactor::new(b"salt");
        let args =
            serde_json::json!({"query": {"sql": "SELECT * FROM patients WHERE name = 'Ada'", "n": 3}, "db": "main"});
        let out = r.redact_fields(&args, &["query".to_string()]);
        let text = out.to_string();
        assert!(!text.contains("patients") && !text.contains("Ada"), "{text}");
        assert_eq!(out["db"], "main");
        assert!(out["query"]["sql"].as_str().unwrap().starts_with("[redacted:"));
        assert_eq!(out["query"]["n"], r.redact_fields(&args, &["query".to_string()])["query"]["n"], "stable");
        assert_eq!(r.redact_fields(&args, &[]), r.redact(&args));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_and_token_shapes_are_masked_consistently() {
        let r = Redactor::new(b"salt");
        let out = r.redact(&json!({
            "path": "/tmp/a",
            "headers": {"Authorization": "Bearer abcdefghijkl"},
            "api_key": "plain",
            "note": "ghp_0123456789abcdefghij",
            "list": ["sk-abcdefghijklmnopqrstu", "fine"]
        }));
        assert_eq!(out["path"], "/tmp/a");
        assert_eq!(out["list"][1], "fine");
        for v in [&out["headers"]["Authorization"], &out["api_key"], &out["note"], &out["list"][0]] {
            assert!(v.as_str().unwrap().starts_with("[redacted:"), "{v}");
        }
        let again = r.redact(&json!({"api_key": "plain"}));
        assert_eq!(again["api_key"], out["api_key"]);
        assert_ne!(Redactor::new(b"other").redact(&json!({"api_key": "plain"}))["api_key"], out["api_key"]);
        assert!(!out.to_string().contains("ghp_0123"));
    }

    const CST: &str = "cst_Qk9hZ2xlLXRva2VuLWZvci10ZXN0cy0wMTIzNDU2Nzg5";

    #[test]
    fn countersigns_own_tokens_are_masked_whole() {
        let r = Redactor::new(b"salt");
        for prefix in ["cst_", "csc_", "csd_", "cse_", "csa_"] {
            let token = format!("{prefix}0123456789abcdef0123456789abcdef");
            let out = r.redact(&json!({"note": token}));
            assert!(out["note"].as_str().unwrap().starts_with("[redacted:"), "{prefix}: {out}");
        }
    }

    #[test]
    fn tokens_inside_longer_strings_are_masked_and_the_rest_kept() {
        let r = Redactor::new(b"salt");
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLWJ5dGVz";
        let args = json!({
            "query": format!("key={CST}&page=2"),
            "url": format!("https://api.example.com/v1/items?token={CST}"),
            "doc": format!("{{\"auth\": \"{CST}\", \"n\": 1}}"),
            "line": format!("curl -H 'Authorization: Bearer abc.def-ghi_jkl' https://x and {jwt}"),
            "list": [format!("({CST})")],
            "plain": "task-list-for-the-week and discs_of_the_month",
        });
        let out = r.redact(&args);
        let text = out.to_string();
        for secret in [CST, "abc.def-ghi_jkl", jwt] {
            assert!(!text.contains(secret), "{secret} left in {text}");
        }
        let query = out["query"].as_str().unwrap();
        assert!(query.starts_with("key=[redacted:") && query.ends_with("]&page=2"), "{query}");
        assert!(out["url"].as_str().unwrap().starts_with("https://api.example.com/v1/items?token=[redacted:"));
        assert!(out["doc"].as_str().unwrap().ends_with("\", \"n\": 1}"), "{}", out["doc"]);
        assert_eq!(out["plain"], args["plain"], "words that merely contain a prefix are kept");
        // The same token correlates wherever it sits.
        let whole = r.redact(&json!(CST));
        assert!(query.contains(whole.as_str().unwrap()), "{query} vs {whole}");
    }

    #[test]
    fn no_text_made_of_token_pieces_and_wide_characters_panics_or_keeps_a_token() {
        let pieces =
            ["cst_", "Bearer ", "bearer", "eyJ", ".", "=", "é", "\u{301}", "→", "0123456789ab", "-", "_", " ", "\""];
        let r = Redactor::new(b"salt");
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let out = r.redact_text(&text);
            let _ = scrub(&text);
            let _ = r.redact(&json!({ "v": text }));
            if text.starts_with("cst_0123456789ab") {
                assert!(!out.contains("cst_0123456789ab"), "{text:?} -> {out:?}");
            }
        }
    }

    #[test]
    fn free_text_is_redacted_the_same_way() {
        let r = Redactor::new(b"salt");
        let line = format!("ENOENT: no such file '/tmp/key={CST}'");
        let out = r.redact_text(&line);
        assert!(!out.contains(CST) && out.starts_with("ENOENT: no such file '/tmp/key=[redacted:"), "{out}");
        assert!(matches!(r.redact_text("nothing secret here"), std::borrow::Cow::Borrowed(_)));
        assert!(r.redact_text("short cst_abc").contains("cst_abc"), "too short to be a token");
        assert_eq!(scrub(&line), "ENOENT: no such file '/tmp/key=[redacted]'");
        let wide = format!("é→{CST}✓ Bearer ü bearer\u{301}x Beare→ /tmp/x/café/ée");
        assert!(!r.redact_text(&wide).contains(CST), "non-ASCII around a token");
        // Every prefix of a string full of multi-byte characters is scanned without a panic.
        for (i, _) in wide.char_indices() {
            let _ = r.redact_text(&wide[i..]);
            let _ = scrub(&wide[i..]);
        }
    }
}
