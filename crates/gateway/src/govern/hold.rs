//! What a client sees while its call waits for a person. AI clients give up on a request
//! after a fixed time (60 s in the TypeScript SDK and the Inspector unless progress resets
//! it), so a wait of minutes must not become a client error:
//!
//! - with a progress token, the client gets a `notifications/progress` every
//!   [`PROGRESS_EVERY`] on the request's own stream ("waiting for approval from …");
//! - at `approval_pending_after_secs` (before the common limits) the call is answered with
//!   a tool error saying it is pending, who answers, its request id and that the same call
//!   goes through once approved. The prompt stays up; an approval given later leaves a
//!   single-use grant bound to these exact arguments for [`RETRY_WINDOW`], so the retry
//!   runs without a second prompt.
//!
//! This module only words and times; `govern::call` holds the call. It never runs a
//! call, and a grant it words is for the same client, tool and arguments only.

use crate::message::Envelope;
use serde_json::{json, Value};
use std::time::Duration;

/// How often a waiting client with a progress token hears that its call still waits.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How long the single-use grant an approval leaves for a pending call's retry lasts.
pub const RETRY_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How one waiting call is held.
pub(crate) struct Hold {
    /// The client's progress token, as it sent it (a string or an integer).
    progress_token: Option<Value>,
    /// When to answer "pending"; `None`: held until the answer or the prompt's deadline.
    pending_after: Option<Duration>,
}

impl Hold {
    /// The hold for `env`, a `tools/call` waiting at most `timeout` for its answer.
    pub(crate) fn of(env: &Envelope, pending_after: Option<Duration>, timeout: Duration) -> Hold {
        let progress_token = env
            .params()
            .ok()
            .and_then(|p| p.pointer("/_meta/progressToken").cloned())
            .filter(|t| t.is_string() || t.is_i64() || t.is_u64());
        Hold { progress_token, pending_after: pending_after.filter(|after| *after < timeout) }
    }

    pub(crate) fn pending_after(&self) -> Option<Duration> {
        self.pending_after
    }

    /// The `n`th progress notification (counting from 1) after `waited`, or `None` when
    /// the client gave no progress token.
    pub(crate) fn progress(&self, n: u64, waited: Duration, who: &str) -> Option<String> {
        let token = self.progress_token.as_ref()?;
        let message = format!("waiting for approval from {who} ({}s so far)", waited.as_secs());
        let params = json!({ "progressToken": token, "progress": n, "message": message });
        Some(json!({ "jsonrpc": "2.0", "method": "notifications/progress", "params": params }).to_string())
    }
}

/// What a client is told when its call is answered "pending".
pub(crate) fn pending_text(qualified: &str, who: &str, request: &str, left: Duration) -> String {
    format!(
        "Countersign is holding `{qualified}` for approval by {who} (request {request}); it has not run yet. \
         Once it is approved, call `{qualified}` again with exactly the same arguments and it will go through \
         without asking again (for {} minutes after the approval). The request stays open for about {} more \
         minutes; a denial or no answer means it will not run.",
        RETRY_WINDOW.as_secs() / 60,
        left.as_secs().div_ceil(60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(params: &str) -> Envelope {
        Envelope::parse(&format!(r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{params}}}"#)).unwrap()
    }

    #[test]
    fn progress_goes_to_the_clients_own_token_and_only_when_it_gave_one() {
        let minute = Duration::from_secs(60);
        let with = Hold::of(&call(r#"{"name":"w","_meta":{"progressToken":"tok-1"}}"#), None, minute);
        let text = with.progress(2, Duration::from_secs(10), "the user").unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["method"], "notifications/progress");
        assert_eq!(v["params"]["progressToken"], "tok-1");
        assert_eq!(v["params"]["progress"], 2);
        assert!(v["params"]["message"].as_str().unwrap().contains("waiting for approval from the user"));
        assert!(v.get("id").is_none(), "a notification");
        let numeric = Hold::of(&call(r#"{"name":"w","_meta":{"progressToken":7}}"#), None, minute);
        assert!(numeric.progress(1, Duration::ZERO, "x").unwrap().contains(r#""progressToken":7"#));
        for params in [r#"{"name":"w"}"#, r#"{"name":"w","_meta":{"progressToken":{"a":1}}}"#] {
            assert!(Hold::of(&call(params), None, minute).progress(1, Duration::ZERO, "x").is_none(), "{params}");
        }
    }

    #[test]
    fn pending_comes_only_before_the_prompts_deadline() {
        let c = call(r#"{"name":"w"}"#);
        let at = |after: u64, timeout: u64| {
            Hold::of(&c, Some(Duration::from_secs(after)), Duration::from_secs(timeout)).pending_after()
        };
        assert_eq!(at(45, 900), Some(Duration::from_secs(45)));
        assert_eq!(at(60, 60), None, "the deadline comes first: no pending answer");
        assert_eq!(Hold::of(&c, None, Duration::from_secs(900)).pending_after(), None);
    }

    #[test]
    fn the_pending_text_names_who_the_request_and_the_retry() {
        let text = pending_text("mcp__fs__write_file", "the user of this computer", "abc123", Duration::from_secs(800));
        assert!(text.contains("mcp__fs__write_file") && text.contains("the user of this computer"));
        assert!(text.contains("request abc123") && text.contains("exactly the same arguments"));
        assert!(text.contains("about 14 more minutes"), "{text}");
    }
}
