//! Names of secrets as the user writes them in config (`{ secret = "github-pat" }`) and on
//! the command line. A name is never a value: it may be logged, listed and shown.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A checked secret name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, not starting
/// with a `.` or `-` (so it can never be taken for a flag).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SecretName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a secret name: use 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit")]
pub struct BadName(pub String);

impl SecretName {
    pub fn new(name: &str) -> Result<Self, BadName> {
        let ok = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(SecretName(name.to_string()))
        } else {
            Err(BadName(name.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `n`th name of this family: the name itself for 1, else `NAME-n`, the name cut
    /// short when it must be so the whole stays within 64 characters (and valid).
    pub fn numbered(&self, n: u32) -> SecretName {
        if n <= 1 {
            return self.clone();
        }
        let suffix = format!("-{n}");
        let keep = 64usize.saturating_sub(suffix.len()).min(self.0.len());
        // ASCII only, so any byte index is a character boundary.
        SecretName(format!("{}{suffix}", &self.0[..keep]))
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SecretName {
    type Err = BadName;
    fn from_str(s: &str) -> Result<Self, BadName> {
        SecretName::new(s)
    }
}

impl<'de> Deserialize<'de> for SecretName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SecretName::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_words_that_cannot_pass_for_flags() {
        for good in ["github-pat", "a", "SLACK_TOKEN", "team.api-key_2"] {
            assert!(SecretName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-rf", ".hidden", "a b", "x/y", "naïve", "$(id)", &"a".repeat(65)] {
            assert!(SecretName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbered_names_stay_valid_and_distinct() {
        let n = SecretName::new("b-api_key").unwrap();
        assert_eq!(n.numbered(1), n);
        assert_eq!(n.numbered(2).as_str(), "b-api_key-2");
        let long = SecretName::new(&"a".repeat(64)).unwrap();
        for i in 2..100 {
            let numbered = long.numbered(i);
            assert!(SecretName::new(numbered.as_str()).is_ok() && numbered.as_str().ends_with(&format!("-{i}")));
            assert_ne!(numbered, long);
        }
    }
}
