//! What an answer to a prompt is, parsed once for every front end (the control API's
//! query string, the app's command, its notification's action), and checked against the
//! policy in force before it reaches the approver. It never answers anything itself.

use crate::approver::{Answer, AnswerError, Binding};
use countersign_policy::{GrantLength, Policy};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    /// `allow` (or `approve`, the control API's word) or `deny`.
    pub fn parse(text: &str) -> Result<Self, ControlError> {
        match text {
            "allow" | "approve" => Ok(Verdict::Allow),
            "deny" => Ok(Verdict::Deny),
            other => Err(ControlError::BadRequest(format!("`{other}` is not allow or deny"))),
        }
    }
}

/// A person's answer to one prompt, as a front end received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRequest {
    pub verdict: Verdict,
    /// How long an approval lasts (once when absent).
    pub length: GrantLength,
    /// An argument condition limiting the grant (`path=/work/**`).
    pub condition: Option<String>,
    /// How many identical waiting calls the person saw and releases (at least 1).
    pub count: usize,
    /// The prompt's nonce and arguments hash, when the answer comes from a UI that showed it.
    pub binding: Option<Binding>,
    /// The person chose the prompt's "Allow similar" offer (its length replaces `length`).
    pub similar: bool,
}

impl AnswerRequest {
    /// Parses what a front end received; a length it cannot read is refused, not
    /// taken as once.
    pub fn parse(
        verdict: &str,
        length: Option<&str>,
        condition: Option<String>,
        count: Option<usize>,
        binding: Option<Binding>,
    ) -> Result<Self, ControlError> {
        let verdict = Verdict::parse(verdict)?;
        let length = match length {
            None => GrantLength::Once,
            Some(l) => GrantLength::parse(l).ok_or_else(|| {
                ControlError::BadRequest(format!("`{l}` is not a grant length (once, session, 15m, 1h, today)"))
            })?,
        };
        Ok(AnswerRequest { verdict, length, condition, count: count.unwrap_or(1).max(1), binding, similar: false })
    }

    /// The same answer, choosing the prompt's "Allow similar" offer when `similar`.
    pub fn with_similar(self, similar: bool) -> Self {
        AnswerRequest { similar, ..self }
    }

    /// The request for an answer a front end already holds as an [`Answer`] (a
    /// notification's action), bound to what it showed.
    pub fn from_answer(answer: Answer, binding: Option<Binding>) -> Self {
        match answer {
            Answer::Approved { length, condition, count, similar } => {
                AnswerRequest { verdict: Verdict::Allow, length, condition, count: count.max(1), binding, similar }
            }
            Answer::Denied | Answer::Routed { .. } | Answer::Refused(_) => AnswerRequest {
                verdict: Verdict::Deny,
                length: GrantLength::Once,
                condition: None,
                count: 1,
                binding,
                similar: false,
            },
        }
    }

    /// The answer the approver gets, if `policy` allows it: the length must be one the
    /// policy offers, a condition must parse and needs a grant longer than once; a
    /// similar grant takes no condition (its scope is the prompt's offer).
    pub fn checked(self, policy: &Policy) -> Result<(Answer, Option<Binding>), ControlError> {
        let answer = match self.verdict {
            Verdict::Deny => Answer::Denied,
            Verdict::Allow => {
                let (settings, layer) = policy.grant_settings();
                if !settings.lengths.contains(&self.length) {
                    let allowed: Vec<&str> = settings.lengths.iter().map(|l| l.as_str()).collect();
                    return Err(ControlError::Forbidden(format!(
                        "the {} policy does not allow approvals for `{}` (allowed: {})",
                        layer.as_str(),
                        self.length.as_str(),
                        allowed.join(", ")
                    )));
                }
                if self.similar && self.condition.is_some() {
                    return Err(ControlError::BadRequest(
                        "\"allow similar\" grants the scope the prompt offered; it takes no condition".into(),
                    ));
                }
                if let Some(cond) = &self.condition {
                    if let Err(e) = countersign_policy::Rule::parse(&format!("mcp__x__y({cond})")) {
                        return Err(ControlError::BadRequest(format!("bad condition `{cond}`: {e}")));
                    }
                    if self.length == GrantLength::Once {
                        return Err(ControlError::BadRequest(
                            "a condition needs a grant longer than once (--for)".into(),
                        ));
                    }
                }
                Answer::Approved {
                    length: self.length,
                    condition: self.condition,
                    count: self.count,
                    similar: self.similar,
                }
            }
        };
        Ok((answer, self.binding))
    }
}

/// Why a control action was refused. Each front end shows the text as it is (the control
/// API with the status of [`ControlError::status`]).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The prompt's call ended before the answer (nothing was run).
    #[error("the call `{id}` is gone ({why}); nothing was run")]
    Gone { id: String, why: &'static str },
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// Something this action needs is missing or failed (a config file, the keychain).
    #[error("{0}")]
    Unavailable(String),
}

impl ControlError {
    /// The HTTP status the control API answers with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::BadRequest(_) => 400,
            ControlError::Forbidden(_)
            | ControlError::Answer(AnswerError::OnlyWhereShown(_))
            | ControlError::Answer(AnswerError::Routed { .. }) => 403,
            ControlError::Answer(AnswerError::BadNonce | AnswerError::ArgumentsChanged) => 409,
            ControlError::NotFound(_) | ControlError::Answer(AnswerError::Unknown(_)) => 404,
            ControlError::Gone { .. } => 410,
            ControlError::Unavailable(_) => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(lengths: &str) -> Policy {
        let settings: countersign_policy::PolicySettings =
            toml::from_str(&format!("[grants]\nlengths = [{lengths}]\n")).unwrap();
        Policy::compile(&settings).unwrap()
    }

    #[test]
    fn an_unknown_length_or_verdict_is_refused_not_taken_as_once() {
        assert_eq!(AnswerRequest::parse("allow", Some("forever"), None, None, None).unwrap_err().status(), 400);
        assert!(AnswerRequest::parse("maybe", None, None, None, None).is_err());
        let r = AnswerRequest::parse("approve", None, None, Some(0), None).unwrap();
        assert_eq!((r.verdict, r.length, r.count), (Verdict::Allow, GrantLength::Once, 1));
    }

    #[test]
    fn a_length_the_policy_does_not_offer_is_forbidden() {
        let p = policy("\"once\"");
        let r = AnswerRequest::parse("allow", Some("1h"), None, None, None).unwrap();
        let e = r.checked(&p).unwrap_err();
        assert_eq!(e.status(), 403, "{e}");
        assert!(e.to_string().contains("does not allow approvals for `1h`"), "{e}");
        // A denial needs no length the policy offers.
        let d = AnswerRequest::parse("deny", Some("1h"), None, None, None).unwrap();
        assert_eq!(d.checked(&p).unwrap().0, Answer::Denied);
    }

    #[test]
    fn a_condition_must_parse_and_outlast_once() {
        let p = policy("\"once\", \"1h\"");
        let bad = AnswerRequest::parse("allow", Some("1h"), Some("path=(".into()), None, None).unwrap();
        assert_eq!(bad.checked(&p).unwrap_err().status(), 400);
        let once = AnswerRequest::parse("allow", None, Some("path=/work/**".into()), None, None).unwrap();
        assert!(once.checked(&p).unwrap_err().to_string().contains("longer than once"));
        let ok = AnswerRequest::parse("allow", Some("1h"), Some("path=/work/**".into()), Some(3), None).unwrap();
        assert_eq!(
            ok.checked(&p).unwrap().0,
            Answer::Approved {
                length: GrantLength::Hour1,
                condition: Some("path=/work/**".into()),
                count: 3,
                similar: false
            }
        );
    }
}
