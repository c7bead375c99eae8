//! A secret value in memory: shown to no formatter, wiped when dropped. The only way to
//! read it is [`Secret::expose`], so every place that handles the plaintext says so.

use zeroize::Zeroizing;

#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The plaintext. Callers hand it to exactly one place (a child's environment, a
    /// request header) and never to a log, an audit record or a URL.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_holds_the_value() {
        let s = Secret::new("ghp_abcdefghijklmnop".into());
        assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
        assert_eq!(s.expose(), "ghp_abcdefghijklmnop");
    }
}
