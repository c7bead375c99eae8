//! The W3C trace context a client request carries in `params._meta` (`traceparent`, and
//! `tracestate`, which is not read), any protocol revision: only the trace id of a valid
//! `traceparent` is kept, for the request's audit record, so a SIEM can join the gateway's
//! record with the client's and the server's traces. The `_meta` itself is relayed
//! unchanged, valid or not.
//!
//! Valid as W3C Trace Context says: `version-traceid-parentid-flags` in lower-case hex;
//! version `ff` is invalid; an all-zero trace id or parent id is invalid; upper case is
//! invalid (not normalised). Version `00` is exactly those four fields; a later version
//! may append `-` and more, and is read by the same first 55 characters.
//!
//! Must never: keep anything but 32 lower-case hex digits, or fail on any input.

use serde_json::Value;

/// The length of a version-00 `traceparent`, and of the part every later version starts with.
const LENGTH: usize = 55;

/// The trace id of the request's `params._meta.traceparent`, when there is a valid one.
pub fn trace_id(params: &Value) -> Option<String> {
    parse_traceparent(params.get("_meta")?.get("traceparent")?.as_str()?)
}

/// The trace id of a `traceparent` value (32 lower-case hex digits), when it is valid.
pub fn parse_traceparent(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    if bytes.len() < LENGTH {
        return None;
    }
    let (head, rest) = bytes.split_at(LENGTH);
    let version = &head[0..2];
    let trace = &head[3..35];
    let parent = &head[36..52];
    let flags = &head[53..55];
    let dashes = head[2] == b'-' && head[35] == b'-' && head[52] == b'-';
    let lower_hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &[u8]| s.iter().any(|b| *b != b'0');
    let fields = [version, trace, parent, flags].into_iter().all(lower_hex);
    // Version 00 ends here; a later one may go on after a dash.
    let end = if version == b"00" { rest.is_empty() } else { rest.is_empty() || rest[0] == b'-' };
    let valid = dashes && fields && version != b"ff" && end && nonzero(trace) && nonzero(parent);
    // Every byte checked is ASCII, so the slice is text.
    valid.then(|| String::from_utf8_lossy(trace).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn a_valid_traceparent_gives_its_trace_id() {
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some(TRACE)
        );
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").as_deref(),
            Some(TRACE)
        );
        let params = json!({"name": "x", "_meta": {"traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01"),
                                                   "tracestate": "congo=t61rcWkgMzE"}});
        assert_eq!(trace_id(&params).as_deref(), Some(TRACE));
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = format!("cc-{TRACE}-00f067aa0ba902b7-01");
        assert_eq!(parse_traceparent(&later).as_deref(), Some(TRACE));
        assert_eq!(parse_traceparent(&format!("{later}-what-comes-next")).as_deref(), Some(TRACE));
        assert!(parse_traceparent(&format!("{later}x")).is_none(), "more must follow a dash");
        assert!(parse_traceparent(&format!("00-{TRACE}-00f067aa0ba902b7-01-extra")).is_none(), "00 ends at 55");
    }

    #[test]
    fn an_invalid_traceparent_gives_nothing() {
        for bad in [
            // Upper case is invalid, not normalised.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0F",
            // Version ff, all-zero ids.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Shapes.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473\u{1b}-00f067aa0ba902b7-01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            "",
            "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
        assert!(trace_id(&json!({"_meta": {"traceparent": 5}})).is_none());
        assert!(trace_id(&json!({"_meta": "x"})).is_none());
        assert!(trace_id(&json!({"traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01")})).is_none(), "only _meta");
        assert!(trace_id(&Value::Null).is_none());
    }
}
