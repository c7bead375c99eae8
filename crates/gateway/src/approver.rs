//! Approvals: where an `Ask` decision waits for a person. The [`Approver`] trait is the
//! one seam; this module ships the headless approver (answered by `countersign approve` /
//! `countersign deny` through the control API). The desktop app brings its own.
//!
//! An approver never decides by itself: no answer is a denial, and the caller
//! (`govern::approvals`) enforces the deadline, withdraws prompts whose call is gone and
//! releases identical waiting calls one approval at a time. A prompt is bound to the
//! SHA-256 of the exact canonical arguments; its answer releases only calls with them.

use countersign_policy::{GrantLength, Route, SimilarOffer};
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// What the person is asked.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Prompt {
    pub id: String,
    pub session: String,
    /// Who asks: the name of the client token the call came with.
    pub client: String,
    /// What the client says it is in `initialize`: a claim, shown as "says it is …".
    pub client_name: Option<String>,
    pub server: String,
    pub tool: String,
    /// The full, unredacted arguments, for the person to read before answering.
    pub arguments: serde_json::Value,
    pub args_hash: String,
    pub reason: String,
    /// Milliseconds since the Unix epoch after which the prompt counts as denied.
    pub deadline_ms: u64,
    /// Identical calls (same client, tool and arguments) waiting on this prompt. Approving
    /// once releases one of them; approving all, or for longer than once, releases all.
    pub waiting: usize,
    /// What "Allow similar" would grant, in words and as its scope; `None` when nothing
    /// is offered (a destructive tool, policy, a file that could not be resolved).
    pub similar: Option<SimilarOffer>,
    /// Where policy routes the approval, when not to the person at this computer: the
    /// hub carries it to them (`crate::routed`).
    pub route: Option<RoutedTo>,
    /// A request routed here from someone else's device: who asks, from where.
    pub asked_by: Option<AskedBy>,
    /// A session plan the client declared (`countersign/plan`), shown as this one prompt:
    /// approving it grants each of its items for the session.
    pub plan: Option<PlanOffer>,
}

/// A session plan as the person is shown it: the items policy accepted, each a scope in
/// words, and those it refused, with why. Approving grants exactly `items`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PlanOffer {
    /// The task, as the client names it (a claim).
    pub title: String,
    pub items: Vec<countersign_policy::SimilarOffer>,
    pub refused: Vec<PlanRefusal>,
}

/// An item of a plan that will still ask, or never run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PlanRefusal {
    pub server: String,
    pub tool: String,
    pub why: String,
}

/// A prompt routed away from this computer: the route, and what the hub is told of the
/// call besides the prompt.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RoutedTo {
    pub route: Route,
    /// The tool's class.
    pub class: String,
    #[serde(skip)]
    pub policy_version: String,
    /// The arguments as the journal records them (redacted): what the hub keeps and shows.
    #[serde(skip)]
    pub arguments: serde_json::Value,
}

/// Who asks, for a request the hub routed to this device's person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AskedBy {
    /// The hub's request id.
    pub request: String,
    /// The verified person or `agent:NAME` that asks.
    pub requester: String,
    /// The asking device's name.
    pub device: String,
}

impl Prompt {
    /// Who asks, as a person should read it: the token's name, and what the client claims
    /// to be only as a claim (a quoted field, hidden characters shown as escapes).
    pub fn who(&self) -> String {
        use countersign_policy::shown;
        let client = shown::visible(&self.client);
        match self.client_name.as_deref().filter(|n| *n != self.client) {
            Some(claim) => {
                let (claim, cut) = shown::visible_within(claim, 128);
                format!("{client} (says it is {})", shown::quoted(&if cut { format!("{claim}…") } else { claim }))
            }
            None => client.into_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Approved, for how long (once: calls with these arguments, not a grant), and for
    /// which arguments when the approval leaves a grant (`path=/work/**`; none: any
    /// arguments). `count`: how many of the identical waiting calls the person saw and
    /// releases (1 unless they chose all; never more than they saw). A grant for the
    /// session releases only the calls of the session shown; a grant for a while, every
    /// identical call it covers.
    Approved {
        length: GrantLength,
        condition: Option<String>,
        count: usize,
        /// The person chose the prompt's "Allow similar" offer (then `length` is the
        /// offer's and `condition` none): the grant is compiled from the offer the prompt
        /// carried, never from anything the answer says.
        similar: bool,
    },
    Denied,
    /// The approver policy routed the call to answered it at the hub: `by` (a verified
    /// identity), request `request`. An approval covers this call once.
    Routed {
        approved: bool,
        by: String,
        request: String,
    },
    /// Nobody was asked, or the request ended unanswered: the call is refused with this
    /// reason (the hub could not be reached, nobody may answer, the request expired).
    Refused(String),
}

impl Answer {
    /// Approved for one call only.
    pub fn once() -> Self {
        Answer::Approved { length: GrantLength::Once, condition: None, count: 1, similar: false }
    }

    /// Approved once for the `count` identical calls the person saw waiting.
    pub fn once_for(count: usize) -> Self {
        Answer::Approved { length: GrantLength::Once, condition: None, count: count.max(1), similar: false }
    }
}

/// What binds an answer to the prompt a person saw: the prompt's nonce (known only to the
/// UI that showed it) and the hash of the exact arguments shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Binding {
    pub nonce: String,
    pub args_hash: String,
}

/// Why an answer was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("no prompt `{0}` is waiting (answered, withdrawn or timed out)")]
    Unknown(String),
    #[error("the answer does not carry this prompt's nonce")]
    BadNonce,
    #[error("the arguments changed since they were shown; look at the prompt again")]
    ArgumentsChanged,
    /// This approver takes answers only from its own UI, which holds the nonce (the desktop
    /// app: a local process holding the control token is not the person).
    #[error("prompt `{0}` is answered in the Countersign app, where it is shown")]
    OnlyWhereShown(String),
    /// A routed prompt is answered by its approver, not here; the asker may only deny
    /// (withdraw) it.
    #[error("`{id}` waits for {who}, through the hub; here it can only be withdrawn (`countersign deny`)")]
    Routed { id: String, who: String },
}

pub trait Approver: Send + Sync {
    /// Shows `prompt` and resolves with the answer. Dropping the future withdraws it.
    fn ask(&self, prompt: Prompt) -> BoxFuture<'static, Answer>;
    /// Withdraws a prompt (its deadline passed or its call was cancelled).
    fn withdraw(&self, id: &str);
    /// The prompt's count of identical waiting calls changed (it is shown again only if
    /// the approver can update what it shows).
    fn update(&self, _prompt: &Prompt) {}
    /// The prompts waiting for an answer.
    fn pending(&self) -> Vec<Prompt>;
    /// Answers prompt `id`. `binding`, when the answer comes from a UI that showed the
    /// prompt, must match it; an approver may refuse answers without one.
    fn answer(&self, id: &str, binding: Option<&Binding>, answer: Answer) -> Result<(), AnswerError>;
    /// Who answers, as a waiting client is told it ("waiting for approval from …").
    fn who_answers(&self) -> String {
        "the user of this computer, in Countersign".into()
    }
}

/// Prompts held in memory, answered through the control API.
#[derive(Default)]
pub struct HeadlessApprover {
    waiting: Mutex<HashMap<String, (Prompt, oneshot::Sender<Answer>)>>,
}

impl Approver for HeadlessApprover {
    fn ask(&self, prompt: Prompt) -> BoxFuture<'static, Answer> {
        let (tx, rx) = oneshot::channel();
        tracing::info!(prompt = %prompt.id, server = %prompt.server, tool = %prompt.tool, "approval needed: run `countersign approve {}`", prompt.id);
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(prompt.id.clone(), (prompt, tx));
        }
        Box::pin(async move { rx.await.unwrap_or(Answer::Denied) })
    }

    fn withdraw(&self, id: &str) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(id);
        }
    }

    fn update(&self, prompt: &Prompt) {
        if let Ok(mut w) = self.waiting.lock() {
            if let Some((p, _)) = w.get_mut(&prompt.id) {
                p.waiting = prompt.waiting;
            }
        }
    }

    fn pending(&self) -> Vec<Prompt> {
        let mut list: Vec<Prompt> =
            self.waiting.lock().map(|w| w.values().map(|(p, _)| p.clone()).collect()).unwrap_or_default();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// Headless prompts have no nonce (the control token is the credential); a binding's
    /// argument hash, when given, must still match.
    fn answer(&self, id: &str, binding: Option<&Binding>, answer: Answer) -> Result<(), AnswerError> {
        let mut waiting = self.waiting.lock().map_err(|_| AnswerError::Unknown(id.to_string()))?;
        let Some((prompt, _)) = waiting.get(id) else { return Err(AnswerError::Unknown(id.to_string())) };
        if binding.is_some_and(|b| b.args_hash != prompt.args_hash) {
            return Err(AnswerError::ArgumentsChanged);
        }
        let (_, tx) = waiting.remove(id).ok_or_else(|| AnswerError::Unknown(id.to_string()))?;
        tx.send(answer).map_err(|_| AnswerError::Unknown(id.to_string()))
    }

    fn who_answers(&self) -> String {
        "the user of this computer (`countersign approve` or `countersign deny`)".into()
    }
}

#[cfg(test)]
impl Prompt {
    /// A prompt for `fs.write_file` as the gateway raises one, for tests.
    pub(crate) fn example(id: &str) -> Prompt {
        Prompt {
            id: id.into(),
            session: "s".into(),
            client: "c".into(),
            client_name: None,
            server: "fs".into(),
            tool: "write_file".into(),
            arguments: serde_json::json!({"path": "/x"}),
            args_hash: "h".into(),
            reason: "r".into(),
            deadline_ms: 0,
            waiting: 1,
            similar: None,
            route: None,
            asked_by: None,
            plan: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_shows_the_claim_as_a_quoted_field_with_escapes() {
        let mut p = Prompt::example("p");
        p.client_name = Some("x\nCountersign: verified safe read-only call\u{202e}”".into());
        assert_eq!(p.who(), "c (says it is “x\\nCountersign: verified safe read-only call\\u{202e}\\u{201d}”)");
        p.client_name = Some("c".into());
        assert_eq!(p.who(), "c");
    }

    #[tokio::test]
    async fn an_answer_reaches_its_prompt_once() {
        let a = HeadlessApprover::default();
        let fut = a.ask(Prompt::example("p1"));
        assert_eq!(a.pending().len(), 1);
        let wrong = Binding { nonce: String::new(), args_hash: "other".into() };
        assert_eq!(a.answer("p1", Some(&wrong), Answer::once()), Err(AnswerError::ArgumentsChanged));
        assert_eq!(a.answer("p1", None, Answer::once()), Ok(()));
        assert_eq!(
            a.answer("p1", None, Answer::once()),
            Err(AnswerError::Unknown("p1".into())),
            "a prompt is answered once"
        );
        assert_eq!(fut.await, Answer::once());
        assert!(a.pending().is_empty());
    }

    #[tokio::test]
    async fn a_withdrawn_prompt_is_denied() {
        let a = HeadlessApprover::default();
        let fut = a.ask(Prompt::example("p2"));
        a.withdraw("p2");
        assert!(a.answer("p2", None, Answer::once()).is_err());
        assert_eq!(fut.await, Answer::Denied);
    }
}
