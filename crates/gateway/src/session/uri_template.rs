//! Whether a resource URI is one a server's RFC 6570 URI template describes, so the
//! aggregate endpoint can route a read of a templated resource to the one server that
//! offers the template. Matching is by shape (literal text kept, each expression
//! standing for what its operator can expand to), which is what routing needs; it
//! extracts no variables.
//!
//! It never matches a template it cannot parse (an unclosed or empty expression, an
//! unknown operator): such a template routes nothing.

use regex::Regex;

/// A compiled template.
#[derive(Debug, Clone)]
pub(crate) struct UriTemplate {
    pattern: Regex,
}

impl UriTemplate {
    /// `None` for a template that is not well formed.
    pub(crate) fn parse(template: &str) -> Option<UriTemplate> {
        let mut pattern = String::from("^");
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            pattern.push_str(&regex::escape(&rest[..open]));
            let close = rest[open..].find('}')? + open;
            let expression = &rest[open + 1..close];
            pattern.push_str(expansion(expression)?);
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return None;
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        Regex::new(&pattern).ok().map(|pattern| UriTemplate { pattern })
    }

    pub(crate) fn matches(&self, uri: &str) -> bool {
        self.pattern.is_match(uri)
    }
}

/// What one `{...}` expression can expand to, as a regex. Simple expansion encodes the
/// reserved characters, so it never spans `/`, `?` or `#`; `+` and `#` keep them.
fn expansion(expression: &str) -> Option<&'static str> {
    let (operator, names) = match expression.chars().next()? {
        c @ ('+' | '#' | '.' | '/' | ';' | '?' | '&') => (Some(c), &expression[1..]),
        _ => (None, expression),
    };
    let well_formed = !names.is_empty()
        && names.split(',').all(|name| {
            let name = name.trim_end_matches('*');
            let name = name.split_once(':').map_or(name, |(n, len)| if len.parse::<u16>().is_ok() { n } else { "" });
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '%'))
        });
    if !well_formed {
        return None;
    }
    Some(match operator {
        None => "[^/?#]*",
        Some('+') => ".*",
        Some('#') => "(?:#.*)?",
        Some('.') => r"(?:\.[^/?#]*)*",
        Some('/') => "(?:/[^/?#]*)*",
        Some(';') => "(?:;[^/?#]*)*",
        Some('?') => r"(?:\?[^#]*)?",
        _ => "(?:&[^#]*)?",
    })
}

#[cfg(test)]
mod tests {
    use super::UriTemplate;

    fn matches(template: &str, uri: &str) -> bool {
        UriTemplate::parse(template).unwrap_or_else(|| panic!("parses: {template}")).matches(uri)
    }

    #[test]
    fn simple_expressions_match_one_segment() {
        assert!(matches("test://static/resource/{id}", "test://static/resource/42"));
        assert!(!matches("test://static/resource/{id}", "test://static/resource/42/more"));
        assert!(!matches("test://static/resource/{id}", "test://other/resource/42"));
        assert!(matches("users/{user}/repos/{repo}", "users/ann/repos/x"));
    }

    #[test]
    fn reserved_and_path_expressions_span_segments() {
        assert!(matches("file:///{+path}", "file:///home/ann/notes.md"));
        assert!(matches("repo://x{/path*}", "repo://x/a/b/c"));
        assert!(matches("search{?q,lang}", "search?q=mcp&lang=en"));
        assert!(matches("search{?q,lang}", "search"));
        assert!(matches("doc{#section}", "doc#intro"));
    }

    #[test]
    fn literal_text_is_not_a_pattern() {
        assert!(matches("a.b/{x}", "a.b/1"));
        assert!(!matches("a.b/{x}", "aXb/1"), "a dot is a dot");
        assert!(matches("weird+(x)/{y}", "weird+(x)/1"));
    }

    #[test]
    fn malformed_templates_route_nothing() {
        for bad in ["x/{id", "x/{}", "x/id}", "x/{!id}", "x/{a b}", "x/{id:abc}"] {
            assert!(UriTemplate::parse(bad).is_none(), "{bad}");
        }
    }
}
