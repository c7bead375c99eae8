//! Redaction of tool arguments before they reach the journal.
//!
//! Values under keys that name secrets, and strings shaped like tokens or keys, are
//! replaced with a salted hash (`[redacted:<12 hex>]`), so two records holding the same
//! secret still correlate while the secret itself is never stored. Never logs a value.

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

const TOKEN_PREFIXES: [&str; 12] =
    ["ghp_", "gho_", "ghu_", "ghs_", "github_pat_", "sk-", "xoxb-", "xoxp-", "xapp-", "AKIA", "glpat-", "cs_"];

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
            Value::Number(n) if secret_context => Value::String(self.mask(&n.to_string())),
            Value::Bool(b) if secret_context => Value::String(self.mask(&b.to_string())),
            other => other.clone(),
        }
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
}
