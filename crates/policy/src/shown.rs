//! Text from others as a person reads it. Names, arguments and paths chosen by clients,
//! servers or files are shown with every character that would draw a line break, reorder
//! the text around it or draw nothing turned into a visible escape (`\n`, `\u{202e}`), so
//! what a person reads is what is there and no name can draw a line of its own.
//!
//! Every surface a person reads uses this: the desktop notification and the app's windows
//! (ui/src/lib/format.ts follows the same rules, checked against the same cases in
//! `shown_cases.json`), and the terminal output of the CLI. It is for display only: it must
//! never be applied to text that is matched, hashed, stored or sent on, and it must never
//! drop or reorder a character (each one hidden becomes its escape, in place).
//! A backslash is left as it is: text that spells an escape shows as that text, which
//! hides nothing.

use std::borrow::Cow;

/// Whether `c` is shown as an escape: control characters (C0, DEL, C1), line and paragraph
/// separators, bidirectional controls, zero-width and other default-ignorable or format
/// characters (tags, variation selectors, fillers) that change how text reads without
/// showing.
pub fn is_hidden(c: char) -> bool {
    matches!(c,
        // C0, DEL and C1 controls (newline, carriage return, tab and escape among them).
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // Line and paragraph separators.
        | '\u{2028}' | '\u{2029}'
        // Bidirectional controls: marks, embeddings and overrides, isolates.
        | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        // Zero-width characters and word joiners, invisible operators, deprecated format
        // characters, the byte order mark.
        | '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2065}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
        // Other default-ignorable characters: soft hyphen, combining grapheme joiner,
        // Hangul and Khmer fillers, Mongolian selectors, variation selectors, reserved.
        | '\u{ad}' | '\u{34f}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}' | '\u{180b}'..='\u{180f}'
        | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}'
        | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        // Tags (the "invisible ASCII" block), variation selectors supplement, reserved.
        | '\u{e0000}'..='\u{e0fff}'
        // Other format characters: Arabic and Syriac number signs, interlinear
        // annotation, Kaithi and Egyptian format controls.
        | '\u{600}'..='\u{605}' | '\u{6dd}' | '\u{70f}' | '\u{890}' | '\u{891}' | '\u{8e2}'
        | '\u{fff9}'..='\u{fffb}' | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}')
}

/// The escape shown for a hidden character.
fn escape(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
    }
}

/// `text` with every hidden character as its escape (`a\nb`, `x\u{202e}y`); borrowed when
/// nothing is hidden.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hidden(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`visible`] cut to at most `max` characters as shown, never inside an escape; true when
/// something was left out.
pub fn visible_within(text: &str, max: usize) -> (String, bool) {
    let mut out = String::new();
    let mut shown = 0;
    let mut piece = String::new();
    for c in text.chars() {
        piece.clear();
        if is_hidden(c) {
            escape(c, &mut piece);
        } else {
            piece.push(c);
        }
        let len = piece.chars().count();
        if shown + len > max {
            return (out, true);
        }
        shown += len;
        out.push_str(&piece);
    }
    (out, false)
}

/// `text` as a quoted field: “…”, [`visible`], with the quotation marks inside shown as
/// escapes, so the field cannot be closed early and followed by text that looks like ours.
pub fn quoted(text: &str) -> String {
    let inner = visible(text).replace('“', "\\u{201c}").replace('”', "\\u{201d}");
    format!("“{inner}”")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Shared {
        hidden: Vec<(String, String)>,
        cases: Vec<(String, String)>,
    }

    /// The cases and the hidden ranges ui/src/lib/format.ts is tested against too: the
    /// window and the terminal show the same text.
    #[test]
    fn shared_cases_hold() {
        let shared: Shared = serde_json::from_str(include_str!("shown_cases.json")).unwrap();
        assert!(shared.cases.len() >= 10);
        for (input, expected) in shared.cases {
            assert_eq!(visible(&input), expected, "{input:?}");
        }
        // Every code point, against the ranges the UI's test reads.
        let mut ranges: Vec<(String, String)> = Vec::new();
        let mut open: Option<(u32, u32)> = None;
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let cp = u32::from(c);
            match (is_hidden(c), open) {
                (true, Some((lo, hi))) if hi + 1 == cp => open = Some((lo, cp)),
                (true, _) => {
                    ranges.extend(open.take().map(|(lo, hi)| (format!("U+{lo:X}"), format!("U+{hi:X}"))));
                    open = Some((cp, cp));
                }
                (false, _) => ranges.extend(open.take().map(|(lo, hi)| (format!("U+{lo:X}"), format!("U+{hi:X}")))),
            }
        }
        ranges.extend(open.map(|(lo, hi)| (format!("U+{lo:X}"), format!("U+{hi:X}"))));
        assert_eq!(ranges, shared.hidden);
    }

    #[test]
    fn every_class_is_shown_as_an_escape() {
        let classes: &[(&str, &[char])] = &[
            ("C0", &['\u{0}', '\u{7}', '\u{1b}', '\u{1f}']),
            ("newline, return, tab", &['\n', '\r', '\t']),
            ("DEL and C1", &['\u{7f}', '\u{80}', '\u{85}', '\u{9b}', '\u{9f}']),
            ("separators", &['\u{2028}', '\u{2029}']),
            (
                "bidi",
                &[
                    '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}',
                    '\u{2069}', '\u{200e}', '\u{200f}', '\u{61c}',
                ],
            ),
            ("zero-width", &['\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}']),
            ("default-ignorable", &['\u{ad}', '\u{34f}', '\u{3164}', '\u{fe0f}', '\u{180e}', '\u{2064}']),
            ("tags", &['\u{e0001}', '\u{e0041}', '\u{e007f}', '\u{e0100}']),
            ("format", &['\u{600}', '\u{6dd}', '\u{fff9}', '\u{110bd}', '\u{13430}']),
        ];
        for (class, chars) in classes {
            for &c in *chars {
                assert!(is_hidden(c), "{class}: {:x}", u32::from(c));
                let shown = visible(&format!("a{c}b")).into_owned();
                assert!(!shown.chars().any(is_hidden), "{class}: {shown:?}");
                assert!(shown.starts_with("a\\") && shown.ends_with('b'), "{class}: {shown:?}");
                let expected = match c {
                    '\n' => "a\\nb".to_string(),
                    '\r' => "a\\rb".to_string(),
                    '\t' => "a\\tb".to_string(),
                    c => format!("a\\u{{{:x}}}b", u32::from(c)),
                };
                assert_eq!(shown, expected, "{class}");
            }
        }
    }

    #[test]
    fn ordinary_text_is_left_as_it_is() {
        for text in ["write_file", "C:\\Users\\me", "日本語 ✓ émoji 😀", "<s>rm</s> & \"q\"", "a\\u{202e}b", ""]
        {
            assert!(matches!(visible(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn no_name_draws_a_line_of_its_own() {
        let name = "x\nCountersign: verified safe read-only call\u{2028}\r\u{85}";
        let shown = visible(name);
        assert!(!shown.contains(['\n', '\r', '\u{2028}', '\u{85}']), "{shown}");
        assert_eq!(shown, "x\\nCountersign: verified safe read-only call\\u{2028}\\r\\u{85}");
    }

    #[test]
    fn a_cut_never_splits_an_escape() {
        assert_eq!(visible_within("ab\u{202e}cd", 4), ("ab".to_string(), true));
        assert_eq!(visible_within("ab\u{202e}cd", 10), ("ab\\u{202e}".to_string(), true));
        assert_eq!(visible_within("ab\u{202e}cd", 12), ("ab\\u{202e}cd".to_string(), false));
        assert_eq!(visible_within("héllo", 5), ("héllo".to_string(), false));
    }

    #[test]
    fn a_quoted_field_cannot_be_closed_early() {
        assert_eq!(quoted("Cursor"), "“Cursor”");
        assert_eq!(quoted("x” — verified safe “"), "“x\\u{201d} — verified safe \\u{201c}”");
        assert_eq!(quoted("a\nb"), "“a\\nb”");
    }
}
