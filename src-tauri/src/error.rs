//! The one error every command returns to the windows: a kind they may branch on and a
//! message they show as it is. A gateway refusal ([`ControlError`]) keeps its kind (the
//! control API's HTTP status, in words); anything else is `failed` with its text. A
//! message is the gateway's or the system's own words: it never carries a token.

use countersign_gateway::api::ControlError;
use serde::Serialize;

/// Why a command did not do what it was asked, as the window receives it
/// (`{"kind": "forbidden", "message": "…"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[error("{message}")]
pub struct CommandError {
    pub kind: ErrorKind,
    /// What a person reads: shown as it is.
    pub message: String,
}

/// The kinds of refusal, as the control API's statuses name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request cannot be read (400).
    BadRequest,
    /// Policy or the approver does not allow it (403).
    Forbidden,
    /// No such prompt, grant, server or tool (404).
    NotFound,
    /// The answer does not match what was shown: wrong nonce or changed arguments (409).
    Conflict,
    /// The call ended before the answer (410).
    Gone,
    /// The gateway is not running here, or something it needs is missing (503).
    Unavailable,
    /// Anything else that failed (a file, the keychain, the desktop).
    Failed,
}

impl CommandError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CommandError { kind, message: message.into() }
    }

    /// A failure outside the gateway's control actions, with its own text.
    pub fn failed(error: impl std::fmt::Display) -> Self {
        CommandError::new(ErrorKind::Failed, error.to_string())
    }
}

impl From<ControlError> for CommandError {
    fn from(e: ControlError) -> Self {
        let kind = match e.status() {
            400 => ErrorKind::BadRequest,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            410 => ErrorKind::Gone,
            503 => ErrorKind::Unavailable,
            _ => ErrorKind::Failed,
        };
        CommandError::new(kind, e.to_string())
    }
}

/// What every command returns.
pub type CmdResult<T> = Result<T, CommandError>;

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_gateway::approver::AnswerError;

    #[test]
    fn a_gateway_refusal_keeps_its_kind_and_words() {
        let cases = [
            (ControlError::BadRequest("bad".into()), ErrorKind::BadRequest),
            (ControlError::Forbidden("no".into()), ErrorKind::Forbidden),
            (ControlError::Answer(AnswerError::OnlyWhereShown("p".into())), ErrorKind::Forbidden),
            (ControlError::Answer(AnswerError::BadNonce), ErrorKind::Conflict),
            (ControlError::Answer(AnswerError::Unknown("p".into())), ErrorKind::NotFound),
            (ControlError::Gone { id: "p".into(), why: "cancelled" }, ErrorKind::Gone),
            (ControlError::Unavailable("down".into()), ErrorKind::Unavailable),
        ];
        for (control, kind) in cases {
            let text = control.to_string();
            let e = CommandError::from(control);
            assert_eq!((e.kind, e.message.as_str()), (kind, text.as_str()));
        }
        let json = serde_json::to_value(CommandError::from(ControlError::Answer(AnswerError::BadNonce))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "conflict", "message": "the answer does not carry this prompt's nonce"})
        );
    }
}
