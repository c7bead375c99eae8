//! What config holds where a credential would go: either a plain value (for settings that
//! are not secret) or a reference to a keychain item, optionally with a format such as
//! `Bearer {}`. Rendering a reference needs the keychain; nothing here reads it.

use crate::{Secret, SecretName};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// `{ secret = "name" }` or `{ secret = "name", format = "Bearer {}" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub secret: SecretName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

impl SecretRef {
    /// The value to send: the secret, placed into the format when there is one.
    pub fn render(&self, value: &Secret) -> Secret {
        match &self.format {
            None => value.clone(),
            Some(f) => Secret::new(f.0.replacen("{}", value.expose(), 1)),
        }
    }
}

/// A format with exactly one `{}` where the secret goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Format(String);

impl Format {
    pub fn new(text: &str) -> Result<Self, String> {
        if text.matches("{}").count() != 1 {
            return Err(format!("format `{text}` must hold exactly one `{{}}` where the secret goes"));
        }
        if text.chars().any(|c| c.is_control()) {
            return Err("format must not hold control characters".into());
        }
        Ok(Format(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Format::new(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// An environment variable's or header's value as config writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Setting {
    Plain(String),
    Secret(SecretRef),
}

impl Setting {
    pub fn secret(&self) -> Option<&SecretRef> {
        match self {
            Setting::Secret(r) => Some(r),
            Setting::Plain(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Setting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Setting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a string, or a reference to a keychain secret: { secret = "name" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Setting, E> {
                Ok(Setting::Plain(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Setting, E> {
                Ok(Setting::Plain(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Setting, A::Error> {
                SecretRef::deserialize(de::value::MapAccessDeserializer::new(map)).map(Setting::Secret)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(text: &str) -> Result<BTreeMap<String, Setting>, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_values_and_references_both_read() {
        let s = parse(
            r#"A = "x"
               B = { secret = "github-pat" }
               C = { secret = "api", format = "Bearer {}" }"#,
        )
        .unwrap();
        assert_eq!(s["A"], Setting::Plain("x".into()));
        assert_eq!(s["B"].secret().unwrap().secret.as_str(), "github-pat");
        let c = s["C"].secret().unwrap();
        assert_eq!(c.render(&Secret::new("t0k".into())).expose(), "Bearer t0k");
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let e = parse(r#"A = { secret = "a b" }"#).unwrap_err();
        assert!(e.contains("not a secret name"), "{e}");
        let e = parse(r#"A = { secret = "a", format = "Bearer" }"#).unwrap_err();
        assert!(e.contains("exactly one `{}`"), "{e}");
        let e = parse(r#"A = { secret = "a", value = "x" }"#).unwrap_err();
        assert!(e.contains("unknown field `value`"), "{e}");
        let e = parse(r#"A = 3"#).unwrap_err();
        assert!(e.contains("keychain secret"), "{e}");
    }
}
