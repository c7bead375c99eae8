//! Spots credentials written in plain text in a config (environment variables and headers
//! whose name or value looks like a secret), so `countersign secret import` can offer to
//! move them into the keychain. Heuristic by nature: it errs towards asking.

use crate::SecretName;

/// Words of a variable or header name (upper-cased, split at anything not a letter or
/// digit) that mark its value as a credential.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "TOKENS",
    "SECRET",
    "SECRETS",
    "PASSWORD",
    "PASSWD",
    "PWD",
    "PAT",
    "APIKEY",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "AUTHORIZATION",
    "COOKIE",
];

/// Words that, followed by `KEY`, name a credential (`API_KEY`, `X-Api-Key`).
const KEY_QUALIFIERS: &[&str] = &["API", "ACCESS", "PRIVATE", "SECRET", "CLIENT", "SIGNING", "LICENSE"];

/// Prefixes of well-known token formats.
const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "github_pat_",
    "glpat-",
    "sk-",
    "sk_live_",
    "rk_live_",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "eyJ",
    "Bearer ",
    "bearer ",
    "Basic ",
    "npm_",
    "pypi-",
    "hf_",
];

/// Whether `value`, set as `key`, is most likely a credential written in plain text.
pub fn looks_secret(key: &str, value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() || (value.starts_with("${") && value.ends_with('}')) {
        return false;
    }
    names_secret(key) || TOKEN_PREFIXES.iter().any(|p| value.starts_with(p) && value.len() >= p.len() + 8)
}

/// Whether a variable or header called `key` holds a credential by its name alone
/// (`GITHUB_TOKEN`, `X-Api-Key`), whatever its value.
pub fn names_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    words.iter().any(|w| SECRET_WORDS.contains(w))
        || words.windows(2).any(|pair| pair[1] == "KEY" && KEY_QUALIFIERS.contains(&pair[0]))
}

/// The name to file a found secret under: `SERVER-KEY`, lower-cased, made valid.
pub fn suggested_name(server: &str, key: &str) -> Option<SecretName> {
    let raw: String = format!("{server}-{key}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let trimmed = raw.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    SecretName::new(&trimmed.chars().take(64).collect::<String>()).ok()
}

/// For a header such as `Authorization: Bearer X`, the format around the secret and the
/// secret itself.
pub fn split_scheme(value: &str) -> (Option<&'static str>, &str) {
    for (prefix, format) in [("Bearer ", "Bearer {}"), ("bearer ", "Bearer {}"), ("Basic ", "Basic {}")] {
        if let Some(rest) = value.strip_prefix(prefix) {
            return (Some(format), rest.trim());
        }
    }
    (None, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_recognised_by_name_or_shape() {
        assert!(looks_secret("GITHUB_PERSONAL_ACCESS_TOKEN", "abc"));
        assert!(looks_secret("Authorization", "Bearer abc"));
        assert!(looks_secret("X-Api-Key", "k1"));
        assert!(looks_secret("SOMETHING", "ghp_0123456789abcdefghij"));
        assert!(!looks_secret("LOG_LEVEL", "debug"));
        assert!(!looks_secret("GITHUB_TOKEN", ""));
        assert!(!looks_secret("GITHUB_TOKEN", "${GITHUB_TOKEN}"));
        assert!(!looks_secret("ALLOWED_DIRS", "/home/me"));
        assert!(!looks_secret("MEMORY_FILE_PATH", "/home/me/memory.jsonl"), "PATH is not PAT");
        assert!(!looks_secret("KEYBOARD_LAYOUT", "us"));
        assert!(looks_secret("GITHUB_PAT", "abc"));
        assert!(looks_secret("OPENAI_API_KEY", "abc"));
        assert!(looks_secret("PRIVATE_KEY", "abc"));
        assert!(looks_secret("DB_PASSWORD", "abc"));
    }

    #[test]
    fn suggested_names_are_valid() {
        assert_eq!(suggested_name("github", "GITHUB_TOKEN").unwrap().as_str(), "github-github_token");
        assert_eq!(suggested_name("x", "Authorization").unwrap().as_str(), "x-authorization");
        assert_eq!(split_scheme("Bearer abc"), (Some("Bearer {}"), "abc"));
        assert_eq!(split_scheme("abc"), (None, "abc"));
    }
}
